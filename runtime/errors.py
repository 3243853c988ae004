"""User-facing errors: each message names the file and the problem in one line."""


def first_line(exc: BaseException) -> str:
    """An exception's message reduced to one line (its type name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class ErnetError(Exception):
    """Base class of errors reported to the user as a single line."""


class InputError(ErnetError):
    """An input image or stack cannot be used (missing, unreadable, wrong shape)."""


class ModelError(ErnetError):
    """A model file cannot be used (not ONNX, not ERNet's, incompatible)."""


class BackendError(ErnetError):
    """An execution provider was requested but cannot run here."""


class OutputError(ErnetError):
    """An output cannot be written (exists, would overwrite an input)."""


class ClusterError(ErnetError):
    """A Dask cluster cannot be reached or started, or lost the run."""


class NoContrastWarning(UserWarning):
    """A frame whose normalisation range is empty (a constant frame): labelled background."""
