"""Stand-ins for packages the device lacks and the benchmark never calls (PyAV: ComfyUI's video
types import it at module level; its 36 MB wheel would not fit the carry). Installed only when the
real package does not import; any use beyond a name lookup fails loudly."""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types


class _Placeholder:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("PyAV is not installed on this machine (bench/gpu/standins.py): video I/O is unavailable")


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_Placeholder,), {})


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, root: str):
        self.root = root

    def find_spec(self, name, path=None, target=None):
        if name == self.root or name.startswith(self.root + "."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        """Nothing to run: every attribute is a placeholder class."""


def install_missing(names: tuple[str, ...] = ("av",)) -> list[str]:
    """Put a stand-in on sys.meta_path for each of ``names`` that does not import; the ones replaced."""
    replaced = []
    for name in names:
        if importlib.util.find_spec(name) is None:
            sys.meta_path.append(_Finder(name))
            replaced.append(name)
    return replaced
