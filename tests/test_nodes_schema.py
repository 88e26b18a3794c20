"""The node classes as ComfyUI sees them (V3 schema, and the /object_info view saved workflows
depend on), model-file lookup and input checks that need no model. ComfyUI in-process."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from dispose_core import errors, pipeline, types
from host_utils import REPO, call_node, load_pack, model_dirs, pack_nodes, v1_info

pytestmark = pytest.mark.comfy

# The inputs (name, type, optional, default/min/max/step) and outputs of every node as the first
# (V1, INPUT_TYPES) release defined them. UI workflows store widget values by position and API
# prompts by name, so these must never change. 2**64 - 1 is the seed maximum.
V1_NODES = {
    "DisPoseDWPoseLoader": ([
        ("detector", "COMBO", False, {"default": "yolox_l.onnx"}),
        ("pose_model", "COMBO", False, {"default": "dw-ll_ucoco_384.onnx"}),
    ], ("DWPOSE_MODEL",), ("dwpose_model",)),
    "DisPoseDWPoseExtract": ([
        ("reference_image", "IMAGE", False, {}),
        # max 2048 in V1; 1024 since issue 16 (dispose_core/limits.py: 2048 cannot run)
        ("resolution", "INT", False, {"default": 576, "min": 64, "max": 1024, "step": 64}),
        ("align", "BOOLEAN", False, {"default": True}),
        ("driving_frames", "IMAGE", True, {}),
        ("dwpose_model", "DWPOSE_MODEL", True, {}),
        ("pose_keypoint", "POSE_KEYPOINT", True, {}),
        ("reference_pose_keypoint", "POSE_KEYPOINT", True, {}),
    ], ("DISPOSE_POSES", "IMAGE", "POSE_KEYPOINT"), ("poses", "skeletons", "pose_keypoint")),
    "DisPoseSparseMotionField": ([
        ("poses", "DISPOSE_POSES", False, {}),
        ("kernel_size", "INT", False, {"default": 199, "min": 1, "max": 999, "step": 2}),
        ("sigma", "FLOAT", False, {"default": 20.0, "min": 0.1, "max": 200.0, "step": 0.1}),
    ], ("DISPOSE_MOTION", "IMAGE"), ("motion_field", "preview")),
    "DisPoseCMPLoader": ([
        ("cmp_checkpoint", "COMBO", False, {"default": "ckpt_iter_42000.pth.tar"}),
        ("precision", "COMBO", False, {"default": "auto"}),
    ], ("CMP_MODEL",), ("cmp_model",)),
    "DisPoseCMPDenseFlow": ([
        ("cmp_model", "CMP_MODEL", False, {}),
        ("reference_image", "IMAGE", False, {}),
        ("poses", "DISPOSE_POSES", False, {}),
        ("batch_size", "INT", False, {"default": 8, "min": 1, "max": 256}),
    ], ("DISPOSE_FLOW", "IMAGE"), ("dense_flow", "preview")),
    "DisPoseDIFTLoader": ([
        ("sd15_folder", "COMBO", False, {"default": "stable-diffusion-v1-5"}),
        ("precision", "COMBO", False, {"default": "auto"}),
    ], ("DIFT_MODEL",), ("dift_model",)),
    "DisPoseDIFTPointEmbed": ([
        ("dift_model", "DIFT_MODEL", False, {}),
        ("reference_image", "IMAGE", False, {}),
        ("poses", "DISPOSE_POSES", False, {}),
        ("ensemble_size", "INT", False, {"default": 8, "min": 1, "max": 64}),
        ("seed", "INT", False, {"default": 0, "min": 0, "max": 2**64 - 1}),
    ], ("DISPOSE_POINTS", "IMAGE"), ("point_embeddings", "preview")),
    "DisPoseControlNetLoader": ([
        ("mimicmotion_model", "MIMICMOTION_MODEL", False, {}),
        ("dispose_checkpoint", "COMBO", False, {"default": "DisPose.pth"}),
        ("precision", "COMBO", False, {"default": "auto"}),
    ], ("DISPOSE_CONTROLNET",), ("dispose_controlnet",)),
    "DisPoseHybridControlNetApply": ([
        ("dispose_controlnet", "DISPOSE_CONTROLNET", False, {}),
        ("motion_field", "DISPOSE_MOTION", False, {}),
        ("dense_flow", "DISPOSE_FLOW", False, {}),
        ("point_embeddings", "DISPOSE_POINTS", False, {}),
        ("strength", "FLOAT", False, {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.05}),
        ("motion_strength", "FLOAT", False, {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.05}),
        ("point_strength", "FLOAT", False, {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.05}),
        ("start_percent", "FLOAT", False, {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
        ("end_percent", "FLOAT", False, {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
    ], ("DISPOSE_CONTROL",), ("control",)),
    "DisPoseMimicMotionLoader": ([
        ("svd_folder", "COMBO", False, {"default": "stable-video-diffusion-img2vid-xt-1-1"}),
        ("mimicmotion_checkpoint", "COMBO", False, {"default": "MimicMotion_1-1.pth"}),
        ("precision", "COMBO", False, {"default": "auto"}),
    ], ("MIMICMOTION_MODEL",), ("mimicmotion_model",)),
    "DisPoseMimicMotionSampler": ([
        ("mimicmotion_model", "MIMICMOTION_MODEL", False, {}),
        ("reference_image", "IMAGE", False, {}),
        ("poses", "DISPOSE_POSES", False, {}),
        ("seed", "INT", False, {"default": 42, "min": 0, "max": 2**64 - 1}),
        ("steps", "INT", False, {"default": 25, "min": 1, "max": 200}),
        ("min_guidance", "FLOAT", False, {"default": 2.0, "min": 0.0, "max": 20.0, "step": 0.1}),
        ("max_guidance", "FLOAT", False, {"default": 2.0, "min": 0.0, "max": 20.0, "step": 0.1}),
        ("noise_aug", "FLOAT", False, {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
        ("fps", "INT", False, {"default": 7, "min": 1, "max": 60}),
        ("motion_bucket_id", "INT", False, {"default": 127, "min": 0, "max": 1023}),
        ("tile_size", "INT", False, {"default": 16, "min": 2, "max": 128}),
        ("overlap", "INT", False, {"default": 6, "min": 0, "max": 127}),
        ("decode_chunk_size", "INT", False, {"default": 8, "min": 1, "max": 128}),
        ("control", "DISPOSE_CONTROL", True, {}),
    ], ("IMAGE",), ("frames",)),
}

# Inputs and outputs added since, in the order they were appended (issue 9: frame sampling,
# person and empty-frame choices, the official-quirk switches; issue 10: the SVD single file's
# core VAE / CLIP vision sockets, fp8 weights). Appended after the V1 ones and optional, so V1
# widget positions and V1 API prompts (which lack them) stay valid.
ADDED_INPUTS = {
    "DisPoseDWPoseExtract": [
        ("fps", "FLOAT", True, {"default": 30.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
        ("sample_stride", "INT", True, {"default": 2, "min": 1, "max": 64}),
        ("max_frames", "INT", True, {"default": 0, "min": 0, "max": 100000}),
        ("skip_first_frames", "INT", True, {"default": 0, "min": 0, "max": 100000}),
        ("person", "COMBO", True, {"default": "official"}),
        ("person_index", "INT", True, {"default": 0, "min": 0, "max": 63}),
        ("empty_frames", "COMBO", True, {"default": "official"}),
        ("retarget", "BOOLEAN", True, {"default": False}),
        ("smooth_window", "INT", True, {"default": 0, "min": 0, "max": 99}),
        ("smooth_max_shift", "FLOAT", True, {"default": 8.0, "min": 0.0, "max": 1000.0, "step": 0.5}),
        ("fit_on_empty_frames", "BOOLEAN", True, {"default": True}),
        ("driving_video", "VIDEO", True, {}),  # issue 16: core VIDEO, only the kept frames decoded
    ],
    "DisPoseSparseMotionField": [("drop_vanishing", "BOOLEAN", True, {"default": False})],
    "DisPoseCMPDenseFlow": [("mask_invisible", "BOOLEAN", True, {"default": False})],
    "DisPoseDIFTPointEmbed": [("natural_orientation", "BOOLEAN", True, {"default": False})],
    "DisPoseMimicMotionLoader": [
        ("vae", "VAE", True, {}),
        ("clip_vision", "CLIP_VISION", True, {}),
        ("weight_dtype", "COMBO", True, {"default": "default"}),
    ],
    "DisPoseMimicMotionSampler": [  # issue 10
        ("official_batch_quirk", "BOOLEAN", True, {"default": True}),
        ("noise_device", "COMBO", True, {"default": "official"}),
        ("noise_draw", "COMBO", True, {"default": "official"}),  # issue 14
    ],
}
ADDED_OUTPUTS = {"DisPoseDWPoseExtract": (("FLOAT",), ("fps",)),
                 "DisPoseMimicMotionLoader": (("MODEL",), ("model",)),  # issue 14: the native MODEL
                 "DisPoseMimicMotionSampler": (("LATENT",), ("latent",))}
ADDED_OPTIONS = {("DisPoseDWPoseExtract", "person"): ["official", "largest_tracked", "by_index"],
                 ("DisPoseDWPoseExtract", "empty_frames"): ["official", "interpolate", "hold"]}


# Issue 16: the stage nodes with a preview IMAGE output got successors without it (ComfyUI keeps every
# output for the whole run, linked or not); the V1 ids stay, deprecated, for saved workflows.
V2_OF = {"DisPoseDWPoseExtractV2": "DisPoseDWPoseExtract", "DisPoseSparseMotionFieldV2": "DisPoseSparseMotionField",
         "DisPoseCMPDenseFlowV2": "DisPoseCMPDenseFlow", "DisPoseDIFTPointEmbedV2": "DisPoseDIFTPointEmbed"}
V2_OUTPUTS = {"DisPoseDWPoseExtractV2": (("DISPOSE_POSES", "POSE_KEYPOINT", "FLOAT"), ("poses", "pose_keypoint", "fps")),
              "DisPoseSparseMotionFieldV2": (("DISPOSE_MOTION",), ("motion_field",)),
              "DisPoseCMPDenseFlowV2": (("DISPOSE_FLOW",), ("dense_flow",)),
              "DisPoseDIFTPointEmbedV2": (("DISPOSE_POINTS",), ("point_embeddings",))}
PREVIEW_NODE = ([("long_side", "INT", False, {"default": 256, "min": 64, "max": 1024, "step": 8}),
                 ("poses", "DISPOSE_POSES", True, {}), ("motion_field", "DISPOSE_MOTION", True, {}),
                 ("dense_flow", "DISPOSE_FLOW", True, {}), ("point_embeddings", "DISPOSE_POINTS", True, {})],
                ("IMAGE",), ("preview",))


def expected_node(node_id: str) -> tuple[list[tuple], tuple[str, ...], tuple[str, ...]]:
    """(inputs in order, output types, output names) a node must show: V1's, then what was appended."""
    if node_id == "DisPoseGuidancePreview":
        return PREVIEW_NODE
    if node_id in V2_OF:
        return expected_node(V2_OF[node_id])[0], *V2_OUTPUTS[node_id]
    inputs, outputs, names = V1_NODES[node_id]
    more_outputs, more_names = ADDED_OUTPUTS.get(node_id, ((), ()))
    return inputs + ADDED_INPUTS.get(node_id, []), outputs + more_outputs, names + more_names


