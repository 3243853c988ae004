"""The few CUDA runtime calls the TensorRT backend needs, each checked.

Through ``cuda-python`` (``cuda.bindings.runtime``, imported here, so this module is
imported only when TensorRT runs); every call returns an error code first, which
:func:`_check` turns into a BackendError naming the call. ``make typecheck`` checks
the names used here against stubs generated from the installed bindings.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ..errors import BackendError

try:
    from cuda.bindings import runtime as cudart
except ImportError:  # the message is raised where CUDA is first needed
    CUDA_MISSING: str | None = (
        "cuda-python is not installed (pip install 'cuda-python>=12.6' matching your CUDA major version)"
    )
else:
    CUDA_MISSING = None


def _require_cuda() -> None:
    if CUDA_MISSING is not None:
        raise BackendError(CUDA_MISSING)


def _check(call: str, result: tuple[Any, ...]) -> Any:
    """The value(s) of a ``cuda.bindings`` result tuple, or BackendError on a CUDA error."""
    error, *values = result
    if error != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(error)
        raise BackendError(f"CUDA {call} failed: {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else tuple(values)


def device_properties() -> tuple[str, int, int]:
    """Name and compute capability (major, minor) of the current GPU."""
    _require_cuda()
    count = _check("cudaGetDeviceCount", cudart.cudaGetDeviceCount())
    if count < 1:
        raise BackendError("no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
    device = _check("cudaGetDevice", cudart.cudaGetDevice())
    props = _check("cudaGetDeviceProperties", cudart.cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00").strip(), int(props.major), int(props.minor)


class Stream:
    """One CUDA stream, with its pinned host and device buffers."""

    def __init__(self) -> None:
        _require_cuda()
        self.handle = _check("cudaStreamCreate", cudart.cudaStreamCreate())
        self._host: list[int] = []
        self._device: list[int] = []

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """A page-locked host array (fast, asynchronous copies), freed by :meth:`close`."""
        nbytes = int(np.prod(shape)) * dtype.itemsize
        pointer = _check("cudaMallocHost", cudart.cudaMallocHost(nbytes))
        self._host.append(int(pointer))
        raw = (ctypes.c_byte * nbytes).from_address(int(pointer))
        return np.frombuffer(memoryview(raw), dtype=dtype).reshape(shape)

    def device(self, nbytes: int) -> int:
        """A device allocation's address, freed by :meth:`close`."""
        pointer = int(_check("cudaMalloc", cudart.cudaMalloc(nbytes)))
        self._device.append(pointer)
        return pointer

    def to_device(self, address: int, host: np.ndarray) -> None:
        """Queue a copy of ``host`` (pinned, contiguous) to ``address``."""
        kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(
            "cudaMemcpyAsync",
            cudart.cudaMemcpyAsync(address, host.ctypes.data, host.nbytes, kind, self.handle),
        )

    def to_host(self, host: np.ndarray, address: int) -> None:
        """Queue a copy from ``address`` into ``host`` (pinned, contiguous)."""
        kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(
            "cudaMemcpyAsync",
            cudart.cudaMemcpyAsync(host.ctypes.data, address, host.nbytes, kind, self.handle),
        )

    def synchronize(self) -> None:
        """Wait until everything queued on the stream has run."""
        _check("cudaStreamSynchronize", cudart.cudaStreamSynchronize(self.handle))

    def close(self) -> None:
        """Free the buffers and the stream."""
        for pointer in self._device:
            cudart.cudaFree(pointer)
        for pointer in self._host:
            cudart.cudaFreeHost(pointer)
        self._device, self._host = [], []
        if self.handle is not None:
            cudart.cudaStreamDestroy(self.handle)
            self.handle = None
