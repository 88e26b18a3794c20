"""Errors a user can act on.

Every message names the problem and the fix. The ComfyUI nodes let these propagate unchanged, so
the text is what a user sees in the editor or in the /history error of a headless run.
"""


class DisposeError(Exception):
    """Base class: something the user can fix (input, settings or model files)."""


class ModelFileError(DisposeError):
    """A model file is missing, unreadable or not the expected checkpoint."""


class CheckpointKeyError(ModelFileError):
    """A checkpoint's tensor names or shapes do not match the architecture."""


class InputError(DisposeError):
    """Node inputs are inconsistent or unsupported (sizes, frame counts, dtypes)."""


class DeviceMemoryError(DisposeError):
    """The models and their working memory do not fit the device: the message lists settings that need less."""