EXPECTED_NAMES = {
    "DisPoseDWPoseLoader": "DWPose Loader (DisPose)",
    "DisPoseDWPoseExtract": "DWPose Extract (legacy, with preview)",
    "DisPoseSparseMotionField": "Sparse Motion Field (legacy, with preview)",
    "DisPoseCMPLoader": "CMP Loader (DisPose)",
    "DisPoseCMPDenseFlow": "CMP Dense Flow (legacy, with preview)",
    "DisPoseDIFTLoader": "DIFT Loader (SD 1.5)",
    "DisPoseDIFTPointEmbed": "DIFT Point Embed (legacy, with preview)",
    "DisPoseControlNetLoader": "DisPose ControlNet Loader",
    "DisPoseHybridControlNetApply": "Hybrid ControlNet Apply",
    "DisPoseMimicMotionLoader": "MimicMotion Loader",
    "DisPoseMimicMotionSampler": "MimicMotion Sampler",
    # issue 14: the native path
    "DisPoseMimicMotionConditioning": "MimicMotion Conditioning",
    "DisPoseApplyControl": "Apply DisPose Control",
    "DisPoseMimicMotionTiles": "MimicMotion Tiles",
    "DisPoseMimicMotionNoise": "MimicMotion Noise",
    "DisPoseMimicMotionEuler": "MimicMotion Euler",
    "DisPoseMimicMotionScheduler": "MimicMotion Scheduler",
    "DisPoseMimicMotionDecode": "MimicMotion Decode",
    # issue 16: the stage nodes without preview outputs, and the preview node
    "DisPoseDWPoseExtractV2": "DWPose Extract",
    "DisPoseSparseMotionFieldV2": "Sparse Motion Field",
    "DisPoseCMPDenseFlowV2": "CMP Dense Flow",
    "DisPoseDIFTPointEmbedV2": "DIFT Point Embed",
    "DisPoseGuidancePreview": "DisPose Guidance Preview",
}


