"""End to end against the official ``Ctrl_Pipeline.__call__`` (golden M5): tiny models, seed from
the sidecar, everything (sizes, settings, tolerances) read from the case files."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from diffusers import AutoencoderKLTemporalDecoder
from golden import golden_params, rel_l2, require
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from dispose_core.dift.embeddings import build_point_embeddings
from dispose_core.models.controlnet import ControlNetDims, HybridControlNet
from dispose_core.models.posenet import PoseNet
from dispose_core.models.unet import MimicMotionUNet
from dispose_core.sampling.sampler import ControlInputs, sample_latents, sample_video
from dispose_core.types import DenseFlow, MotionField, PoseSequence


def _weights(case, role: str) -> dict[str, torch.Tensor]:
    return case.weights(next(w["file"] for w in case.sidecar["files"]["weights"] if w["role"] == role))


def _load(module: torch.nn.Module, case, role: str) -> torch.nn.Module:
    module.load_state_dict(_weights(case, role), strict=True)
    return module.eval()


def _models(case):
    cfg = case.sidecar["config"]
    fe = cfg["feature_extractor"]
    return SimpleNamespace(
        unet=_load(MimicMotionUNet(**cfg["unet"]), case, "unet"),
        pose_net=_load(PoseNet(**cfg["pose_net"]), case, "pose_net"),
        vae=_load(AutoencoderKLTemporalDecoder(**cfg["vae"]), case, "vae"),
        image_encoder=_load(CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg["image_encoder"])), case,
                            "image_encoder"),
        clip_mean=tuple(fe["image_mean"]), clip_std=tuple(fe["image_std"]), clip_size=(fe["crop_size"]["height"], fe["crop_size"]["width"]),
    )


def _controlnet(case) -> HybridControlNet:
    cn = case.sidecar["config"]["controlnet"]
    pa = cn["point_adapter_replaced_by"]["kwargs"]
    dims = ControlNetDims(motion_channels=tuple(cn["resulting_config"]["conditioning_embedding_out_channels"]),
                          point_embedding_channels=pa["embedding_channels"], point_mid_dim=pa["mid_dim"])
    return _load(HybridControlNet(case.sidecar["config"]["unet"], dims), case, "controlnet")


def _control(case) -> ControlInputs:
    t, kw = case.tensors, case.sidecar["call_kwargs"]
    frames = kw["num_frames"]
    keypoints = t["in.point_candidate"].numpy()
    subset = t["in.point_subset"].numpy()
    poses = PoseSequence(
        body=keypoints, body_score=np.ones((frames, 18), np.float32), body_subset=subset,
        hands=np.zeros((frames, 2, 21, 2), np.float32), hands_score=np.zeros((frames, 2, 21), np.float32),
        faces=np.zeros((frames, 68, 2), np.float32), faces_score=np.zeros((frames, 68), np.float32),
        height=kw["height"], width=kw["width"])
    points = build_point_embeddings(t["in.dift_feat_1"], poses)
    assert rel_l2(points.ref_point_emb, t["aux.ref_point_emb"][0]) < 1e-5
    return ControlInputs(controlnet=_controlnet(case), motion_field=MotionField(t["in.traj_flow"][0]),
                         dense_flow=DenseFlow(t["in.controlnet_flow"][0]), points=points,
                         strength=kw["controlnet_cond_scale"])


def _settings(case) -> dict:
    kw = case.sidecar["call_kwargs"]
    return dict(seed=kw["generator_seed"], steps=kw["num_inference_steps"], min_guidance=kw["min_guidance_scale"],
                max_guidance=kw["max_guidance_scale"], noise_aug=kw["noise_aug_strength"], fps=kw["fps"],
                motion_bucket_id=kw["motion_bucket_id"], tile_size=kw["tile_size"], overlap=kw["tile_overlap"])


def _poses(case) -> torch.Tensor:
    return case.tensors["in.image_pose_uint8"].permute(0, 2, 3, 1)


@golden_params("M5")
def test_sampler_matches_official_pipeline(golden_name):
    case = require(golden_name)
    t, tol = case.tensors, case.sidecar["tolerance"]["recommended"]
    models = _models(case)
    control = _control(case)
    calls = []
    reference = t["in.ref_image_uint8"].numpy()
    latents = sample_latents(models, reference, _poses(case), control=control, **_settings(case),
                             progress=lambda done, total: calls.append((done, total)))
    assert len(calls) == case.sidecar["checks"]["num_unet_calls"] == calls[-1][1]
    assert rel_l2(latents, t["out.latents"][0]) < tol["out.latents"]

    frames = sample_video(models, reference, _poses(case), control=control, **_settings(case),
                          decode_chunk_size=case.sidecar["call_kwargs"]["decode_chunk_size"],
                          keep_reference_frame=True)
    expected = (t["out.decoded_raw"][0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0)
    assert frames.shape == expected.shape
    assert rel_l2(frames, expected) < tol["out.decoded_raw"]
