"""Execution backends behind one protocol, and the choice between them."""

from __future__ import annotations

from dataclasses import replace
from typing import get_args

from ..errors import BackendError, ModelError, first_line
from ..packages import check_normalization, is_package, open_package
from ..spec import Provider, RunSpec
from .base import Backend, physical_cores
from .ort import OnnxRuntimeBackend, read_onnx_metadata

#: Every provider name (:data:`~ernet.runtime.spec.Provider`), fastest first after ``auto``.
PROVIDER_CHOICES: tuple[str, ...] = get_args(Provider)


def open_backend(spec: RunSpec) -> Backend:
    """Open the model (or engine) of ``spec`` as it asks.

    Native TensorRT runs when asked for (``tensorrt`` or an engine) and, under ``auto``,
    wherever it can; otherwise ONNX Runtime. Each provider passed over is listed, with
    the reason, in the backend's ``fallbacks``. A bioimage.io package of ours runs its
    ONNX weights, once checked (:mod:`ernet.runtime.packages`).
    """
    if spec.provider not in PROVIDER_CHOICES:
        raise BackendError(f"unknown provider {spec.provider!r}; choose one of {', '.join(PROVIDER_CHOICES)}")
    package = spec.model_path
    if package is not None and is_package(package):
        if spec.provider == "tensorrt" or spec.engine is not None:
            raise BackendError(
                f"{package}: a bioimage.io package runs on ONNX Runtime; for native TensorRT give the "
                "ONNX model it was made from"
            )
        onnx, normalization = open_package(package, spec.cache())
        backend = _open(replace(spec, model=onnx), native_allowed=False)
        check_normalization(package, normalization, backend.metadata.contract.normalization)
        return backend
    return _open(spec)


def _open(spec: RunSpec, native_allowed: bool = True) -> Backend:
    """:func:`open_backend` for an ONNX model or engine; ``native_allowed``: whether
    ``auto`` may choose native TensorRT."""
    if spec.engine is not None and spec.provider not in ("auto", "tensorrt"):
        raise BackendError(f"an engine runs on native TensorRT, not on provider {spec.provider!r}")
    native = spec.provider == "tensorrt" or spec.engine is not None
    fallbacks: list[tuple[str, str]] = []
    if native or (spec.provider == "auto" and native_allowed):
        from .trt import TensorRtBackend

        try:
            return TensorRtBackend(spec)
        except (BackendError, ModelError) as exc:  # ModelError: e.g. an int8 model, CPU-only
            if native and not spec.fallback:
                raise
            fallbacks.append(("tensorrt", first_line(exc)))
    ort_provider = "ort-tensorrt" if spec.provider == "tensorrt" else spec.provider
    backend = OnnxRuntimeBackend(replace(spec, provider=ort_provider))
    backend.fallbacks[:0] = fallbacks
    return backend


__all__ = [
    "PROVIDER_CHOICES",
    "Backend",
    "Provider",
    "OnnxRuntimeBackend",
    "open_backend",
    "physical_cores",
    "read_onnx_metadata",
]