def test_registration_is_v3_only():
    """comfy_entrypoint lists every node; no NODE_CLASS_MAPPINGS (ComfyUI would then ignore the
    entrypoint); the frontend folder is still exported."""
    from comfy_api.latest import io

    pack = load_pack()
    assert not hasattr(pack, "NODE_CLASS_MAPPINGS") and pack.WEB_DIRECTORY == "./web"
    nodes = pack_nodes()
    assert {node_id: cls.GET_SCHEMA().display_name for node_id, cls in nodes.items()} == EXPECTED_NAMES
    assert all(issubclass(cls, io.ComfyNode) for cls in nodes.values())
    assert not any("INPUT_TYPES" in vars(cls) for cls in nodes.values())


def test_only_the_legacy_stage_nodes_are_deprecated():
    """The first-release stage nodes (with previews) are deprecated, so the frontend hides them from
    search; nothing else is, their successors included (ComfyUI caches these flags per class)."""
    deprecated = {node_id for node_id in pack_nodes() if v1_info(node_id)["deprecated"]}
    assert deprecated == set(V2_OF.values())
    assert all(pack_nodes()[node_id].GET_SCHEMA().is_deprecated for node_id in deprecated)


def test_an_old_comfyui_gets_told_to_update():
    """Without comfy_api.latest (a ComfyUI older than the V3 node API) the import says what to do."""
    code = ("import sys; sys.path.insert(0, 'tests'); import host_utils\n"
            "try:\n    host_utils.load_pack()\nexcept ImportError as err:\n    print(err)")
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "needs a ComfyUI with the V3 node API" in out.stdout and "update ComfyUI" in out.stdout


