"""Providers told honestly, GPU options prepared without a GPU, threads, and a thread-safe API."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.backends import OnnxRuntimeBackend, physical_cores
from ernet.runtime.backends.ort import import_onnxruntime, provider_options, session_options, tensorrt_profile
from ernet.runtime.errors import BackendError
from ernet.runtime.tiling import TilePlan

from conftest import run_cli


def _cuda_runs(model: Path) -> bool:
    try:
        OnnxRuntimeBackend(RunSpec(model, "cuda"))
    except BackendError:
        return False
    return True


def test_explicit_provider_error_says_why_and_how_to_fix(tiny_onnx: Path) -> None:
    if _cuda_runs(tiny_onnx):
        pytest.skip("CUDA really runs here")
    with pytest.raises(BackendError) as info:
        OnnxRuntimeBackend(RunSpec(tiny_onnx, "cuda"))
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
    backend = OnnxRuntimeBackend(RunSpec(tiny_onnx, "cuda", fallback=True))
    assert backend.session is not None and backend.session.get_providers() == ["CPUExecutionProvider"]
    assert [name for name, _ in backend.fallbacks] == ["cuda"]


def test_tensorrt_options_fix_profiles_and_caches_by_model(tiny_onnx: Path, tmp_path: Path) -> None:
    assert tensorrt_profile(256, 4, 1) == {
        "trt_profile_min_shapes": "image:1x1x256x256",
        "trt_profile_opt_shapes": "image:4x1x256x256",
        "trt_profile_max_shapes": "image:4x1x256x256",
    }
    spec = RunSpec(tiny_onnx, "cpu", batch=3, fp16=True, cache_dir=tmp_path)
    backend = OnnxRuntimeBackend(spec)
    # the model's tile and overlap, the batch asked for; on the CPU tiles may grow
    assert backend.plan == TilePlan(64, 16, 3, max_pixels=backend.plan.max_pixels)
    assert backend.plan.max_pixels
    options = provider_options("ort-tensorrt", tiny_onnx, spec, backend.plan, channels=1)
    assert options["trt_profile_opt_shapes"] == "image:3x1x64x64"
    assert options["trt_fp16_enable"] == "True" and options["trt_engine_cache_enable"] == "True"
    cache = Path(options["trt_engine_cache_path"])
    assert cache.parent == tmp_path / "trt" and len(cache.name) == 16 and cache.is_dir()
    assert options["trt_engine_cache_prefix"] == f"ernet_{cache.name}"  # per model
    assert options["trt_timing_cache_path"] == str(cache)


def test_physical_cores_count_hyperthreads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four CPUs, two cores with two hyper-threads each, one CPU without topology."""
    for cpu, (package, core) in enumerate([(0, 0), (0, 0), (0, 1), (0, 1), (1, 0)]):
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    assert physical_cores(tmp_path) == 4  # cores (0,0), (0,1), (1,0), and cpu5 on its own
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert physical_cores(tmp_path) == 1  # this process may use only the two threads of one core


def test_threads_default_to_physical_cores() -> None:
    ort = import_onnxruntime()
    assert session_options(ort, RunSpec(threads=1)).intra_op_num_threads == 1
    assert session_options(ort, RunSpec()).intra_op_num_threads == physical_cores()


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


def test_every_provider_is_named_once_and_onnx_runtime_s_are_among_them() -> None:
    from ernet.runtime.backends import PROVIDER_CHOICES
    from ernet.runtime.backends.ort import ORT_PROVIDER_CHOICES

    assert PROVIDER_CHOICES == ("auto", "tensorrt", *ORT_PROVIDER_CHOICES[1:])


def test_auto_passes_over_providers_in_one_short_line(tiny_onnx: Path, tmp_path: Path) -> None:
    if _cuda_runs(tiny_onnx):
        pytest.skip("CUDA really runs here")
    frame = tmp_path / "f.tif"
    tifffile.imwrite(frame, np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8))
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "-o", tmp_path / "a")
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and notes[0].endswith("not available here (--verbose says why)"), notes
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "-o", tmp_path / "b", "--verbose")
    assert "note: provider cuda not used: " in done.stderr
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "-o", tmp_path / "c", "--provider", "cpu")
    assert "note:" not in done.stderr


def test_an_unwritable_cache_folder_rules_out_only_the_providers_that_need_it(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("ERNET_CACHE", str(tmp_path / "a-file" / "cache"))
    frame = tmp_path / "f.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint8))
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "-o", tmp_path / "out", "--verbose")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and (tmp_path / "out" / "f_mask.tif").is_file()
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        assert "note: provider ort-tensorrt not used: cannot create its cache under" in done.stderr
