"""One function per stage of the animation, shared by the ComfyUI nodes and the demo script.

The nodes only convert ComfyUI types and hand in host services (progress, interrupt checks,
model management); the demo hands in plain ones. Both call exactly these functions, so the demo
exercises the node code path. Images here are ComfyUI-style float tensors (..., H, W, 3) in [0, 1].

The stages return only their data; the previews are drawn from it by their own functions
(``skeleton_preview``, ``field_preview``, ``points_preview``) only when asked for, because a host
such as ComfyUI keeps every output of a node for the whole run, linked or not.

Stage modules are imported inside the functions: some pull in onnxruntime or diffusers, and
importing the node pack must stay cheap for ComfyUI's start-up.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterator, Sequence

import numpy as np
import torch

from .errors import InputError, ModelFileError
from .frames import FrameSampling
from .image import fit_to_canvas, preview_size, target_size
from .limits import check_fits
from .loading.layout import BY_KEY
from .sampling.control import ControlInputs
from .sampling.settings import SamplerSettings
from .types import DenseFlow, FlowField, MotionField, PointEmbeddings, PoseSequence, check_frame_counts

if TYPE_CHECKING:
    from .sampling.sampler import EncodedReference, SamplingPlan, Ticker

Progress = Callable[[int, int], None] | None
ShouldStop = Callable[[], bool] | None

# Official defaults (configs/test.yaml, inference_ctrl.py); the nodes show them as widget defaults.
RESOLUTION = 576
SPARSE_KERNEL_SIZE = 199
SPARSE_SIGMA = 20.0
CMP_BATCH_SIZE = 8
DIFT_ENSEMBLE_SIZE = 8
# Stage previews (skeletons, motion colours, correspondence) are drawn at most this many pixels long
# unless asked otherwise: they are for looking at, and at the canvas size a long video's previews
# would take more memory than the whole guidance (600 frames of 576x1024 float32: 4 GB per preview).
PREVIEW_LONG_SIDE = 256


# ---------------------------------------------------------------- model files
def find_model_file(key: str, search_dirs: Sequence[str | Path], name: str | None = None) -> Path:
    """Path of a model file/folder (``name`` or the layout's default), first directory wins.

    Raises ModelFileError naming the file, every directory searched and the download page.
    """
    model = BY_KEY[key]
    name = name or model.name
    for base in search_dirs:
        path = Path(base) / name
        if path.is_dir() if model.is_dir else path.is_file():
            return path
    for base in search_dirs:
        wrong = model.wrong_kind_message(Path(base) / name)
        if wrong:
            raise ModelFileError(wrong)
    searched = [str(d) for d in search_dirs]
    if name == model.name:
        raise ModelFileError(model.missing_message(searched))
    raise ModelFileError(
        f"'{name}' not found in {', '.join(searched) or 'models/' + model.folder}. "
        f"Pick a file from the list, or get {model.name} from {model.source} and put it into "
        f"ComfyUI/models/{model.folder}/ (needed by {model.used_by})."
    )


# ---------------------------------------------------------------- images
def to_uint8(images: torch.Tensor) -> np.ndarray:
    """ComfyUI IMAGE (float 0..1) -> uint8 numpy, the form the pose detector takes."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def to_image(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A preview (uint8 or float 0..1, (..., H, W, 3)) -> ComfyUI IMAGE float32 on the CPU."""
    t = torch.as_tensor(array)
    if not t.is_floating_point():
        return t.float().div_(255.0)
    return t.float().clamp(0, 1).cpu()


def first_image(images: torch.Tensor, what: str) -> torch.Tensor:
    """The single (H, W, 3) image of an IMAGE input; a batch > 1 is a wiring mistake."""
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] < 1:
        raise InputError(f"{what} must be an IMAGE (batch, height, width, 3); got shape {tuple(images.shape)}.")
    if images.shape[0] != 1:
        raise InputError(f"{what} must be one image, got a batch of {images.shape[0]}. "
                         "Connect a single image (e.g. LoadImage), not the video frames.")
    return images[0]


def reference_on_canvas(reference: torch.Tensor, poses: PoseSequence) -> torch.Tensor:
    """The reference image cover-resized and cropped to the poses' canvas, (H, W, 3) float."""
    image = first_image(reference, "The reference image")
    return fit_to_canvas(image.float().cpu(), poses.height, poses.width)


def canvas_for(reference: torch.Tensor, resolution: int) -> tuple[int, int]:
    """Generation canvas (H, W) for a reference IMAGE at ``resolution``."""
    image = first_image(reference, "The reference image")
    return target_size(int(image.shape[0]), int(image.shape[1]), resolution)


