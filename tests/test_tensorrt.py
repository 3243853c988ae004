"""Native TensorRT around the GPU calls: profiles, cache keys, manifests, refusal of
mismatched engines, locking, the --engine plumbing; and, where a GPU and TensorRT
are present, the engine itself (marked ``gpu``)."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from ernet.runtime import ModelMetadata, RunSpec, Segmenter
from ernet.runtime.backends import open_backend
from ernet.runtime.backends.base import Profile
from ernet.runtime.backends.ort import tensorrt_profile
from ernet.runtime.backends.trt_engine import (
    EngineKey,
    EngineManifest,
    EngineMismatch,
    Target,
    build_or_load_engine,
    manifest_path,
    tensorrt_unavailable_reason,
)
from ernet.runtime.errors import BackendError, ModelError
from ernet.runtime.io import file_sha256

from conftest import run_cli

H100 = Target("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0")
NO_TENSORRT = tensorrt_unavailable_reason()


class FakeBuilder:
    """Stands in for TensorRT's builder: writes a plan of known bytes and its manifest."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls = 0
        self.seconds = seconds

    def __call__(
        self, onnx: Path, engine: Path, key: EngineKey, metadata: ModelMetadata, cache: Path
    ) -> None:
        self.calls += 1
        time.sleep(self.seconds)
        engine.write_bytes(b"plan " + key.digest().encode())
        cache.write_bytes(b"timing")
        manifest_path(engine).write_text(
            EngineManifest(key, file_sha256(engine), metadata, str(onnx)).to_json()
        )


def _options(tmp_path: Path, **kwargs: object) -> RunSpec:
    return replace(RunSpec(provider="tensorrt", cache_dir=tmp_path / "cache"), **kwargs)  # type: ignore[arg-type]


def test_profile_from_tile_and_batch() -> None:
    profile = Profile.for_tiles(256, 4, 1)
    assert (profile.min, profile.opt, profile.max) == ((1, 1, 256, 256), (4, 1, 256, 256), (4, 1, 256, 256))
    assert profile.admits((3, 1, 256, 256)) and profile.admits((1, 1, 256, 256))
    assert not profile.admits((5, 1, 256, 256)) and not profile.admits((1, 1, 256, 128))
    assert not profile.admits((1, 256, 256))
    assert tensorrt_profile(256, 4, 1)["trt_profile_min_shapes"] == "image:1x1x256x256"  # ORT's, same shapes
    with pytest.raises(ValueError):
        Profile.for_tiles(0, 4, 1)


def test_cache_key_covers_everything_an_engine_depends_on() -> None:
    key = EngineKey("ab" * 32, Profile.for_tiles(256, 4, 1), "fp16", H100)
    variants = [
        replace(key, onnx_sha256="cd" * 32),
        replace(key, profile=Profile.for_tiles(256, 8, 1)),
        replace(key, profile=Profile.for_tiles(512, 4, 1)),
        replace(key, precision="fp32"),
        replace(key, target=replace(H100, tensorrt_version="10.12.0.36")),
        replace(key, target=replace(H100, gpu_name="NVIDIA A100-SXM4-80GB")),
        replace(key, target=replace(H100, compute_capability="8.0")),
    ]
    digests = {key.digest(), *(v.digest() for v in variants)}
    assert len(digests) == len(variants) + 1 and all(len(d) == 16 for d in digests)
    assert key.digest() == EngineKey("ab" * 32, Profile.for_tiles(256, 4, 1), "fp16", H100).digest()
    assert key.file_name() == f"ernet-fp16-b4-t256-{key.digest()}.plan"


def test_engines_are_built_once_cached_by_key_and_described(tiny_onnx: Path, tmp_path: Path) -> None:
    build = FakeBuilder()
    engine, manifest = build_or_load_engine(tiny_onnx, _options(tmp_path), target=H100, build=build)
    assert engine.parent == tmp_path / "cache" / "trt-engines" and engine.suffix == ".plan"
    assert manifest.key.onnx_sha256 == file_sha256(tiny_onnx) and manifest.key.profile.max == (4, 1, 64, 64)
    assert manifest.metadata.architecture.config["n_feats"] == 8  # the model's description travels with it
    saved = json.loads(manifest_path(engine).read_text())
    assert saved["format"] == "ernet-tensorrt-engine" and saved["key"]["target"]["gpu_name"] == H100.gpu_name
    assert saved["key_digest"] == manifest.key.digest()
    again, _ = build_or_load_engine(tiny_onnx, _options(tmp_path), target=H100, build=build)
    assert again == engine and build.calls == 1
    other, _ = build_or_load_engine(tiny_onnx, _options(tmp_path, batch=8), target=H100, build=build)
    assert other != engine and build.calls == 2
    build_or_load_engine(tiny_onnx, _options(tmp_path, rebuild_engine=True), target=H100, build=build)
    assert build.calls == 3


