"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers, chosen honestly.

ONNX Runtime silently falls back to the CPU when a GPU provider fails to start;
this backend reports the provider that actually runs, and refuses an explicitly
requested provider that did not start instead of pretending.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendError, ModelError, first_line
from ..io import file_sha256
from ..metadata import METADATA_KEY, ModelMetadata
from ..spec import RunSpec
from ..tiling import TilePlan
from .base import INPUT_NAME, OUTPUT_NAME, PROBABILITIES_NAME, Profile, physical_cores

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

_PROVIDERS = {
    "ort-tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
#: Where a package's probabilities underflow, the log-probability taken instead of -inf.
_SMALLEST = np.finfo(np.float32).tiny
#: Providers this backend accepts; ``auto`` tries them fastest first.
ORT_PROVIDER_CHOICES = ("auto", *_PROVIDERS)
_ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")


def installed_onnxruntime_distributions() -> list[str]:
    """Names of the installed distributions that provide the ``onnxruntime`` module."""
    found = []
    for name in _ORT_DISTRIBUTIONS:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def import_onnxruntime() -> ModuleType:
    """``onnxruntime``, warning when several distributions provide it; its own logging quietened."""
    found = installed_onnxruntime_distributions()
    if len(found) > 1:
        warnings.warn(
            f"several ONNX Runtime packages are installed ({', '.join(found)}); they share "
            "the module 'onnxruntime' and the last installed wins. Uninstall all but one.",
            RuntimeWarning,
            stacklevel=3,
        )
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # errors only: we report fallbacks ourselves
    return onnxruntime


#: What to install when a GPU provider does not start, by provider.
_HOW_TO_FIX = {
    "ort-tensorrt": "install TensorRT 10 for CUDA 12 (pip install tensorrt-cu12) "
    "and check the GPU with nvidia-smi",
    "cuda": "install the CUDA 12 and cuDNN 9 runtime libraries (pip install 'onnxruntime-gpu[cuda,cudnn]') "
    "and check the GPU with nvidia-smi",
}


def tensorrt_profile(tile: int, batch: int, channels: int) -> dict[str, str]:
    """TensorRT EP optimisation profile for the fixed tile shape: batches of 1 to ``batch``.

    Explicit shapes stop ONNX Runtime from rebuilding engines (30-100 s) on shapes it
    has not seen.
    """
    profile = Profile.for_tiles(tile, batch, channels)
    shape = lambda dims: f"{INPUT_NAME}:{'x'.join(map(str, dims))}"  # noqa: E731
    return {
        "trt_profile_min_shapes": shape(profile.min),
        "trt_profile_opt_shapes": shape(profile.opt),
        "trt_profile_max_shapes": shape(profile.max),
    }


@contextmanager
def _captured_native_output() -> Iterator[list[str]]:
    """Collect what native code prints to stdout/stderr (ORT's provider errors) meanwhile."""
    lines: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def _failure_reason(lines: list[str]) -> str:
    """The most telling line of ORT's output about a provider that did not start."""
    for pattern in (r"error: (.*)", r"(Please install .*?)(?: as mentioned|$)", r"\] (.*Fail.*)"):
        for line in lines:
            match = re.search(pattern, line)
            if match:
                return match.group(1).strip()
    return "it did not initialise"


class OnnxRuntimeBackend:
    """A model's ONNX file in an ONNX Runtime session.

    ``provider="auto"`` tries TensorRT, then CUDA, then the CPU, keeping the first
    that really initialises; ``fallbacks`` says why each faster one was passed over.
    A provider named explicitly that cannot start is an error, unless ``fallback``.
    """

    def __init__(self, spec: RunSpec) -> None:
        provider = spec.provider
        if provider not in ORT_PROVIDER_CHOICES:
            raise BackendError(
                f"unknown ONNX Runtime provider {provider!r}; choose one of {', '.join(ORT_PROVIDER_CHOICES)}"
            )
        model = spec.model_path
        if model is None:
            raise ModelError("no ONNX model to fall back on from the TensorRT engine: pass --model")
        self.path = model
        self.spec = spec
        self.metadata = read_onnx_metadata(model)
        self.plan = spec.tiling(self.metadata.contract)
        ort = import_onnxruntime()
        available = set(ort.get_available_providers())
        order = list(_PROVIDERS)
        if provider == "auto":
            wanted = order[:-1]
        else:
            wanted = order[order.index(provider) : -1] if spec.fallback else [provider]
        self.fallbacks: list[tuple[str, str]] = []
        session: InferenceSession | None = None
        for name in wanted:
            if _PROVIDERS[name] not in available:
                self.fallbacks.append((name, "not in this ONNX Runtime build"))
                continue
            session, reason = self._open_session(ort, name)
            if session is not None:
                break
            self.fallbacks.append((name, reason))
        if session is None:
            if provider not in ("auto", "cpu") and not spec.fallback:
                name, reason = self.fallbacks[-1]
                fix = _HOW_TO_FIX.get(name, "")
                raise BackendError(
                    f"provider {name!r} cannot run here: {reason}"
                    + (f"; to fix: {fix}" if fix else "")
                    + "; or pass --fallback to run on the next provider"
                )
            session, _ = self._open_session(ort, "cpu")
            assert session is not None  # the CPU provider always starts, or a ModelError was raised
        self.session: InferenceSession | None = session
        #: The graph returns probabilities (a bioimage.io package's ONNX weights), not logits.
        self._probabilities = [o.name for o in session.get_outputs()] == [PROBABILITIES_NAME]
        self.provider = session.get_providers()[0]
        self.description = f"onnxruntime/{self.provider}"
        if self.provider == _PROVIDERS["ort-tensorrt"]:  # its engines are built for the plan's tiles
            self.plan = replace(self.plan, fixed_shape=True)
        elif self.provider == _PROVIDERS["cpu"]:  # larger tiles run faster, up to whole frames
            self.plan = spec.tiling(self.metadata.contract, grow=True)

    def _open_session(self, ort: ModuleType, name: str) -> tuple[InferenceSession | None, str]:
        """A session on provider ``name`` (CPU as the only fallback), or None and why not."""
        try:
            options = provider_options(
                name, self.path, self.spec, self.plan, self.metadata.contract.in_channels
            )
        except OSError as exc:  # its cache folder cannot be made: this provider is out, not the run
            reason = exc.strerror or first_line(exc)
            return None, f"cannot create its cache under {self.spec.cache()} ({reason}); set $ERNET_CACHE"
        return open_session(ort, self.path, session_options(ort, self.spec), name, options)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N x K x H x W float32) for a float32 N x C x H x W batch."""
        if self.session is None:
            raise BackendError(f"{self.path}: the model was closed")
        (output,) = self.session.run(None, {INPUT_NAME: batch})
        if self._probabilities:  # a package's graph: log-probabilities order and blend as logits do
            return np.log(np.maximum(output, _SMALLEST, dtype=np.float32))
        return np.asarray(output, dtype=np.float32)

    def close(self) -> None:
        """Release the session; ``run`` fails afterwards."""
        self.session = None


def session_options(ort: ModuleType, spec: RunSpec) -> Any:
    """ONNX Runtime session options for ``spec``: its threads (default: the physical
    cores); no memory pattern, which is planned per input shape, and tile shapes follow
    the frames (measured: the first 1392 x 1392 tile of the embedded model 0.97 s
    instead of 1.49 s, later ones alike)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = spec.threads or physical_cores()
    options.enable_mem_pattern = False
    return options


