"""Execution backends behind one protocol, and the choice between them."""

from __future__ import annotations

from pathlib import Path

from .base import Backend
from .onnxruntime import PROVIDER_CHOICES, OnnxRuntimeBackend


def open_backend(model: Path, provider: str = "auto") -> Backend:
    """Open ``model`` (an ERNet ONNX file) on the requested provider."""
    return OnnxRuntimeBackend(model, provider)


__all__ = ["PROVIDER_CHOICES", "Backend", "OnnxRuntimeBackend", "open_backend"]