def test_engine_for_another_gpu_or_tensorrt_is_refused_then_rebuilt_by_option(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    build = FakeBuilder()
    engine = tmp_path / "model.plan"
    build_or_load_engine(tiny_onnx, _options(tmp_path, engine=engine), engine, target=H100, build=build)
    assert engine.is_file() and manifest_path(engine).is_file() and build.calls == 1
    a100 = Target("10.12.0.36", "NVIDIA A100-SXM4-80GB", "8.0")
    with pytest.raises(EngineMismatch) as info:
        build_or_load_engine(tiny_onnx, _options(tmp_path), engine, target=a100, build=build)
    message = str(info.value)
    assert "TensorRT 10.13.0.35, this machine has 10.12.0.36" in message
    assert (
        "NVIDIA H100 80GB HBM3 (compute 9.0), this machine has NVIDIA A100-SXM4-80GB (compute 8.0)" in message
    )
    assert "--rebuild-engine" in message and "--fallback" in message and "\n" not in message
    _, manifest = build_or_load_engine(
        tiny_onnx, _options(tmp_path, rebuild_engine=True), engine, target=a100, build=build
    )
    assert build.calls == 2 and manifest.key.target == a100


def test_engine_from_another_model_or_for_other_tiles_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    engine = tmp_path / "model.plan"
    build_or_load_engine(tiny_onnx, _options(tmp_path), engine, target=H100, build=FakeBuilder())
    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_onnx.read_bytes() + b"\0")
    with pytest.raises(EngineMismatch, match="the model given is"):
        build_or_load_engine(other, _options(tmp_path), engine, target=H100)
    with pytest.raises(EngineMismatch, match=r"inputs \(4, 1, 64, 64\), asked for \(4, 1, 128, 128\)"):
        build_or_load_engine(None, _options(tmp_path, tile=128), engine, target=H100)
    build_or_load_engine(None, _options(tmp_path), engine, target=H100)  # the engine alone is enough
    with pytest.raises(ModelError, match="cannot rebuild the engine, and no ONNX model"):
        build_or_load_engine(None, _options(tmp_path, rebuild_engine=True), engine, target=H100)


def test_damaged_or_undescribed_engines_are_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    engine = tmp_path / "model.plan"
    build_or_load_engine(tiny_onnx, _options(tmp_path), engine, target=H100, build=FakeBuilder())
    engine.write_bytes(engine.read_bytes()[:-1])
    with pytest.raises(ModelError, match="does not match its manifest"):
        build_or_load_engine(None, _options(tmp_path), engine, target=H100)
    manifest_path(engine).write_text("{}")
    with pytest.raises(ModelError, match="not a valid engine manifest"):
        build_or_load_engine(None, _options(tmp_path), engine, target=H100)
    manifest_path(engine).unlink()
    with pytest.raises(ModelError, match="no manifest model.plan.json beside the engine"):
        build_or_load_engine(None, _options(tmp_path), engine, target=H100)
    with pytest.raises(ModelError, match="engine not found, and no ONNX model"):
        build_or_load_engine(None, _options(tmp_path), tmp_path / "absent.plan", target=H100)


