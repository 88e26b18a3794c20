"""The pose and guidance nodes run in-process with ComfyUI (as its executor calls them) on the
tiny random-weight models, wired as in the example workflows: shapes, frame counts, progress,
interrupts, ComfyUI model management."""
from __future__ import annotations

import importlib

import pytest
import torch

from dispose_core import errors
from host_utils import PACK_NAME, call_node, guidance_graph, load_pack, model_dirs, pack_nodes

pytestmark = pytest.mark.comfy
RESOLUTION = 64


@pytest.fixture(scope="module")
def bridge():
    return load_pack().nodes.comfy_bridge


@pytest.fixture(scope="module")
def graph(tiny_models_dir):
    with model_dirs(tiny_models_dir):
        yield guidance_graph(num_frames=9, resolution=RESOLUTION)


def is_image(x: torch.Tensor, frames: int, hw: tuple[int, int]) -> bool:
    return (x.dtype == torch.float32 and tuple(x.shape) == (frames, *hw, 3)
            and float(x.min()) >= 0.0 and float(x.max()) <= 1.0)


def test_pose_keypoint_path(graph):
    poses = graph["poses"]
    hw = (poses.height, poses.width)
    assert hw == load_pack().dispose_core.image.target_size(*graph["reference"].shape[1:3], RESOLUTION)
    assert poses.num_frames == graph["frames"].shape[0] + 1
    assert is_image(graph["skeletons"], poses.num_frames, hw)
    assert graph["skeletons"].max() > 0  # skeletons were drawn
    assert len(graph["keypoints"]) == poses.num_frames


def test_reference_pose_keypoint_input(graph):
    kp = graph["keypoints_in"]
    poses, _, _, _ = call_node("DisPoseDWPoseExtract", reference_image=graph["reference"], resolution=RESOLUTION,
                               align=True, pose_keypoint=kp[1:], reference_pose_keypoint=[kp[0]], sample_stride=1)
    assert poses.num_frames == graph["poses"].num_frames
    assert abs(poses.body - graph["poses"].body).max() < 1e-4
    with pytest.raises(errors.InputError, match="Frame counts do not match"):
        call_node("DisPoseDWPoseExtract", reference_image=graph["reference"], resolution=RESOLUTION, align=True,
                  pose_keypoint=kp, driving_frames=graph["frames"][:-1])


def test_dwpose_path(tiny_models_dir, graph):
    with model_dirs(tiny_models_dir):
        (dwpose,) = call_node("DisPoseDWPoseLoader", detector="yolox_l.onnx", pose_model="dw-ll_ucoco_384.onnx")
    poses, skeletons, keypoints, _ = call_node(
        "DisPoseDWPoseExtract", reference_image=graph["reference"], resolution=RESOLUTION, align=False,
        driving_frames=graph["frames"][:3], dwpose_model=dwpose, sample_stride=1)
    assert poses.num_frames == 4 and skeletons.shape[0] == 4 and len(keypoints) == 4
    assert (poses.height, poses.width) == tuple(skeletons.shape[1:3])


def test_dift_loader_takes_a_single_file_checkpoint(tiny_models_dir, tmp_path, monkeypatch):
    from test_dift_single_file import _write_ldm_checkpoint  # the tiny SD 1.5 in the LDM single-file layout

    from dispose_core.tiny import sd15 as tiny

    sd15 = importlib.import_module(f"{PACK_NAME}.dispose_core.loading.sd15")  # the copy the node uses
    monkeypatch.setattr(sd15, "SD15_CONFIGS",
                        {"unet": tiny._UNET, "vae": tiny._VAE, "text_encoder": tiny._TEXT})
    (tmp_path / "checkpoints").mkdir()
    folder = tiny_models_dir / "diffusers" / "stable-diffusion-v1-5"
    _write_ldm_checkpoint(folder, tmp_path / "checkpoints" / "tiny-sd15.safetensors")
    with model_dirs(tmp_path):
        (choice,) = pack_nodes()["DisPoseDIFTLoader"].define_schema().inputs[:1]
        assert "checkpoints/tiny-sd15.safetensors" in choice.options
        (single,) = call_node("DisPoseDIFTLoader", sd15_folder="checkpoints/tiny-sd15.safetensors",
                              precision="fp32")
    reference = sd15.load_dift(folder)
    assert torch.equal(single.value.prompt_embeds, reference.prompt_embeds)


def test_guidance_stages(graph):
    poses = graph["poses"]
    hw = (poses.height, poses.width)
    f = poses.num_frames
    assert tuple(graph["motion"].fields().shape) == (f - 1, 2, *hw)
    assert tuple(graph["flow"].fields().shape) == (f - 1, 2, *hw)
    assert graph["points"].num_frames == f
    assert is_image(graph["motion_preview"], f - 1, hw)
    assert is_image(graph["flow_preview"], f - 1, hw)
    assert is_image(graph["points_preview"], f, hw)


def test_loaders_wrap_models_for_comfy(graph):
    """The CMP model is handed to ComfyUI's model management as a ModelPatcher of its modules,
    and the dense-flow stage loaded it through load_models_gpu."""
    import comfy.model_management as mm
    from comfy.model_patcher import ModelPatcher

    managed = graph["cmp"]
    assert isinstance(managed.modules, torch.nn.ModuleDict) and managed.modules["model"] is managed.value
    assert isinstance(managed.patcher, ModelPatcher) and managed.patcher.model is managed.modules
    assert any(loaded.model is managed.patcher for loaded in mm.current_loaded_models)


def test_dense_flow_checks_canvas(graph):
    other, _, _, _ = call_node("DisPoseDWPoseExtract", reference_image=graph["reference"], resolution=128,
                               align=True, pose_keypoint=graph["keypoints_in"], sample_stride=1)
    flow, _ = call_node("DisPoseCMPDenseFlow", cmp_model=graph["cmp"], reference_image=graph["reference"],
                        poses=other, batch_size=4)
    assert (flow.height, flow.width) == (other.height, other.width)  # reference is refitted to the canvas
    with pytest.raises(errors.InputError, match="Frame counts|canvas|same DWPose Extract"):
        call_node("DisPoseHybridControlNetApply", dispose_controlnet=None, motion_field=graph["motion"],
                  dense_flow=flow, point_embeddings=graph["points"], strength=1.0, motion_strength=1.0,
                  point_strength=1.0, start_percent=0.0, end_percent=1.0)


def test_progress_and_interrupt_in_cmp(graph, bridge, monkeypatch):
    seen = []
    monkeypatch.setattr(bridge, "progress_bar", lambda total=1: lambda done, total: seen.append((done, total)))
    call_node("DisPoseCMPDenseFlow", cmp_model=graph["cmp"], reference_image=graph["reference"],
              poses=graph["poses"], batch_size=3)
    batches = -(-(graph["poses"].num_frames - 1) // 3)
    assert len(seen) == batches and seen[-1][0] == seen[-1][1]

    class Interrupted(Exception):
        pass

    freed = []

    def stop():
        raise Interrupted

    monkeypatch.setattr(bridge, "should_stop", stop)
    monkeypatch.setattr(bridge, "free_memory", lambda: freed.append(1))
    with pytest.raises(Interrupted):
        call_node("DisPoseCMPDenseFlow", cmp_model=graph["cmp"], reference_image=graph["reference"],
                  poses=graph["poses"], batch_size=3)
    assert freed == [1]