def provider_options(name: str, model: Path, spec: RunSpec, plan: TilePlan, channels: int) -> dict[str, str]:
    """The options of provider ``name`` for ``model``: for ONNX Runtime's TensorRT, explicit
    profiles of the plan's tiles and engine and timing caches per model under the spec's
    cache; for CUDA, heuristic convolution search (the last batch of a frame may be short)."""
    if name == "ort-tensorrt":
        model_hash = file_sha256(model)[:16]
        cache = spec.cache() / "trt" / model_hash
        cache.mkdir(parents=True, exist_ok=True)
        return {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache),
            "trt_engine_cache_prefix": f"ernet_{model_hash}",
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache),
            "trt_fp16_enable": str(spec.fp16),
            **tensorrt_profile(plan.tile, plan.batch, channels),
        }
    if name == "cuda":
        return {"cudnn_conv_algo_search": "HEURISTIC"}
    return {}


def open_session(
    ort: ModuleType, model: Path, options: Any, name: str, provider_options: dict[str, str] | None = None
) -> tuple[InferenceSession | None, str]:
    """A session on provider ``name`` with the CPU as its only fallback, or None and the
    reason it did not start; a file the CPU provider cannot load is a ModelError."""
    providers: list[tuple[str, dict[str, str]]] = [(_PROVIDERS[name], provider_options or {})]
    if name != "cpu":
        providers.append((_PROVIDERS["cpu"], {}))
    # GPU providers print their start-up failures from native code: keep them for the
    # reason we report. The CPU provider reports through exceptions; leave fds alone.
    capture: AbstractContextManager[list[str]] = (
        _captured_native_output() if name != "cpu" else nullcontext([])
    )
    try:
        with capture as output:
            session = ort.InferenceSession(str(model), options, providers=providers)
    except Exception as exc:  # ORT raises its own exception types for bad files
        reason = first_line(exc)
        if name != "cpu":
            return None, _failure_reason([reason, *output])
        raise ModelError(f"{model}: not a loadable ONNX model ({reason})") from None
    if session.get_providers()[0] != _PROVIDERS[name]:
        return None, _failure_reason(output)
    return session, ""


def _is_torch_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a PyTorch file: a zip archive (torch.save's format) or a pickle."""
    with path.open("rb") as file:
        head = file.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def read_onnx_metadata(model: Path) -> ModelMetadata:
    """The description inside an ONNX file, with its tensors checked; ModelError, naming
    the file, when it is missing, not ONNX, not one of ours, or has other tensors."""
    model = Path(model)
    if model.is_dir():
        raise ModelError(f"{model}: a directory, not a model file (give an exported .onnx file)")
    if not model.is_file():
        raise ModelError(f"{model}: model file not found")
    if _is_torch_checkpoint(model):
        raise ModelError(
            f"{model}: a PyTorch checkpoint, not an ONNX model; "
            f"export it first: ernet-export {model} -o model.onnx"
        )
    ort = import_onnxruntime()
    options = session_options(ort, RunSpec(threads=1))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session, _ = open_session(ort, model, options, "cpu")
    assert session is not None  # the CPU provider starts, or open_session raised
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ModelError(
            f"{model}: not an ERNet model (no '{METADATA_KEY}' metadata; export it with ernet-export)"
        )
    try:
        metadata = ModelMetadata.from_props(props)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{model}: invalid ERNet metadata ({first_line(exc)})") from None
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or outputs not in ([OUTPUT_NAME], [PROBABILITIES_NAME]):
        raise ModelError(
            f"{model}: expected input '{INPUT_NAME}' and output '{OUTPUT_NAME}' (or '{PROBABILITIES_NAME}'), "
            f"found inputs {inputs} and outputs {outputs}"
        )
    return metadata