def test_int8_models_are_not_built_into_engines(tiny_onnx: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from ernet.export.precision import with_metadata

    model = onnx.load(tiny_onnx)
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
    int8 = tmp_path / "m.int8.onnx"
    onnx.save(with_metadata(model, replace(meta, precision="int8")), int8)
    with pytest.raises(ModelError, match="quantised for CPUs"):
        build_or_load_engine(int8, _options(tmp_path), target=H100, build=FakeBuilder())


def test_concurrent_builds_of_one_engine_build_it_once(tiny_onnx: Path, tmp_path: Path) -> None:
    build = FakeBuilder(seconds=0.5)
    results: list[Path] = []

    def work() -> None:
        results.append(build_or_load_engine(tiny_onnx, _options(tmp_path), target=H100, build=build)[0])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert build.calls == 1 and len(set(results)) == 1


@pytest.mark.skipif(NO_TENSORRT is None, reason="TensorRT runs here")
def test_engine_option_without_tensorrt_is_a_one_line_error_or_falls_back(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    frame = tmp_path / "f.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint8))
    engine = tmp_path / "m.plan"
    done = run_cli("ernet-infer", frame, "--engine", engine, "--out", tmp_path / "a")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {NO_TENSORRT}"]
    assert "pip install 'ernet[tensorrt]'" in done.stderr and not (tmp_path / "a").exists()
    done = run_cli("ernet-infer", frame, "--engine", engine, "--provider", "cpu", "--out", tmp_path / "b")
    assert done.returncode == 1 and "an engine runs on native TensorRT" in done.stderr
    done = run_cli(
        "ernet-infer", frame, "--engine", engine, "--model", tiny_onnx, "--fallback", "--out", tmp_path / "c"
    )
    assert done.returncode == 0, done.stderr
    assert "note: provider tensorrt not used: the TensorRT Python package is not installed" in done.stderr
    assert (tmp_path / "c" / "f_mask.tif").is_file()


@pytest.mark.skipif(NO_TENSORRT is None, reason="TensorRT runs here")
def test_segmenter_api_takes_engines_and_falls_back_by_option(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="TensorRT Python package is not installed"):
        Segmenter(tiny_onnx, provider="tensorrt")
    with Segmenter(tiny_onnx, engine=tmp_path / "m.plan", fallback=True) as seg:
        assert seg.backend.fallbacks[0][0] == "tensorrt"
        assert seg.backend.description.startswith("onnxruntime/")
    auto = open_backend(RunSpec(tiny_onnx, "auto"))
    assert auto.fallbacks[0][0] == "tensorrt"  # auto tries native TensorRT first, and says why not


def test_cuda_errors_name_the_call_through_the_real_bindings() -> None:
    """cuda-bindings imports without a GPU: its error results become one-line BackendErrors."""
    cudart = pytest.importorskip("cuda.bindings.runtime")
    from ernet.runtime.backends.gpu import Stream, device_properties

    error, count = cudart.cudaGetDeviceCount()
    if error == cudart.cudaError_t.cudaSuccess and count > 0:
        pytest.skip("a GPU is visible here")
    with pytest.raises(BackendError, match=r"^(CUDA cudaGetDeviceCount failed: cudaError\w+|no CUDA GPU)"):
        device_properties()
    with pytest.raises(BackendError, match=r"^CUDA cudaStreamCreate failed: cudaError\w+$"):
        Stream()


class FakeDevice:
    """Stands in for the GPU under the native runner: device memory, a stream, and an
    engine whose logits are (0.5 - x, x - 0.5), so ER is where the normalised input > 0.5."""

    def __init__(self, accept_address: bool = True) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.accept_address = accept_address
        self.streams: list[Any] = []
        self.batches: list[int] = []  # tiles per execution
        device = self

        class Stream:
            handle = 7

            def __init__(self) -> None:
                self.closed = False
                device.streams.append(self)

            def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
                return np.zeros(shape, dtype)

            def device(self, nbytes: int) -> int:
                address = 0x1000 * (len(device.memory) + 1)
                device.memory[address] = np.zeros(nbytes, np.uint8)
                return address

            def to_device(self, address: int, host: np.ndarray) -> None:
                device.memory[address][: host.nbytes] = host.reshape(-1).view(np.uint8)

            def to_host(self, host: np.ndarray, address: int) -> None:
                host[...] = device.memory[address][: host.nbytes].view(host.dtype).reshape(host.shape)

            def synchronize(self) -> None:
                assert not self.closed

            def close(self) -> None:
                self.closed = True

        class Context:
            def __init__(self) -> None:
                self.addresses: dict[str, int] = {}
                self.shape: tuple[int, ...] = ()

            def set_tensor_address(self, name: str, address: int) -> bool:
                self.addresses[name] = address
                return device.accept_address

            def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
                self.shape = shape
                return True

            def execute_async_v3(self, stream: int) -> bool:
                n, c, h, w = self.shape
                device.batches.append(n)
                x = device.memory[self.addresses["image"]][: n * c * h * w * 4].view(np.float32)
                logits = np.concatenate([0.5 - x.reshape(n, c, h, w), x.reshape(n, c, h, w) - 0.5], axis=1)
                device.memory[self.addresses["logits"]][: logits.nbytes] = logits.reshape(-1).view(np.uint8)
                return stream == Stream.handle

        class Engine:
            num_io_tensors = 2

            def get_tensor_name(self, i: int) -> str:
                return ["image", "logits"][i]

            def get_tensor_dtype(self, name: str) -> str:
                return "float"

            def create_execution_context(self) -> Context:
                return Context()

        class Logger:
            WARNING = 2

            def __init__(self, severity: int) -> None:
                pass

        self.Stream = Stream
        self.tensorrt = types.SimpleNamespace(
            Logger=Logger,
            Runtime=lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda plan: Engine()),
            DataType=types.SimpleNamespace(FLOAT="float"),
        )

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Route the runner's TensorRT and CUDA calls here."""
        from ernet.runtime.backends import gpu, trt

        monkeypatch.setitem(sys.modules, "tensorrt", self.tensorrt)
        monkeypatch.setattr(gpu, "Stream", self.Stream)
        monkeypatch.setattr(trt, "current_target", lambda: H100)


def test_native_runner_feeds_the_tiler_through_its_buffers(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a GPU: the runner around TensorRT (buffers, partial batches, profile, close)."""
    engine, _ = build_or_load_engine(
        tiny_onnx, _options(tmp_path), tmp_path / "m.plan", target=H100, build=FakeBuilder()
    )
    device = FakeDevice()
    device.install(monkeypatch)
    frame = np.random.default_rng(0).integers(0, 4000, (150, 130), dtype=np.uint16)  # 3 x 3 tiles of 64
    with Segmenter(None, engine=engine, warmup=False) as seg:
        assert seg.backend.description == f"tensorrt/{H100.tensorrt_version} {H100.gpu_name} (fp32)"
        assert device.batches == [1]  # the one-tile check of the model when it is opened
        labels = seg.segment(frame)
        tiled = device.batches[1:]
        assert sum(tiled) == 9 and min(tiled) < seg.batch  # a short batch too
        with pytest.raises(BackendError, match="outside the engine's profile"):
            seg.backend.run(np.zeros((5, 1, 64, 64), np.float32))
    normalised = seg.normalization.apply(frame)
    clear = np.abs(normalised - 0.5) > 1e-4  # away from the decision boundary's rounding
    np.testing.assert_array_equal(labels[clear], (normalised > 0.5)[clear])
    assert [s.closed for s in device.streams] == [True]
    with pytest.raises(BackendError, match="closed"):
        seg.backend.run(np.zeros((1, 1, 64, 64), np.float32))


def test_native_runner_releases_the_stream_when_opening_fails(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = build_or_load_engine(
        tiny_onnx, _options(tmp_path), tmp_path / "m.plan", target=H100, build=FakeBuilder()
    )
    device = FakeDevice(accept_address=False)
    device.install(monkeypatch)
    with pytest.raises(BackendError, match="refused the address of 'image'"):
        Segmenter(None, engine=engine)
    assert [s.closed for s in device.streams] == [True]


@pytest.mark.gpu
@pytest.mark.skipif(NO_TENSORRT is not None, reason=f"needs TensorRT and a GPU: {NO_TENSORRT}")
def test_native_engine_matches_onnx_runtime(tiny_onnx: Path, tmp_path: Path) -> None:
    """On a GPU: build a strongly typed engine, run the tiler on it, compare with the CPU."""
    frames = np.random.default_rng(0).integers(0, 255, (3, 150, 170), dtype=np.uint8)
    with Segmenter(tiny_onnx, provider="cpu") as cpu:
        expected = [cpu.segment(f) for f in frames]
    options = dict(provider="tensorrt", engine=tmp_path / "m.plan")
    with Segmenter(tiny_onnx, **options) as gpu:  # type: ignore[arg-type]
        assert gpu.backend.description.startswith("tensorrt/")
        got = [gpu.segment(f) for f in frames]
    agreement = np.mean([(a == b).mean() for a, b in zip(expected, got, strict=True)])
    assert agreement >= 0.999
    manifest = json.loads(manifest_path(tmp_path / "m.plan").read_text())
    assert manifest["key"]["precision"] == "fp32"
    with Segmenter(None, engine=tmp_path / "m.plan") as reloaded:  # the engine alone, from its manifest
        np.testing.assert_array_equal(reloaded.segment(frames[0]), got[0])


@pytest.mark.gpu
@pytest.mark.skipif(NO_TENSORRT is not None, reason=f"needs TensorRT and a GPU: {NO_TENSORRT}")
def test_fp16_engine_agrees_with_fp32_on_generated_frames(tmp_path: Path) -> None:
    """On a GPU: the fp16 graph runs in fp16 arithmetic, which the CPU check cannot do."""
    onnx = pytest.importorskip("onnx")
    from ernet.export.precision import to_fp16, variant_metadata, with_metadata
    from ernet.export.verify import MIN_FP16_AGREEMENT, generated_frames
    from ernet.runtime import DEFAULT_MODEL
    from ernet.runtime.backends import read_onnx_metadata
    from ernet.training.models.ernet import FP16_POLICY

    fp16 = tmp_path / "default.fp16.onnx"
    metadata = variant_metadata(read_onnx_metadata(DEFAULT_MODEL), "fp16", file_sha256(DEFAULT_MODEL))
    onnx.save(with_metadata(to_fp16(onnx.load(DEFAULT_MODEL), FP16_POLICY), metadata), fp16)
    data = generated_frames(range(9000, 9002))
    with (
        Segmenter(DEFAULT_MODEL, provider="cpu") as cpu,
        Segmenter(fp16, provider="tensorrt", engine=tmp_path / "default.fp16.plan") as gpu,
    ):
        assert "(fp16)" in gpu.backend.description
        agreement = np.mean([(cpu.segment(f) == gpu.segment(f)).mean() for f in data.frames])
    assert agreement >= MIN_FP16_AGREEMENT