@pytest.mark.parametrize("node_id", sorted(V1_NODES) + sorted(V2_OF) + ["DisPoseGuidancePreview"])
def test_saved_workflows_keep_working(node_id):
    """/object_info of every node has the inputs (in order), defaults, ranges and outputs of the
    V1 release, then the optional ones appended since, so positional widgets_values, API prompts
    and output slots still map onto the same inputs and outputs."""
    info = v1_info(node_id)
    inputs, outputs, names = expected_node(node_id)
    order = info["input_order"]
    assert order.get("required", []) + order.get("optional", []) == [name for name, *_ in inputs]
    assert all(optional for _, _, optional, _ in ADDED_INPUTS.get(node_id, []))
    for name, kind, optional, numbers in inputs:
        t, opts = info["input"]["optional" if optional else "required"][name]
        assert t == kind, (node_id, name)
        assert {k: opts[k] for k in ("default", "min", "max", "step") if k in opts} == numbers, (node_id, name)
        if (node_id, name) in ADDED_OPTIONS:
            assert opts["options"] == ADDED_OPTIONS[node_id, name]
    assert tuple(info["output"]) == outputs and tuple(info["output_name"]) == names


@pytest.mark.parametrize("node_id", sorted(V1_NODES) + sorted(V2_OF) + ["DisPoseGuidancePreview"])
def test_every_input_and_output_has_a_tooltip(node_id):
    schema = pack_nodes()[node_id].GET_SCHEMA()
    assert schema.category == "DisPose" and schema.description
    for item in schema.inputs + schema.outputs:
        assert item.tooltip, f"{node_id}.{item.id} has no tooltip"


