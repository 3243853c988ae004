"""TensorRT engines: built on the machine that runs them, cached, described by a manifest.

An engine is a plain TensorRT plan (``trtexec --loadEngine`` loads it) built as a
*strongly typed* network from an ERNet ONNX file, so its precision is the ONNX
graph's (fp16 from ``model.fp16.onnx``; TensorRT 11 has no fp16/int8 builder flags).
Beside each ``NAME.plan`` a JSON manifest ``NAME.plan.json`` records what the
engine depends on (the :class:`EngineKey`: ONNX hash, input profile, precision,
TensorRT version, GPU name and compute capability) and the model's metadata. An
engine whose manifest does not match this machine is refused.

Only :func:`build_engine` and :func:`current_target` touch TensorRT or CUDA; all
else here is plain Python, tested without a GPU.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import BackendError, ModelError
from ..io import atomic_output, file_sha256
from ..metadata import ModelMetadata
from ..spec import RunSpec
from .base import INPUT_NAME, Profile
from .ort import read_onnx_metadata

MANIFEST_FORMAT = "ernet-tensorrt-engine"
MANIFEST_VERSION = 1
#: Builder workspace limit.
WORKSPACE_BYTES = 4 << 30
#: What to install for the native TensorRT backend.
INSTALL_HINT = "pip install 'ernet[tensorrt]' (TensorRT 10.12+, cuda-python of your CUDA major version)"


class EngineMismatch(BackendError):
    """An engine built for another GPU, TensorRT version, model or profile."""


@dataclass(frozen=True)
class Target:
    """What an engine is tied to on the machine that runs it."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "major.minor"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; equal keys mean interchangeable engines."""

    onnx_sha256: str
    profile: Profile
    precision: str
    target: Target

    def digest(self) -> str:
        """A short stable hash of the key."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def file_name(self) -> str:
        """The cached engine's file name: readable fields, then the digest."""
        batch, _, tile, _ = self.profile.max
        return f"ernet-{self.precision}-b{batch}-t{tile}-{self.digest()}.plan"


def manifest_path(engine: Path) -> Path:
    """The manifest beside an engine: ``NAME.plan`` -> ``NAME.plan.json``."""
    return engine.with_name(engine.name + ".json")


@dataclass(frozen=True)
class EngineManifest:
    """The JSON description saved beside an engine."""

    key: EngineKey
    engine_sha256: str
    metadata: ModelMetadata
    source_onnx: str
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> str:
        values = {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "key": asdict(self.key),
            "key_digest": self.key.digest(),
            "engine_sha256": self.engine_sha256,
            "source_onnx": self.source_onnx,
            "created": self.created,
            "metadata": self.metadata.to_dict(),
        }
        return json.dumps(values, indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, engine: Path) -> EngineManifest:
        """The manifest of ``engine``; ModelError when missing or unreadable."""
        path = manifest_path(engine)
        try:
            values = json.loads(path.read_text())
            if values.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format is {values.get('format')!r}, not {MANIFEST_FORMAT!r}")
            if values.get("format_version", 0) > MANIFEST_VERSION:
                raise ValueError(f"manifest version {values['format_version']} is newer than this runtime")
            key = values["key"]
            profile = key["profile"]
            return cls(
                key=EngineKey(
                    key["onnx_sha256"],
                    Profile(tuple(profile["min"]), tuple(profile["opt"]), tuple(profile["max"])),
                    key["precision"],
                    Target(**key["target"]),
                ),
                engine_sha256=values["engine_sha256"],
                metadata=ModelMetadata.from_dict(values["metadata"]),
                source_onnx=values["source_onnx"],
                created=values["created"],
            )
        except FileNotFoundError:
            raise ModelError(
                f"{engine}: no manifest {path.name} beside the engine (build engines with ernet-export or "
                "ernet-infer --provider tensorrt, which write one)"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path}: not a valid engine manifest ({exc})") from None

    def check(
        self, engine: Path, target: Target, onnx_sha256: str | None = None, profile: Profile | None = None
    ) -> None:
        """Refuse (EngineMismatch) an engine built elsewhere, from another model, or for other tiles."""
        built = self.key.target
        problems = []
        if profile is not None and profile != self.key.profile:
            problems.append(f"inputs {self.key.profile.max}, asked for {profile.max}")
        if built.tensorrt_version != target.tensorrt_version:
            problems.append(f"TensorRT {built.tensorrt_version}, this machine has {target.tensorrt_version}")
        if (built.gpu_name, built.compute_capability) != (target.gpu_name, target.compute_capability):
            problems.append(
                f"{built.gpu_name} (compute {built.compute_capability}), this machine has "
                f"{target.gpu_name} (compute {target.compute_capability})"
            )
        if onnx_sha256 is not None and onnx_sha256 != self.key.onnx_sha256:
            problems.append(f"ONNX {self.key.onnx_sha256[:12]}, the model given is {onnx_sha256[:12]}")
        if problems:
            raise EngineMismatch(
                f"{engine}: built for {'; '.join(problems)}: pass --rebuild-engine to rebuild it "
                "from --model, or --fallback to run on ONNX Runtime"
            )
        if file_sha256(engine) != self.engine_sha256:
            raise ModelError(f"{engine}: file does not match its manifest (truncated or replaced)")


