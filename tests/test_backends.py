"""Providers told honestly, GPU options prepared without a GPU, threads, and a thread-safe API."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ernet.runtime import Segmenter
from ernet.runtime.backends import BackendOptions, OnnxRuntimeBackend, physical_cores
from ernet.runtime.backends.onnxruntime import _import_onnxruntime, tensorrt_profile
from ernet.runtime.errors import BackendError

from conftest import run_cli


def _cuda_runs(model: Path) -> bool:
    try:
        OnnxRuntimeBackend(model, BackendOptions("cuda"))
    except BackendError:
        return False
    return True


def test_explicit_provider_error_says_why_and_how_to_fix(tiny_onnx: Path) -> None:
    if _cuda_runs(tiny_onnx):
        pytest.skip("CUDA really runs here")
    with pytest.raises(BackendError) as info:
        OnnxRuntimeBackend(tiny_onnx, BackendOptions("cuda"))
    message = str(info.value)
    assert "cannot run here" in message and "to fix: install" in message and "--fallback" in message


def test_fallback_runs_on_the_next_provider_and_says_so(tiny_onnx: Path, tmp_path: Path) -> None:
    if _cuda_runs(tiny_onnx):
        pytest.skip("CUDA really runs here")
    frame = tmp_path / "f.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint8))
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "--provider", "cuda", "--fallback")
    assert done.returncode == 0, done.stderr
    assert "note: provider cuda not used" in done.stderr
    assert "onnxruntime/CPUExecutionProvider" in done.stdout  # the provider that really ran
    backend = OnnxRuntimeBackend(tiny_onnx, BackendOptions("cuda", fallback=True))
    assert backend.session is not None and backend.session.get_providers() == ["CPUExecutionProvider"]
    assert [name for name, _ in backend.fallbacks] == ["cuda"]


def test_tensorrt_options_fix_profiles_and_caches_by_model(tiny_onnx: Path, tmp_path: Path) -> None:
    assert tensorrt_profile(256, 4, 1) == {
        "trt_profile_min_shapes": "image:1x1x256x256",
        "trt_profile_opt_shapes": "image:4x1x256x256",
        "trt_profile_max_shapes": "image:4x1x256x256",
    }
    backend = OnnxRuntimeBackend(tiny_onnx, BackendOptions("cpu", batch=3, fp16=True, cache_dir=tmp_path))
    _, options = backend._session_options(_import_onnxruntime(), "ort-tensorrt")
    assert options["trt_profile_opt_shapes"] == "image:3x1x64x64"  # the model's tile, the batch asked for
    assert options["trt_fp16_enable"] == "True" and options["trt_engine_cache_enable"] == "True"
    cache = Path(options["trt_engine_cache_path"])
    assert cache.parent == tmp_path / "trt" and len(cache.name) == 16 and cache.is_dir()
    assert options["trt_engine_cache_prefix"] == f"ernet_{cache.name}"  # per model
    assert options["trt_timing_cache_path"] == str(cache)


def test_threads_default_to_physical_cores(tiny_onnx: Path) -> None:
    cores = physical_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    backend = OnnxRuntimeBackend(tiny_onnx, BackendOptions("cpu", threads=1))
    session_options, _ = backend._session_options(_import_onnxruntime(), "cpu")
    assert session_options.intra_op_num_threads == 1
    default, _ = OnnxRuntimeBackend(tiny_onnx)._session_options(_import_onnxruntime(), "cpu")
    assert default.intra_op_num_threads == cores


def test_one_segmenter_shared_by_threads(tiny_onnx: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 4000, (8, 100, 130), dtype=np.uint16)
    seg = Segmenter(tiny_onnx, provider="cpu")
    expected = [seg.segment(f) for f in frames]
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        got[i] = seg.segment(frames[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, labels in enumerate(expected):
        np.testing.assert_array_equal(got[i], labels)
    seg.close()
    with pytest.raises(BackendError, match="closed"):
        seg.segment(frames[0])