def test_socket_types_connect():
    """Every custom input type is produced by some node (or is POSE_KEYPOINT from another pack)."""
    schemas = [cls.GET_SCHEMA() for cls in pack_nodes().values()]
    produced = {o.io_type for s in schemas for o in s.outputs}
    consumed = {i.io_type for s in schemas for i in s.inputs}
    assert consumed - produced <= {"IMAGE", "INT", "FLOAT", "BOOLEAN", "COMBO", "VAE", "CLIP_VISION", "VIDEO"}
    assert {"DISPOSE_POSES", "DISPOSE_MOTION", "DISPOSE_FLOW", "DISPOSE_POINTS", "DISPOSE_CONTROL",
            "MIMICMOTION_MODEL", "DWPOSE_MODEL", "CMP_MODEL", "DIFT_MODEL", "DISPOSE_CONTROLNET",
            "POSE_KEYPOINT"} <= produced


def test_import_is_light():
    """Importing the pack adds no diffusers/onnxruntime/transformers/opencv to what ComfyUI has
    already loaded when it imports packs (its nodes.py), so the pack costs little start-up time."""
    code = ("import sys; sys.path.insert(0, 'tests'); import resources, host_utils; import nodes; "
            "heavy = lambda: {m for m in ('diffusers', 'onnxruntime', 'transformers', 'cv2', 'onnx') "
            "if m in sys.modules}; before = heavy(); host_utils.load_pack(); print(sorted(heavy() - before))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_model_dropdowns_are_read_again_for_every_object_info(tmp_path):
    """ComfyUI calls define_schema for each /object_info, so a file copied in shows up without a restart."""
    (tmp_path / "cmp").mkdir()
    (tmp_path / "diffusers" / "my-sd15").mkdir(parents=True)
    with model_dirs(tmp_path):
        options = lambda node_id, name: v1_info(node_id)["input"]["required"][name][1]["options"]  # noqa: E731
        assert options("DisPoseCMPLoader", "cmp_checkpoint") == ["ckpt_iter_42000.pth.tar"]
        (tmp_path / "cmp" / "other.pth").write_bytes(b"x")
        assert options("DisPoseCMPLoader", "cmp_checkpoint") == ["ckpt_iter_42000.pth.tar", "other.pth"]
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "v1-5-pruned-emaonly.safetensors").write_bytes(b"x")
        (tmp_path / "checkpoints" / "notes.txt").write_bytes(b"x")
        assert options("DisPoseDIFTLoader", "sd15_folder") == [
            "stable-diffusion-v1-5", "my-sd15", "checkpoints/v1-5-pruned-emaonly.safetensors"]
        assert options("DisPoseCMPLoader", "precision") == ["auto", "fp32", "fp16", "bf16"]


