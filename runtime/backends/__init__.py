"""Execution backends behind one protocol, and the choice between them."""

from __future__ import annotations

from pathlib import Path

from .base import Backend, BackendOptions, physical_cores
from .onnxruntime import PROVIDER_CHOICES, OnnxRuntimeBackend


def open_backend(model: Path, options: BackendOptions | None = None) -> Backend:
    """Open ``model`` (an ERNet ONNX file) as ``options`` ask."""
    return OnnxRuntimeBackend(model, options)


__all__ = [
    "PROVIDER_CHOICES",
    "Backend",
    "BackendOptions",
    "OnnxRuntimeBackend",
    "open_backend",
    "physical_cores",
]
