"""Wall time and peak GPU memory of named regions, shared by our benchmark and the official driver
(torch only: the driver runs in the official environment, where the pack does not import)."""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch


class Clock:
    """Seconds per region name (summed over repeats) and, on CUDA, the highest peak memory seen in it.

    Each region resets CUDA's peak counters on entry, so a region's peak is its own (an enclosing
    region's peak is then not meaningful; only leaf regions are reported as phases).
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, dict[str, int | None]] = {}

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextmanager
    def region(self, name: str):
        self._sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        yield
        self._sync()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        if not self.cuda:
            self.peak[name] = {"allocated": None, "reserved": None}
            return
        seen = self.peak.get(name) or {"allocated": 0, "reserved": 0}
        self.peak[name] = {"allocated": max(seen["allocated"], torch.cuda.max_memory_allocated()),
                           "reserved": max(seen["reserved"], torch.cuda.max_memory_reserved())}

    def timed(self, name: str, fn):
        """``fn`` wrapped so that every call is timed as region ``name``."""
        def wrapper(*args, **kwargs):
            with self.region(name):
                return fn(*args, **kwargs)
        return wrapper
