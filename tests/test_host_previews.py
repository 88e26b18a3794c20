"""Latent previews in both entrances (issue 14): a ComfyUI server started with ``--preview-method
latent2rgb`` sends binary preview messages on the websocket while the MimicMotion Sampler runs, and
while core KSampler samples MimicMotion's MODEL (marker ``host``)."""
from __future__ import annotations

import asyncio
import json

import pytest

from host_utils import ComfyServer
from test_host_comfyui import CHECKOUT, workflow, write_inputs

pytestmark = pytest.mark.host
STEPS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir):
    instance = tmp_path_factory.mktemp("comfy-previews")
    srv = ComfyServer(CHECKOUT, instance, tiny_models_dir, extra_args=("--preview-method", "latent2rgb"))
    write_inputs(instance / "input")
    yield srv
    srv.stop()


async def _run_counting_previews(server: ComfyServer, prompt: dict) -> tuple[int, list[str]]:
    """Queue ``prompt`` with the websocket open; (binary messages, JSON message types) until it ends."""
    import aiohttp

    url = server.url.replace("http://", "ws://") + f"/ws?clientId={server.client_id}"
    binary, kinds = 0, []
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        prompt_id = await asyncio.to_thread(server.queue, prompt)
        while True:
            msg = await ws.receive(timeout=600)
            if msg.type == aiohttp.WSMsgType.BINARY:
                binary += 1
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"websocket closed: {msg}")
            event = json.loads(msg.data)
            kinds.append(event["type"])
            data = event.get("data", {})
            if data.get("prompt_id") == prompt_id and event["type"] in ("execution_success", "execution_error",
                                                                        "execution_interrupted"):
                return binary, kinds


def _ksampler_prompt() -> dict:
    """The plain MimicMotion workflow with core KSampler on the loader's MODEL in place of the
    MimicMotion Sampler: MimicMotion Conditioning -> KSampler -> MimicMotion Decode."""
    prompt = workflow("mimicmotion_plain")
    sampler = prompt.pop("14")["inputs"]
    prompt["20"] = {"class_type": "DisPoseMimicMotionConditioning",
                    "inputs": {"mimicmotion_model": ["11", 0], "reference_image": sampler["reference_image"],
                               "poses": sampler["poses"], "noise_aug": 0.0, "fps": 7, "motion_bucket_id": 127,
                               "seed": 42}}
    prompt["21"] = {"class_type": "KSampler",
                    "inputs": {"model": ["11", 1], "positive": ["20", 0], "negative": ["20", 1],
                               "latent_image": ["20", 2], "seed": 42, "steps": STEPS, "cfg": 2.0,
                               "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0}}
    prompt["22"] = {"class_type": "DisPoseMimicMotionDecode",
                    "inputs": {"mimicmotion_model": ["11", 0], "latent": ["21", 0], "decode_chunk_size": 4,
                               "keep_reference_frame": False}}
    prompt["15"]["inputs"]["images"] = ["22", 0]
    return prompt


@pytest.mark.parametrize("entrance", ["MimicMotion Sampler", "KSampler"])
def test_previews_are_sent_for_every_step(server, entrance):
    prompt = (workflow("mimicmotion_plain", DisPoseMimicMotionSampler={"steps": STEPS})
              if entrance == "MimicMotion Sampler" else _ksampler_prompt())
    binary, kinds = asyncio.run(_run_counting_previews(server, prompt))
    print(f"{entrance}: {binary} binary preview messages for {STEPS} steps")
    assert kinds[-1] == "execution_success", server.log()[-3000:]
    assert binary == STEPS  # one latent2rgb preview per denoising step