def test_model_dirs_are_restored(tmp_path):
    import folder_paths

    before = {k: list(v[0]) for k, v in folder_paths.folder_names_and_paths.items()}
    with model_dirs(tmp_path):
        assert folder_paths.get_folder_paths("cmp") == [str(tmp_path / "cmp")]
    assert {k: list(v[0]) for k, v in folder_paths.folder_names_and_paths.items()} == before
    assert folder_paths.get_folder_paths("cmp") != [str(tmp_path / "cmp")]


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
    """validate_inputs lets any file name through (ComfyUI would say 'value not in list'), so the
    run fails with our message. The host test checks the same through /prompt."""
    cls = pack_nodes()[node_id]
    with model_dirs(tmp_path):
        assert cls.validate_inputs(**{k: "typo.pth" for k in kwargs if k != "precision"}) is True
        with pytest.raises(errors.ModelFileError) as err:
            call_node(node_id, **kwargs)
    msg = str(err.value)
    assert missing in msg and str(tmp_path) in msg and "https://huggingface.co/" in msg


def test_precision_is_still_checked_by_comfy():
    """validate_inputs names only the model-file inputs: ComfyUI still checks the precision combo."""
    import inspect

    for cls in pack_nodes().values():
        if "validate_inputs" in vars(cls):
            assert "precision" not in inspect.signature(cls.validate_inputs).parameters


def test_missing_single_file_sd15_names_the_checkpoints_folder(tmp_path):
    with model_dirs(tmp_path), pytest.raises(errors.ModelFileError) as err:
        call_node("DisPoseDIFTLoader", sd15_folder="checkpoints/sd15.safetensors", precision="auto")
    assert "'sd15.safetensors'" in str(err.value) and str(tmp_path / "checkpoints") in str(err.value)


def test_svd_single_file_choice_and_errors(tmp_path):
    """The MimicMotion Loader lists .safetensors files of models/checkpoints as checkpoints/<file>;
    a missing one names the checkpoints folder, an SD 1.5 file is named as such."""
    from safetensors.torch import save_file

    (tmp_path / "checkpoints").mkdir()
    save_file({"cond_stage_model.transformer.text_model.embeddings.position_ids": torch.zeros(1, 77)},
              str(tmp_path / "checkpoints" / "v1-5-pruned-emaonly.safetensors"))
    (tmp_path / "checkpoints" / "notes.ckpt").write_bytes(b"x")
    loader = dict(mimicmotion_checkpoint="MimicMotion_1-1.pth", precision="auto")
    with model_dirs(tmp_path):
        options = v1_info("DisPoseMimicMotionLoader")["input"]["required"]["svd_folder"][1]["options"]
        assert options == ["stable-video-diffusion-img2vid-xt-1-1", "checkpoints/v1-5-pruned-emaonly.safetensors"]
        with pytest.raises(errors.ModelFileError) as err:
            call_node("DisPoseMimicMotionLoader", svd_folder="checkpoints/svd_xt_1_1.safetensors", **loader)
        assert "'svd_xt_1_1.safetensors' not found" in str(err.value)
        assert str(tmp_path / "checkpoints") in str(err.value)
        (tmp_path / "mimicmotion").mkdir()
        (tmp_path / "mimicmotion" / "MimicMotion_1-1.pth").write_bytes(b"x")
        with pytest.raises(errors.ModelFileError, match=r"is a Stable Diffusion 1\.x checkpoint"):
            call_node("DisPoseMimicMotionLoader", svd_folder="checkpoints/v1-5-pruned-emaonly.safetensors", **loader)


def test_unknown_file_name_is_reported(tmp_path):
    with model_dirs(tmp_path), pytest.raises(errors.ModelFileError, match="'typo.pth' not found"):
        call_node("DisPoseCMPLoader", cmp_checkpoint="typo.pth", precision="auto")


