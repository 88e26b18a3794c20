"""Interrupt checks inside one long model call (a VAE decode of a chunk, a DIFT ensemble, a CMP batch).

A Cancel is only honoured where the code asks ``should_stop()``. Between calls is not enough on a
CPU, where one call takes many seconds, and the model code should not have to know about hosts.
So, for the duration of a call, every torch module run by this thread first asks ``should_stop()``:
the stop comes at the next layer, and the result of an uninterrupted call is unchanged.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

ShouldStop = Callable[[], Any]  # True (or its own exception) interrupts


@contextmanager
def stop_between_layers(should_stop: ShouldStop | None, what: str) -> Iterator[None]:
    """Ask ``should_stop()`` before every module call of this thread inside the block.

    A truthy answer raises ``InterruptedError`` naming ``what``; a host's ``should_stop`` may raise
    its own exception instead (ComfyUI's interrupt). Other threads' module calls are not checked.
    """
    if should_stop is None:
        yield
        return
    thread = threading.get_ident()

    def check(module: torch.nn.Module, args: Any) -> None:
        if threading.get_ident() == thread and should_stop():
            raise InterruptedError(f"{what} was interrupted.")

    handle = torch.nn.modules.module.register_module_forward_pre_hook(check)
    try:
        yield
    finally:
        handle.remove()