# ---------------------------------------------------------------- stages
def select_keypoint_frames(pose_keypoint: list[dict], fps: float, sampling: FrameSampling = FrameSampling(), *,
                           reference_first: bool = True) -> tuple[list[dict], float]:
    """The same frame rule on a POSE_KEYPOINT list; with ``reference_first`` its first entry is
    the reference pose (the layout ``poses_from_keypoints`` reads) and is always kept."""
    from .frames import take
    from .pose.keypoint_json import NO_DRIVING_FRAME, frames_of

    items = frames_of(pose_keypoint)
    head, driving = (items[:1], items[1:]) if reference_first else ([], items)
    if not driving:
        raise InputError(NO_DRIVING_FRAME.format(len(items)))
    kept, sampled = take(driving, fps, sampling)
    return head + kept, sampled.fps


def extract_poses(
    detector: Any, reference: torch.Tensor, frames: Collection[np.ndarray], *, resolution: int = RESOLUTION,
    align: bool = True, person: str = "official", person_index: int = 0, empty_frames: str = "official",
    fit_on_empty_frames: bool = True, retarget: bool = False, smooth_window: int = 0,
    smooth_max_shift: float = 8.0, progress: Progress = None, should_stop: ShouldStop = None,
) -> PoseSequence:
    """DWPose on the reference (on its canvas) and every given driving frame -> poses.

    ``frames``: the kept driving frames as uint8 (H, W, 3), read once a batch at a time
    (``video.video_frames`` / ``video.image_frames`` pick and convert them). ``person`` / ``empty_frames`` / ``retarget`` /
    ``smooth_*``: see ``pose/extract.py`` (defaults official); ``poses.note`` says which person of a reference with
    several people was taken ("" otherwise), for the node's log and ``skeleton_preview``.
    """
    from .pose.extract import extract_poses as run_extract

    height, width = canvas_for(reference, resolution)
    check_fits(len(frames), height, width)
    ref = fit_to_canvas(to_uint8(first_image(reference, "The reference image")), height, width)
    poses = run_extract(detector, ref, frames, align=align, person=person, person_index=person_index,
                        empty_frames=empty_frames, fit_on_empty_frames=fit_on_empty_frames,
                        retarget=retarget, smooth_window=smooth_window, smooth_max_shift=smooth_max_shift,
                        progress=progress, should_stop=should_stop)
    return poses


def poses_from_keypoints(
    pose_keypoint: list[dict], reference: torch.Tensor, *, resolution: int = RESOLUTION, align: bool = True,
    reference_keypoint: list[dict] | None = None, person: str = "official", person_index: int = 0,
    empty_frames: str = "official", retarget: bool = False, smooth_window: int = 0, smooth_max_shift: float = 8.0,
) -> PoseSequence:
    """POSE_KEYPOINT -> poses. Without ``reference_keypoint`` the first frame
    of ``pose_keypoint`` is the reference pose, the rest are the driving frames. Pick the frames
    first with ``select_keypoint_frames``; the options are ``extract_poses``' (see
    ``pose/keypoint_json.py`` for ``empty_frames`` there)."""
    from .pose.keypoint_json import frames_of, from_pose_keypoint

    height, width = canvas_for(reference, resolution)
    check_fits(len(frames_of(pose_keypoint)) - (reference_keypoint is None), height, width)
    poses = from_pose_keypoint(pose_keypoint, height=height, width=width, align=align,
                               reference=reference_keypoint, person=person, person_index=person_index,
                               empty_frames=empty_frames, retarget=retarget, smooth_window=smooth_window,
                               smooth_max_shift=smooth_max_shift)
    return poses


def pose_keypoints(poses: PoseSequence) -> list[dict]:
    """Poses as POSE_KEYPOINT (the comfyui_controlnet_aux format), for other packs' nodes."""
    from .pose.keypoint_json import to_pose_keypoint

    return to_pose_keypoint(poses)


def sparse_motion(
    poses: PoseSequence, *, kernel_size: int = SPARSE_KERNEL_SIZE, sigma: float = SPARSE_SIGMA,
    drop_vanishing: bool = False,
) -> MotionField:
    """Sparse motion field of the keypoint trajectories (``drop_vanishing``: see
    ``motion/sparse_field.py``, off = official)."""
    from .motion.sparse_field import compute_motion_field

    return compute_motion_field(poses, kernel_size=kernel_size, sigma=sigma, drop_vanishing=drop_vanishing)