def test_extract_without_model_or_keypoints_says_what_to_connect():
    with pytest.raises(errors.InputError, match="pose_keypoint"):
        call_node("DisPoseDWPoseExtract", reference_image=torch.rand(1, 64, 48, 3), resolution=64, align=True,
                  driving_frames=torch.rand(3, 64, 48, 3))


def _signals(frames: int, h: int = 32, w: int = 16):
    motion = types.MotionField(torch.zeros(frames - 1, 2, h, w))
    flow = types.DenseFlow(torch.zeros(frames - 1, 2, h, w))
    points = types.PointEmbeddings(torch.zeros(18, 8), np.zeros((frames, 18, 2)), np.zeros((frames, 18)))
    return motion, flow, points


def test_control_apply_checks_frame_counts():
    motion, flow, _ = _signals(5)
    _, _, points = _signals(4)
    apply = lambda **kw: call_node("DisPoseHybridControlNetApply", **kw)  # noqa: E731
    with pytest.raises(errors.InputError, match="Frame counts do not match"):
        apply(dispose_controlnet=None, motion_field=motion, dense_flow=flow, point_embeddings=points,
              strength=1.0, motion_strength=1.0, point_strength=1.0, start_percent=0.0, end_percent=1.0)
    motion, flow, points = _signals(5)
    (control,) = apply(dispose_controlnet="cn", motion_field=motion, dense_flow=flow, point_embeddings=points,
                       strength=0.5, motion_strength=0.0, point_strength=1.0, start_percent=0.1, end_percent=0.9)
    assert control.motion_strength == 0.0 and control.strength == 0.5 and control.end_percent == 0.9
    with pytest.raises(errors.InputError, match="start_percent"):
        apply(dispose_controlnet="cn", motion_field=motion, dense_flow=flow, point_embeddings=points,
              strength=1.0, motion_strength=1.0, point_strength=1.0, start_percent=0.8, end_percent=0.2)


def test_reference_must_be_one_image():
    with pytest.raises(errors.InputError, match="one image"):
        pipeline.canvas_for(torch.rand(2, 64, 48, 3), 576)
    assert pipeline.canvas_for(torch.rand(1, 1280, 720, 3), 576) == (1024, 576)


def test_bridge_uses_comfy_devices_and_dtypes():
    """On ComfyUI's CPU device (the tests run it with --cpu): auto precision is fp32, tensors stay
    on the CPU, DWPose gets the CPU provider, and no interrupt is pending."""
    bridge = load_pack().nodes.comfy_bridge
    assert bridge.torch_device().type == "cpu" and bridge.intermediate_device().type == "cpu"
    assert bridge.pick_dtype("auto") == torch.float32 and bridge.pick_dtype("bf16") == torch.bfloat16
    assert bridge.should_stop() is False
    assert bridge.onnx_providers() == ["CPUExecutionProvider"]


def test_interrupt_reaches_the_core_as_comfys_exception():
    """A pending Cancel makes should_stop raise ComfyUI's own exception (which ends the prompt)."""
    import comfy.model_management as mm

    bridge = load_pack().nodes.comfy_bridge
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            bridge.should_stop()
    finally:
        mm.interrupt_current_processing(False)
    assert bridge.should_stop() is False


def test_guidance_preview_takes_exactly_one_input():
    motion, flow, _ = _signals(3)
    with pytest.raises(errors.InputError, match=r"got nothing\. Connect exactly one of poses, motion_field, "
                                                r"dense_flow, point_embeddings"):
        call_node("DisPoseGuidancePreview", long_side=256)
    with pytest.raises(errors.InputError, match="got motion_field and dense_flow. Connect exactly one"):
        call_node("DisPoseGuidancePreview", long_side=256, motion_field=motion, dense_flow=flow)
    (preview,) = call_node("DisPoseGuidancePreview", long_side=256, dense_flow=flow)
    assert preview.shape == (2, 32, 16, 3) and float(preview.min()) == 1.0  # no motion is white, canvas-sized
