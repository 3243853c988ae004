"""User-facing errors: each message names the file and the problem in one line."""

from __future__ import annotations

from pathlib import Path


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


#: Errors reported as one line (by the commands, and as notifications by the viewer
#: plugin): ours (which name their file), bad values, and what the system or a model
#: runtime raises (out of memory, a failing provider).
REPORTED = (ErnetError, ValueError, OSError, RuntimeError, MemoryError)


def error_line(exc: BaseException, subject: Path | str | None = None) -> str:
    """The one line that reports ``exc``: our errors and bad values as they are (they name
    their file), others with their type, after ``subject`` (the file being processed)."""
    if isinstance(exc, ErnetError | ValueError):
        return first_line(exc)
    text = f"{type(exc).__name__}: {first_line(exc)}"
    return f"{subject}: {text}" if subject is not None else text
