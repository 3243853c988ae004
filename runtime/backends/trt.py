"""Native TensorRT backend: a cached (or given) engine on one CUDA stream.

Fixed tiles make the shapes known in advance: buffers for the profile's largest
batch are allocated once (pinned on the host, on the device), their addresses bound
once, and each call copies in, runs ``execute_async_v3`` and copies out on one stream.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BackendError, ModelError
from ..spec import RunSpec
from .base import INPUT_NAME, OUTPUT_NAME
from .trt_engine import EngineManifest, build_or_load_engine, current_target

if TYPE_CHECKING:
    import tensorrt as trt

    from .gpu import Stream


class TensorRtBackend:
    """A TensorRT engine of one of our models; see :func:`build_or_load_engine` for where
    it comes from."""

    def __init__(self, spec: RunSpec) -> None:
        if spec.fp16:
            raise BackendError(
                "native TensorRT takes its precision from the ONNX graph: pass --model model.fp16.onnx "
                "instead of --fp16"
            )
        target = current_target()  # BackendError with the reason when TensorRT or a GPU is missing
        self.fallbacks: list[tuple[str, str]] = []
        self.path, manifest = build_or_load_engine(spec.model_path, spec, spec.engine, target=target)
        self.metadata = manifest.metadata
        self.plan = replace(spec.tiling(self.metadata.contract), fixed_shape=True)  # the engine's profile
        self.profile = manifest.key.profile
        self.description = f"tensorrt/{target.tensorrt_version} {target.gpu_name} ({manifest.key.precision})"
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._stream: Stream | None = None
        try:
            self._open(manifest)
        except BaseException:
            self.close()  # the stream and buffers allocated before the failure
            raise

    def _open(self, manifest: EngineManifest) -> None:
        import tensorrt as trt

        from .gpu import Stream

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise ModelError(f"{self.path}: TensorRT cannot load this engine")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        if sorted(names) != sorted([INPUT_NAME, OUTPUT_NAME]):
            raise ModelError(
                f"{self.path}: expected tensors {INPUT_NAME!r} and {OUTPUT_NAME!r}, found {names}"
            )
        for name in names:
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise ModelError(f"{self.path}: tensor {name!r} is not float32")
        self._engine = engine
        self._stream = stream = Stream()
        batch, channels, tile, _ = self.profile.max
        classes = manifest.metadata.contract.n_classes
        self._input = stream.pinned((batch, channels, tile, tile), np.dtype(np.float32))
        self._output = stream.pinned((batch, classes, tile, tile), np.dtype(np.float32))
        self._input_address = stream.device(self._input.nbytes)
        self._output_address = stream.device(self._output.nbytes)
        context = engine.create_execution_context()
        for name, address in ((INPUT_NAME, self._input_address), (OUTPUT_NAME, self._output_address)):
            if not context.set_tensor_address(name, address):
                raise BackendError(f"{self.path}: TensorRT refused the address of {name!r}")
        self._context = context

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N x K x H x W float32) for a float32 N x C x H x W batch inside the profile."""
        if self._context is None or self._stream is None:
            raise BackendError(f"{self.path}: the engine was closed")
        shape = tuple(batch.shape)
        if not self.profile.admits(shape):
            raise BackendError(
                f"{self.path}: input {shape} is outside the engine's profile "
                f"{self.profile.min} to {self.profile.max}"
            )
        n = shape[0]
        if not self._context.set_input_shape(INPUT_NAME, shape):
            raise BackendError(f"{self.path}: TensorRT refused input shape {shape}")
        np.copyto(self._input[:n], batch, casting="same_kind")
        self._stream.to_device(self._input_address, self._input[:n])
        if not self._context.execute_async_v3(int(self._stream.handle)):
            raise BackendError(f"{self.path}: TensorRT execution failed")
        self._stream.to_host(self._output[:n], self._output_address)
        self._stream.synchronize()
        return self._output[:n].copy()

    def close(self) -> None:
        """Release the context, the engine and the CUDA buffers; ``run`` fails afterwards."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.synchronize()  # nothing queued may outlive the context or the buffers
        self._context = None
        self._engine = None
        if stream is not None:
            stream.close()


__all__ = ["TensorRtBackend"]