def dense_motion(
    cmp: Any, reference: torch.Tensor, poses: PoseSequence, *, batch_size: int = CMP_BATCH_SIZE,
    mask_invisible: bool = False, progress: Progress = None, should_stop: ShouldStop = None,
) -> DenseFlow:
    """CMP dense flow over the reference image (``mask_invisible``: see ``motion/sparse_flow.py``,
    off = official)."""
    from .motion.dense_flow import compute_dense_flow

    ref = reference_on_canvas(reference, poses).permute(2, 0, 1)
    return compute_dense_flow(cmp, ref, poses, batch_size=batch_size, mask_invisible=mask_invisible,
                              progress=progress, should_stop=should_stop)


def point_embeddings(
    dift: Any, reference: torch.Tensor, poses: PoseSequence, *, ensemble_size: int = DIFT_ENSEMBLE_SIZE,
    seed: int = 0, natural_orientation: bool = False, progress: Progress = None, should_stop: ShouldStop = None,
) -> PointEmbeddings:
    """DIFT keypoint embeddings of the reference (``natural_orientation``: see ``dift/embeddings.py``,
    off = official). They carry the one small picture ``points_preview`` draws on (the PCA of the
    feature map, which is gone afterwards), ``PREVIEW_LONG_SIDE`` long whatever the frame count."""
    from .dift.embeddings import build_point_embeddings
    from .dift.featurizer import extract_features
    from .dift.preview import correspondence_picture

    ref = reference_on_canvas(reference, poses)
    image = ref.permute(2, 0, 1)[None] * 2 - 1
    generator = torch.Generator().manual_seed(int(seed))
    features = extract_features(dift, image, ensemble_size=ensemble_size, generator=generator,
                                progress=progress, should_stop=should_stop)
    points = build_point_embeddings(features[0], poses, natural_orientation=natural_orientation)
    small = fit_to_canvas(ref, *preview_size(poses.height, poses.width, PREVIEW_LONG_SIDE))
    points.picture = correspondence_picture(features[0], poses, to_uint8(small))
    return points


# ---------------------------------------------------------------- previews
def skeleton_preview(poses: PoseSequence, long_side: int = PREVIEW_LONG_SIDE) -> torch.Tensor:
    """The skeletons of every frame as an IMAGE at most ``long_side`` long (never more than the
    canvas); when the reference shows several people (``poses.note``), its first frame outlines the
    one taken. The sampler draws its own skeletons at the canvas size: these never reach PoseNet."""
    from .pose.render import outline_reference_person, render_poses

    skeletons = render_poses(poses, size=preview_size(poses.height, poses.width, long_side))
    return to_image(outline_reference_person(skeletons, poses) if poses.note else skeletons)


def field_preview(field: FlowField, long_side: int = PREVIEW_LONG_SIDE) -> torch.Tensor:
    """A motion field or dense flow as colour-wheel IMAGE, one per driving frame, at most
    ``long_side`` long (never more than the canvas)."""
    return field.to_image(long_side=long_side)


def points_preview(points: PointEmbeddings, long_side: int = PREVIEW_LONG_SIDE) -> torch.Tensor:
    """The keypoint correspondence as IMAGE, one per frame (reference first): the reference's DIFT
    map in PCA colours, then each frame's keypoints in their embedding's colour over the dimmed
    reference; at most ``long_side`` long and never more than the picture the embeddings carry."""
    from .dift.preview import draw_correspondence

    if points.picture is None:
        raise InputError("These point embeddings carry no preview picture (they were not made by DIFT Point "
                         "Embed). Preview the output of DIFT Point Embed instead.")
    return to_image(draw_correspondence(points.picture, points.keypoints, points.subset, long_side))


def hybrid_control(
    controlnet: Any, motion: MotionField, flow: DenseFlow, points: PointEmbeddings, *, strength: float = 1.0,
    motion_strength: float = 1.0, point_strength: float = 1.0, start_percent: float = 0.0,
    end_percent: float = 1.0,
) -> ControlInputs:
    """Bundle the three DisPose signals with the ControlNet after checking they fit together.

    A 0 motion/point strength turns that signal off (the paper's ablations as switches).
    """
    check_frame_counts(sparse_motion_field=motion.num_frames, dense_flow=flow.num_frames,
                       point_embeddings=points.num_frames)
    if (motion.height, motion.width) != (flow.height, flow.width):
        raise InputError(
            f"The sparse motion field is {(motion.height, motion.width)} but the dense flow is "
            f"{(flow.height, flow.width)}. Feed both from the same DWPose Extract output.")
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise InputError(f"start_percent ({start_percent}) must not exceed end_percent ({end_percent}); "
                         "both lie in 0..1.")
    return ControlInputs(controlnet, motion, flow, points, strength=strength, motion_strength=motion_strength,
                         point_strength=point_strength, start_percent=start_percent, end_percent=end_percent)


