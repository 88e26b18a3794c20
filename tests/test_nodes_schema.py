"""The node classes as ComfyUI sees them (ids, names, inputs, tooltips, defaults), file lookup and
input checks that need no model. Runs without ComfyUI: the pack is imported as ComfyUI would."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from host_utils import REPO, load_pack

pack = load_pack()
bridge = pack.nodes.comfy_bridge
errors = pack.dispose_core.errors
types = pack.dispose_core.types

EXPECTED_NAMES = {
    "DisPoseDWPoseLoader": "DWPose Loader (DisPose)",
    "DisPoseDWPoseExtract": "DWPose Extract",
    "DisPoseSparseMotionField": "Sparse Motion Field",
    "DisPoseCMPLoader": "CMP Loader (DisPose)",
    "DisPoseCMPDenseFlow": "CMP Dense Flow",
    "DisPoseDIFTLoader": "DIFT Loader (SD 1.5)",
    "DisPoseDIFTPointEmbed": "DIFT Point Embed",
    "DisPoseControlNetLoader": "DisPose ControlNet Loader",
    "DisPoseHybridControlNetApply": "Hybrid ControlNet Apply",
    "DisPoseMimicMotionLoader": "MimicMotion Loader",
    "DisPoseMimicMotionSampler": "MimicMotion Sampler",
}


def inputs_of(node_id: str) -> dict:
    spec = pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    return {**spec.get("required", {}), **spec.get("optional", {})}


def test_ids_and_display_names():
    assert pack.NODE_DISPLAY_NAME_MAPPINGS == EXPECTED_NAMES
    assert set(pack.NODE_CLASS_MAPPINGS) == set(EXPECTED_NAMES)
    assert pack.WEB_DIRECTORY == "./web"


@pytest.mark.parametrize("node_id", sorted(EXPECTED_NAMES))
def test_every_input_has_a_tooltip_and_function(node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert cls.CATEGORY == "DisPose"
    assert callable(getattr(cls(), cls.FUNCTION))
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
    for name, spec in inputs_of(node_id).items():
        assert len(spec) == 2 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_defaults_are_the_official_ones():
    s = {k: v[1].get("default") for k, v in inputs_of("DisPoseMimicMotionSampler").items()}
    assert s == {"mimicmotion_model": None, "reference_image": None, "poses": None, "control": None,
                 "seed": 42, "steps": 25, "min_guidance": 2.0, "max_guidance": 2.0, "noise_aug": 0.0,
                 "fps": 7, "motion_bucket_id": 127, "tile_size": 16, "overlap": 6, "decode_chunk_size": 8}
    m = inputs_of("DisPoseSparseMotionField")
    assert (m["kernel_size"][1]["default"], m["sigma"][1]["default"]) == (199, 20.0)
    assert inputs_of("DisPoseDWPoseExtract")["resolution"][1]["default"] == 576
    assert inputs_of("DisPoseCMPDenseFlow")["batch_size"][1]["default"] == 8
    c = inputs_of("DisPoseHybridControlNetApply")
    assert [c[k][1]["default"] for k in ("strength", "motion_strength", "point_strength",
                                         "start_percent", "end_percent")] == [1.0, 1.0, 1.0, 0.0, 1.0]


def test_socket_types_connect():
    """Every custom input type is produced by some node (or is POSE_KEYPOINT from another pack)."""
    produced = {t for c in pack.NODE_CLASS_MAPPINGS.values() for t in c.RETURN_TYPES}
    consumed = {spec[0] for nid in EXPECTED_NAMES for spec in inputs_of(nid).values()
                if isinstance(spec[0], str) and spec[0].isupper()}
    assert consumed - produced <= {"IMAGE", "INT", "FLOAT", "BOOLEAN"}
    assert {"DISPOSE_POSES", "DISPOSE_MOTION", "DISPOSE_FLOW", "DISPOSE_POINTS", "DISPOSE_CONTROL",
            "MIMICMOTION_MODEL", "DWPOSE_MODEL", "CMP_MODEL", "DIFT_MODEL", "DISPOSE_CONTROLNET",
            "POSE_KEYPOINT"} <= produced


def test_import_is_light():
    """Importing the pack must not pull in diffusers/onnxruntime/transformers (ComfyUI start-up)."""
    code = ("import sys; sys.path.insert(0, 'tests'); from host_utils import load_pack; load_pack(); "
            "print(sorted(m for m in ('diffusers', 'onnxruntime', 'transformers', 'cv2', 'onnx') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_model_dropdowns_list_found_files(tmp_path):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "other.pth").write_bytes(b"x")
    (tmp_path / "diffusers" / "my-sd15").mkdir(parents=True)
    bridge.set_model_dirs(tmp_path)
    options, opts = inputs_of("DisPoseCMPLoader")["cmp_checkpoint"]
    assert options == ["ckpt_iter_42000.pth.tar", "other.pth"] and opts["default"] == options[0]
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "v1-5-pruned-emaonly.safetensors").write_bytes(b"x")
    (tmp_path / "checkpoints" / "notes.txt").write_bytes(b"x")
    assert inputs_of("DisPoseDIFTLoader")["sd15_folder"][0] == [
        "stable-diffusion-v1-5", "my-sd15", "checkpoints/v1-5-pruned-emaonly.safetensors"]
    assert inputs_of("DisPoseCMPLoader")["precision"][0] == ["auto", "fp32", "fp16", "bf16"]


@pytest.mark.parametrize("node_id, kwargs, missing", [
    ("DisPoseCMPLoader", {"cmp_checkpoint": "ckpt_iter_42000.pth.tar", "precision": "auto"},
     "ckpt_iter_42000.pth.tar"),
    ("DisPoseDWPoseLoader", {"detector": "yolox_l.onnx", "pose_model": "dw-ll_ucoco_384.onnx"}, "yolox_l.onnx"),
    ("DisPoseDIFTLoader", {"sd15_folder": "stable-diffusion-v1-5", "precision": "fp32"}, "stable-diffusion-v1-5"),
    ("DisPoseMimicMotionLoader", {"svd_folder": "stable-video-diffusion-img2vid-xt-1-1",
                                  "mimicmotion_checkpoint": "MimicMotion_1-1.pth", "precision": "auto"},
     "stable-video-diffusion-img2vid-xt-1-1"),
])
def test_missing_model_names_file_folder_and_source(tmp_path, node_id, kwargs, missing):
    bridge.set_model_dirs(tmp_path)
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert cls.VALIDATE_INPUTS(**{k: v for k, v in kwargs.items() if k != "precision"}) is True
    with pytest.raises(errors.ModelFileError) as err:
        getattr(cls(), cls.FUNCTION)(**kwargs)
    msg = str(err.value)
    assert missing in msg and str(tmp_path) in msg and "https://huggingface.co/" in msg


def test_missing_single_file_sd15_names_the_checkpoints_folder(tmp_path):
    bridge.set_model_dirs(tmp_path)
    with pytest.raises(errors.ModelFileError) as err:
        pack.NODE_CLASS_MAPPINGS["DisPoseDIFTLoader"]().run(sd15_folder="checkpoints/sd15.safetensors",
                                                            precision="auto")
    assert "'sd15.safetensors'" in str(err.value) and str(tmp_path / "checkpoints") in str(err.value)


def test_unknown_file_name_is_reported(tmp_path):
    bridge.set_model_dirs(tmp_path)
    with pytest.raises(errors.ModelFileError, match="'typo.pth' not found"):
        pack.NODE_CLASS_MAPPINGS["DisPoseCMPLoader"]().run(cmp_checkpoint="typo.pth", precision="auto")


def test_extract_without_model_or_keypoints_says_what_to_connect():
    node = pack.NODE_CLASS_MAPPINGS["DisPoseDWPoseExtract"]()
    with pytest.raises(errors.InputError, match="pose_keypoint"):
        node.run(reference_image=torch.rand(1, 64, 48, 3), resolution=64, align=True,
                 driving_frames=torch.rand(3, 64, 48, 3))


def _signals(frames: int, h: int = 32, w: int = 16):
    motion = types.MotionField(torch.zeros(frames - 1, 2, h, w))
    flow = types.DenseFlow(torch.zeros(frames - 1, 2, h, w))
    points = types.PointEmbeddings(torch.zeros(18, 8), np.zeros((frames, 18, 2)), np.zeros((frames, 18)))
    return motion, flow, points


def test_control_apply_checks_frame_counts():
    node = pack.NODE_CLASS_MAPPINGS["DisPoseHybridControlNetApply"]()
    motion, flow, _ = _signals(5)
    _, _, points = _signals(4)
    with pytest.raises(errors.InputError, match="Frame counts do not match"):
        node.run(dispose_controlnet=None, motion_field=motion, dense_flow=flow, point_embeddings=points,
                 strength=1.0, motion_strength=1.0, point_strength=1.0, start_percent=0.0, end_percent=1.0)
    motion, flow, points = _signals(5)
    (control,) = node.run(dispose_controlnet="cn", motion_field=motion, dense_flow=flow, point_embeddings=points,
                          strength=0.5, motion_strength=0.0, point_strength=1.0, start_percent=0.1,
                          end_percent=0.9)
    assert control.motion_strength == 0.0 and control.strength == 0.5 and control.end_percent == 0.9
    with pytest.raises(errors.InputError, match="start_percent"):
        node.run(dispose_controlnet="cn", motion_field=motion, dense_flow=flow, point_embeddings=points,
                 strength=1.0, motion_strength=1.0, point_strength=1.0, start_percent=0.8, end_percent=0.2)


def test_reference_must_be_one_image():
    pipeline = pack.dispose_core.pipeline
    with pytest.raises(errors.InputError, match="one image"):
        pipeline.canvas_for(torch.rand(2, 64, 48, 3), 576)
    assert pipeline.canvas_for(torch.rand(1, 1280, 720, 3), 576) == (1024, 576)


def test_bridge_fallback_without_comfy():
    """Outside ComfyUI: CPU, fp32 for auto, never interrupted, progress a no-op, no ModelPatcher."""
    assert not bridge.IN_COMFY
    assert bridge.torch_device().type == "cpu" and bridge.intermediate_device().type == "cpu"
    assert bridge.pick_dtype("auto") == torch.float32 and bridge.pick_dtype("bf16") == torch.bfloat16
    assert bridge.should_stop() is False
    assert bridge.progress_bar(3)(1, 3) is None
    assert bridge.onnx_providers() == ["CPUExecutionProvider"]
    managed = bridge.manage(torch.nn.Linear(2, 2))
    assert managed.patcher is None and bridge.load_to_device([managed]).type == "cpu"
