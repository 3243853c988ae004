"""Execution backends behind one protocol, and the choice between them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import BackendError, ModelError, first_line
from .base import Backend, BackendOptions, physical_cores
from .onnxruntime import ORT_PROVIDER_CHOICES, OnnxRuntimeBackend

#: ``tensorrt`` is native TensorRT; ``ort-tensorrt``, ``cuda`` and ``cpu`` are ONNX Runtime's
#: providers; ``auto`` tries them in that order.
PROVIDER_CHOICES = ("auto", "tensorrt", *ORT_PROVIDER_CHOICES[1:])


def open_backend(model: Path | None, options: BackendOptions | None = None) -> Backend:
    """Open ``model`` (an ERNet ONNX file) or ``options.engine`` as ``options`` ask.

    Native TensorRT runs when asked for (``tensorrt`` or an engine) and, under ``auto``,
    wherever it can; otherwise ONNX Runtime. Each provider passed over is listed, with
    the reason, in the backend's ``fallbacks``.
    """
    options = options or BackendOptions()
    if options.provider not in PROVIDER_CHOICES:
        raise BackendError(
            f"unknown provider {options.provider!r}; choose one of {', '.join(PROVIDER_CHOICES)}"
        )
    if options.engine is not None and options.provider not in ("auto", "tensorrt"):
        raise BackendError(f"an engine runs on native TensorRT, not on provider {options.provider!r}")
    native = options.provider == "tensorrt" or options.engine is not None
    fallbacks: list[tuple[str, str]] = []
    if native or options.provider == "auto":
        from .tensorrt import TensorRtBackend

        try:
            return TensorRtBackend(model, options)
        except (BackendError, ModelError) as exc:  # ModelError: e.g. an int8 model, CPU-only
            if native and not options.fallback:
                raise
            fallbacks.append(("tensorrt", first_line(exc)))
    if model is None:
        raise ModelError("no ONNX model to fall back on from the TensorRT engine: pass --model")
    ort_provider = "ort-tensorrt" if options.provider == "tensorrt" else options.provider
    backend = OnnxRuntimeBackend(model, replace(options, provider=ort_provider))
    backend.fallbacks[:0] = fallbacks
    return backend


__all__ = [
    "PROVIDER_CHOICES",
    "Backend",
    "BackendOptions",
    "OnnxRuntimeBackend",
    "open_backend",
    "physical_cores",
]