def animation_plan(
    reference: torch.Tensor, poses: PoseSequence, *, control: ControlInputs | None = None,
    settings: SamplerSettings = SamplerSettings(), generator: torch.Generator | None = None,
    official_batch_quirk: bool = True,
) -> SamplingPlan:
    """Validated run of MimicMotion (+ DisPose control): the reference on the poses' canvas, the
    poses (their skeletons are drawn per tile while sampling) and the settings (``generator``: the
    noise generator, default a CPU one seeded with ``settings.seed``). Cheap; ``run_phases`` then
    runs it with a host's phases.
    """
    from .sampling.sampler import plan_sampling

    return plan_sampling(reference_on_canvas(reference, poses), poses, control=control,
                         settings=settings, generator=generator, official_batch_quirk=official_batch_quirk)


@dataclass
class Phases:
    """How a host runs the three phases of a run, each with only its own models loaded: the CLI runs
    them as they are (``library_phases``), ComfyUI loads and offloads around them and samples
    through ``comfy.samplers`` (nodes/mimicmotion.py)."""

    encode: Callable[[SamplingPlan], EncodedReference]  # CLIP + VAE
    denoise: Callable[[EncodedReference, Ticker], torch.Tensor]  # UNet + PoseNet (+ ControlNet) -> latents
    decode: Callable[[torch.Tensor, SamplingPlan, Ticker], torch.Tensor]  # VAE -> (F-1,H,W,3) IMAGE frames


def library_phases(models: Any) -> Phases:
    """The phases on ``load_mimicmotion``'s all-in-one object (or ``MimicMotionParts``), no host."""
    from .sampling.sampler import decode_frames, denoise_latents, encode_reference, split_models

    image_encoder, vae, denoiser = split_models(models)
    return Phases(encode=lambda plan: encode_reference(plan, image_encoder, vae),
                  denoise=lambda encoded, ticker: denoise_latents(encoded, denoiser, ticker),
                  decode=lambda latents, plan, ticker: decode_frames(vae, latents, plan, ticker=ticker))


def run_phases(plan: SamplingPlan, phases: Phases, *, progress: Progress = None,
               should_stop: ShouldStop = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode, denoise, decode with one progress count: -> (IMAGE frames without the reference,
    (F,4,h,w) latents in the model's scaling). The decode phase gives the IMAGE as it is (no copy:
    a long video's frames are the largest tensor of the run)."""
    ticker = plan.ticker(progress, should_stop)
    latents = phases.denoise(phases.encode(plan), ticker)
    return phases.decode(latents, plan, ticker), latents  # already an IMAGE batch: no second copy


def animate(
    models: Any, reference: torch.Tensor, poses: PoseSequence, *, control: ControlInputs | None = None,
    settings: SamplerSettings = SamplerSettings(), progress: Progress = None, should_stop: ShouldStop = None,
) -> torch.Tensor:
    """MimicMotion (+ DisPose control) -> the animated frames as an IMAGE batch (reference dropped).

    ``models``: ``load_mimicmotion``'s all-in-one object (or ``MimicMotionParts``); the three phases
    run in a row. The sampler checks that the control's frame counts and canvas match the poses.
    """
    plan = animation_plan(reference, poses, control=control, settings=settings)
    return run_phases(plan, library_phases(models), progress=progress, should_stop=should_stop)[0]


def animation_chunks(
    models: Any, reference: torch.Tensor, poses: PoseSequence, *, control: ControlInputs | None = None,
    settings: SamplerSettings = SamplerSettings(), progress: Progress = None, should_stop: ShouldStop = None,
) -> Iterator[torch.Tensor]:
    """``animate`` for a caller that writes the frames out (the command line): samples now, then
    returns the frames as IMAGE chunks of ``decode_chunk_size`` frames, each decoded when the
    caller asks for it, so the whole video never exists in float32 (it would cost 12 bytes per
    pixel per frame, and more while being converted)."""
    from .sampling.sampler import decoded_images, split_models

    plan = animation_plan(reference, poses, control=control, settings=settings)
    phases = library_phases(models)
    ticker = plan.ticker(progress, should_stop)
    latents = phases.denoise(phases.encode(plan), ticker)
    return decoded_images(split_models(models)[1], latents, plan.settings.decode_chunk_size, ticker=ticker)