def tile_profile(metadata: ModelMetadata, spec: RunSpec) -> Profile:
    """The input profile of the tiles ``spec`` runs a model of ``metadata`` on."""
    plan = spec.tiling(metadata.contract)
    return Profile.for_tiles(plan.tile, plan.batch, metadata.contract.in_channels)


def engine_key(onnx: Path, metadata: ModelMetadata, spec: RunSpec, target: Target) -> EngineKey:
    """The key of the engine ``spec`` asks for, from the ONNX file ``onnx``."""
    if metadata.precision == "int8":
        raise ModelError(
            f"{onnx}: int8 models are quantised for CPUs (u8 activations, which TensorRT does not take); "
            "build engines from model.fp16.onnx or model.onnx"
        )
    return EngineKey(file_sha256(onnx), tile_profile(metadata, spec), metadata.precision, target)


def tensorrt_unavailable_reason() -> str | None:
    """Why native TensorRT cannot run here, or None when it can."""
    try:
        current_target()
    except BackendError as exc:
        return str(exc)
    return None


def current_target() -> Target:
    """TensorRT's version and the current GPU; BackendError when either is missing."""
    try:
        import tensorrt as trt

        version = trt.__version__  # absent where only the type stubs are installed
    except (ImportError, AttributeError):
        raise BackendError(f"the TensorRT Python package is not installed; to fix: {INSTALL_HINT}") from None
    from .gpu import device_properties

    name, major, minor = device_properties()
    return Target(version, name, f"{major}.{minor}")


def build_engine(
    onnx: Path, engine: Path, key: EngineKey, metadata: ModelMetadata, timing_cache: Path
) -> None:
    """Build a strongly typed engine for ``key`` from ``onnx`` and write it and its
    manifest atomically; the timing cache is read from and saved to ``timing_cache``."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{onnx}: TensorRT cannot parse this ONNX model ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    profile.set_shape(
        INPUT_NAME,
        trt.Dims(list(key.profile.min)),
        trt.Dims(list(key.profile.opt)),
        trt.Dims(list(key.profile.max)),
    )
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"{onnx}: TensorRT could not build an engine (see its messages above)")
    with atomic_output(timing_cache) as tmp:
        tmp.write_bytes(memoryview(config.get_timing_cache().serialize()))
    with atomic_output(engine) as tmp:
        tmp.write_bytes(memoryview(plan))
        manifest = EngineManifest(key, file_sha256(tmp), metadata, str(onnx))
        with atomic_output(manifest_path(engine)) as tmp_manifest:
            tmp_manifest.write_text(manifest.to_json())


Builder = Callable[[Path, Path, EngineKey, ModelMetadata, Path], None]


def build_or_load_engine(
    onnx: Path | None,
    spec: RunSpec,
    engine: Path | None = None,
    *,
    target: Target | None = None,
    build: Builder = build_engine,
) -> tuple[Path, EngineManifest]:
    """A valid engine for this machine and its manifest.

    ``engine`` given and present: checked against this machine (and against ``onnx``
    when given); a mismatch is refused unless ``spec.rebuild_engine``. Absent: built
    from ``onnx`` there. ``engine`` None: the cache under ``spec.cache()/trt-engines``,
    keyed by :class:`EngineKey`. Builds hold a lock, so concurrent processes build once.
    """
    from filelock import FileLock

    target = target or current_target()
    onnx_sha = file_sha256(onnx) if onnx is not None else None
    if engine is not None and engine.is_file() and not spec.rebuild_engine:
        manifest = EngineManifest.read(engine)
        manifest.check(engine, target, onnx_sha, tile_profile(manifest.metadata, spec))
        return engine, manifest
    if onnx is None:
        problem = (
            "cannot rebuild the engine" if engine is not None and engine.is_file() else "engine not found"
        )
        raise ModelError(f"{engine}: {problem}, and no ONNX model to build it from (pass --model)")
    metadata = read_onnx_metadata(onnx)
    key = engine_key(onnx, metadata, spec, target)
    cache = spec.cache() / "trt-engines"
    engine = engine or cache / key.file_name()
    engine.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(engine) + ".lock"):
        if engine.is_file() and not spec.rebuild_engine:  # cached, or built meanwhile elsewhere
            manifest = EngineManifest.read(engine)
            if manifest.key == key:
                manifest.check(engine, target, onnx_sha)
                return engine, manifest
        timing_cache = cache / f"timing-{target.tensorrt_version}-sm{target.compute_capability}.cache"
        cache.mkdir(parents=True, exist_ok=True)
        build(onnx, engine, key, metadata, timing_cache)
    return engine, EngineManifest.read(engine)


__all__ = [
    "EngineKey",
    "EngineManifest",
    "EngineMismatch",
    "Profile",
    "Target",
    "build_or_load_engine",
    "current_target",
    "engine_key",
    "manifest_path",
    "tensorrt_unavailable_reason",
]
