"""Where each model file lives, under which name, and where users get it.

One table serves the loaders (error messages), the ComfyUI folder registration, the frontend's
model-files panel, the README table and the tiny-model factory, so they cannot disagree.
Folders are relative to a ComfyUI ``models`` directory (``folder_paths`` names).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileError


@dataclass(frozen=True)
class ModelFile:
    key: str  # stable id used in code
    folder: str  # ComfyUI model folder name (registered with folder_paths)
    name: str  # file name, or directory name for diffusers folders
    is_dir: bool  # a diffusers folder rather than a single file
    source: str  # page where users download it
    size: str  # approximate download size, for the README and the panel
    used_by: str  # node that needs it

    def path_in(self, models_dir: str | Path) -> Path:
        return Path(models_dir) / self.folder / self.name

    def require(self, path: str | Path) -> Path:
        """``path`` as a Path when it exists (a folder for diffusers models), else ModelFileError."""
        path = Path(path)
        if not (path.is_dir() if self.is_dir else path.is_file()):
            raise ModelFileError(self.wrong_kind_message(path) or self.missing_message([str(path.parent)]))
        return path

    def wrong_kind_message(self, path: Path) -> str | None:
        """What is wrong when ``path`` exists but is a folder where a file belongs, or the reverse."""
        if self.is_dir and path.is_file():
            found, wanted = "a file", "the diffusers folder (with model_index.json and one folder per part)"
        elif not self.is_dir and path.is_dir():
            found, wanted = "a directory", "the file itself"
        else:
            return None
        return (f"'{path.name}' in {path.parent} is {found}, not the {'folder' if self.is_dir else 'file'} "
                f"{self.used_by} needs. Put {wanted} there, from {self.source}.")

    def missing_message(self, searched: list[str] | None = None) -> str:
        where = ", ".join(searched) if searched else f"models/{self.folder}"
        kind = "folder" if self.is_dir else "file"
        return (
            f"Model {kind} '{self.name}' not found in {where}. "
            f"Download it from {self.source} and put it into ComfyUI/models/{self.folder}/ "
            f"(needed by {self.used_by})."
        )


MODEL_FILES: tuple[ModelFile, ...] = (
    ModelFile("dwpose_detector", "dwpose", "yolox_l.onnx", False,
              "https://huggingface.co/yzd-v/DWPose", "217 MB", "DWPose Loader (DisPose)"),
    ModelFile("dwpose_pose", "dwpose", "dw-ll_ucoco_384.onnx", False,
              "https://huggingface.co/yzd-v/DWPose", "134 MB", "DWPose Loader (DisPose)"),
    ModelFile("cmp", "cmp", "ckpt_iter_42000.pth.tar", False,
              "https://huggingface.co/MyNiuuu/MOFA-Video-Hybrid (models/cmp/experiments/semiauto_annot/"
              "resnet50_vip+mpii_liteflow/checkpoints)", "344 MB", "CMP Loader (DisPose)"),
    ModelFile("sd15", "diffusers", "stable-diffusion-v1-5", True,
              "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5", "~2.7 GB (fp16 variant)",
              "DIFT Loader (SD 1.5)"),
    ModelFile("svd", "diffusers", "stable-video-diffusion-img2vid-xt-1-1", True,
              "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt-1-1", "~4.5 GB (fp16 variant)",
              "MimicMotion Loader"),
    ModelFile("mimicmotion", "mimicmotion", "MimicMotion_1-1.pth", False,
              "https://huggingface.co/tencent/MimicMotion", "3.05 GB", "MimicMotion Loader"),
    ModelFile("dispose", "dispose", "DisPose.pth", False,
              "https://huggingface.co/lihxxx/DisPose", "2.74 GB", "DisPose ControlNet Loader"),
)

BY_KEY: dict[str, ModelFile] = {m.key: m for m in MODEL_FILES}
MODEL_FOLDERS: tuple[str, ...] = tuple(dict.fromkeys(m.folder for m in MODEL_FILES))

# The single-file alternative to the SVD folder (ComfyUI's own SVD file, read by ImageOnlyCheckpointLoader).
# Not in MODEL_FILES: it replaces the "svd" entry rather than adding a required file.
SVD_SINGLE_FILE = ModelFile("svd_single_file", "checkpoints", "svd_xt_1_1.safetensors", False,
                            "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt-1-1",
                            "4.8 GB", "MimicMotion Loader")
