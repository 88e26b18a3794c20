"""Weight bytes resident on the load device per sampler phase, for each memory mode (real sizes).

    python3 bench/bench_resident.py [--budget-gib 8]

The real SVD xt 1.1 / MimicMotion / DisPose architectures are built on the meta device (shapes
only, nothing allocated) in fp16, and the library's memory modes are applied to them:
  * all-in-one: the four models together for the whole run (what one ModelPatcher holding
    everything gave, the pack's nodes before issue 10);
  * per phase: encode = CLIP image encoder + VAE, sample = UNet + PoseNet + ControlNet,
    decode = VAE: the MimicMotion Sampler node's policy (one ComfyUI patcher per model, each
    phase's models loaded for it and unloaded after it; the same with core VAE/CLIP_VISION sockets);
  * fp8: UNet and ControlNet Linear/Conv weights in float8_e4m3fn (``store_weights_fp8``; the
    MimicMotion Loader's ``weight_dtype`` fp8_e4m3fn, PoseNet, CLIP and VAE stay as they are);
  * stream: the sample phase's weights under each ``--budget-gib`` minus the measured tile
    activation memory at 576x1024, tile 16 (``stream_weights`` + ``tile_activation_bytes``). In
    ComfyUI the node passes that activation estimate as ``memory_required`` and ComfyUI's partial
    load picks which layers stay resident under the budget; the resident total is the same bound.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dispose_core.loading.svd import meta_image_encoder, meta_vae  # noqa: E402
from dispose_core.loading.svd_single_file import (  # noqa: E402
    SVD_XT_IMAGE_ENCODER_CONFIG,
    SVD_XT_UNET_CONFIG,
    SVD_XT_VAE_CONFIG,
)
from dispose_core.models.cast_layers import store_weights_fp8, stream_weights, weight_bytes  # noqa: E402
from dispose_core.models.controlnet import ControlNetDims, HybridControlNet  # noqa: E402
from dispose_core.models.posenet import PoseNet  # noqa: E402
from dispose_core.models.unet import MimicMotionUNet  # noqa: E402
from dispose_core.sampling.memory import tile_activation_bytes  # noqa: E402

GIB = 2**30


def models() -> dict[str, torch.nn.Module]:
    torch.set_default_dtype(torch.float16)
    with torch.device("meta"):  # (a few scalar blend factors still land on the CPU: bytes count the same)
        unet = MimicMotionUNet.from_config(SVD_XT_UNET_CONFIG)
        built = {"clip": meta_image_encoder(SVD_XT_IMAGE_ENCODER_CONFIG), "vae": meta_vae(SVD_XT_VAE_CONFIG),
                 "unet": unet, "pose_net": PoseNet(unet.config.block_out_channels[0]),
                 "controlnet": HybridControlNet(unet.config, ControlNetDims())}
    torch.set_default_dtype(torch.float32)
    return built


def phase_bytes(sizes: dict[str, int]) -> dict[str, int]:
    return {"encode": sizes["clip"] + sizes["vae"], "sample": sizes["unet"] + sizes["pose_net"] + sizes["controlnet"],
            "decode": sizes["vae"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-gib", type=float, nargs="+", default=[8.0, 6.0, 4.0])
    args = parser.parse_args()
    m = models()
    fp16 = {k: weight_bytes(v) for k, v in m.items()}
    print("fp16 weights (GiB): " + ", ".join(f"{k} {v / GIB:.2f}" for k, v in fp16.items()))
    rows = {"all-in-one": {p: sum(fp16.values()) for p in ("encode", "sample", "decode")},
            "per phase": phase_bytes(fp16)}
    for name in ("unet", "controlnet"):
        store_weights_fp8(m[name])
    fp8 = dict(fp16, unet=weight_bytes(m["unet"]), controlnet=weight_bytes(m["controlnet"]))
    rows["per phase + fp8"] = phase_bytes(fp8)
    activations = tile_activation_bytes(576, 1024, 16, torch.float16)
    print(f"tile activations at 576x1024, tile 16, fp16 (measured coefficient): {activations / GIB:.2f} GiB")
    for gib in args.budget_gib:
        budget = int(gib * GIB) - activations
        with torch.device("meta"):  # the sample phase's models again, fp16, streamed under the budget
            unet = MimicMotionUNet.from_config(SVD_XT_UNET_CONFIG).half()
            net = HybridControlNet(unet.config, ControlNetDims()).half()
        # .to("meta"): diffusers creates its blend factors on the CPU even under a meta device context
        sample = torch.nn.ModuleDict({"unet": unet, "pose_net": PoseNet(320).half(), "controlnet": net}).to("meta")
        plan = stream_weights(sample, "meta", budget)
        rows[f"per phase + stream ({gib:g} GiB)"] = dict(phase_bytes(fp16), sample=plan.resident_bytes)
        print(f"{gib:g} GiB: weights budget {budget / GIB:.2f} GiB -> {plan.streamed_layers} layers "
              f"({plan.streamed_bytes / GIB:.2f} GiB) streamed per tile call")
    print(f"{'mode':<32} {'encode':>8} {'sample':>8} {'decode':>8}   (GiB resident on the load device)")
    for name, row in rows.items():
        print(f"{name:<32} " + " ".join(f"{row[p] / GIB:>8.2f}" for p in ("encode", "sample", "decode")))


if __name__ == "__main__":
    main()
