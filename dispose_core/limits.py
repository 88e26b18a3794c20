"""What a run can hold, checked before anything is allocated, and out-of-memory errors turned into advice.

Largest canvas: ``MAX_RESOLUTION`` = 1024 (short side; the canvas is then 1024x1792). Why 1024:
MimicMotion and DisPose were trained at 576x1024, and at 1024 one sampler tile call of the
default 16 frames already needs 7.1 GB of activations in fp16 (``sampling/memory.py``: 3847 B
per latent pixel per dtype byte, 2 x 16 x 128 x 224 latent pixels); with the sample phase's
4.1 GiB of fp16 weights (``bench/bench_resident.py``) that fits a 16 GB GPU. At 2048 the same
call needs 28 GB, more than a 24 GB card holds, and every guidance field is 4x larger: with 6
driving frames on the tiny models, 2048 used 6-10 GB of host memory per stage and then failed in
torch's allocator.

Frames: whatever the guidance costs, a run ends with the animation as a float32 RGB IMAGE
(``OUTPUT_BYTES_PER_PIXEL`` per canvas pixel per frame). A job whose animation alone is larger
than the machine's physical memory cannot finish, so it is refused when the poses are made,
naming the size and how many frames would fit. The bound is the output alone, so it refuses no
job that could finish in memory.
"""
from __future__ import annotations

import os

from .errors import InputError

MAX_RESOLUTION = 1024
OUTPUT_BYTES_PER_PIXEL = 3 * 4  # the animation: float32 RGB
GB = 1e9


def check_resolution(resolution: int) -> None:
    """InputError above ``MAX_RESOLUTION`` (see the module docstring)."""
    if resolution > MAX_RESOLUTION:
        raise InputError(f"Resolution {resolution} is above {MAX_RESOLUTION}, the largest canvas the pipeline runs "
                         f"(memory grows with its area). Lower the resolution (576 is the trained size).")


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(frames: int, height: int, width: int) -> None:
    """InputError when ``frames`` frames of a ``height`` x ``width`` animation exceed physical memory."""
    memory = physical_memory()
    per_frame = OUTPUT_BYTES_PER_PIXEL * height * width
    if memory is None or frames * per_frame <= memory:
        return
    raise InputError(f"{frames} frames on a {height}x{width} canvas cannot fit: the animation alone is "
                     f"{frames * per_frame / GB:.1f} GB and this machine has {memory / GB:.1f} GB of memory. Lower "
                     f"max_frames (at most {memory // per_frame} fit at this size) or the resolution.")


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's out-of-memory errors: a device's (``torch.OutOfMemoryError``) and the CPU allocator's
    (a plain RuntimeError: "DefaultCPUAllocator: can't allocate memory" / "not enough memory")."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "DefaultCPUAllocator" in str(exc) and "memory" in str(exc)
