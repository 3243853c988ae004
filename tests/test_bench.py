"""ernet-bench: runs, reports medians and the overhead against the raw model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_OPTIONS, run_cli


def test_bench_cli_writes_results(tiny_onnx: Path, tmp_path: Path) -> None:
    done = run_cli(
        "ernet-bench",
        "--model",
        tiny_onnx,
        "--provider",
        "cpu",
        "--sizes",
        "64x80,100x90",
        "--repeats",
        "2",
        "--stacks",
        "3x64x80,6x64x80",
        "--analysis-stacks",
        "3",
        "--sweep-tiles",
        "32,64",
        "--sweep-stack",
        "3x64x80",
        "--sweep-batches",
        "1,2",
        "--no-published",
        "--live-rates",
        "50",
        "--live-frames",
        "4",
        "--live-size",
        "64x80",
        "--cluster-stack",
        "4x64x80",
        "--out",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("ernet-bench: ")]
    assert len(progress) == 7 and "PyTorch comparison" in progress[-1]  # one line per stage
    cluster = json.loads((tmp_path / "results.json").read_text())["cluster"]
    assert [r["mode"] for r in cluster["rows"]] == ["one process", "local:1", "local:1", "local:2"]
    assert cluster["labels_identical"] and cluster["overhead"] is not None
    assert "Segmentation on a Dask cluster" in (tmp_path / "results.md").read_text()
    (live,) = json.loads((tmp_path / "results.json").read_text())["live"]["rows"]
    assert live["received"] == 4 and live["segmented"] + live["dropped"] == 4
    assert "Live segmentation in pymmcore-plus MDAs" in (tmp_path / "results.md").read_text()
    result = json.loads((tmp_path / "results.json").read_text())
    assert [f["frame"] for f in result["frames"]] == ["64x80", "100x90"]
    for frame in result["frames"]:
        assert frame["end_to_end"]["min_s"] <= frame["end_to_end"]["median_s"] <= frame["end_to_end"]["max_s"]
        assert frame["model"]["median_s"] > 0 and frame["mpix_per_s"] > 0
    assert result["cli"]["frame"] == "100x90 uint16" and result["cli"]["median_s"] > 0
    assert result["machine"]["cores"] >= 1 and "onnxruntime" in result["machine"]
    assert "| 64x80 |" in (tmp_path / "results.md").read_text()
    first, second = result["stacks"]
    assert (first["frames"], second["frames"]) == (3, 6)
    assert second["peak_rss_mb"] > 10 and second["raw_model_s"] > 0 and second["frames_per_s"] > 0
    assert [(r["tile"], r["batch"]) for r in result["sweep"]] == [(32, 1), (32, 2), (64, 1), (64, 2)]
    assert all(r["frames"] == 3 and r["peak_rss_mb"] > 10 for r in result["sweep"])
    from ernet.training.models.ernet import ERNetConfig

    (model,) = result["comparison"]["models"]
    assert model["model"] == "F8 G2 B2 r4"
    assert model["flops_per_pixel"] == ERNetConfig(**TINY_OPTIONS).flops_per_pixel and 0 < model["efficiency"]
    assert [f["frame"] for f in model["frames"]] == ["64x80", "100x90"]
    assert model["frames"][0]["speedup_onnx_default"] > 0 and model["frames"][0]["int8_over_fp32"] > 0
    assert model["frames"][0]["default_tiling"].startswith("tile 80,")  # the 64x80 frame, whole
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
    analysis = result["analysis"]
    assert analysis["frame"]["median_s"] > 0 and analysis["stacks"][0]["frames"] == 3


def test_reduced_run_still_draws_what_it_measured(tiny_onnx: Path, tmp_path: Path) -> None:
    done = run_cli(
        "ernet-bench",
        *("--model", tiny_onnx, "--provider", "cpu", "--sizes", "64x80", "--repeats", "1"),
        *("--stacks", "", "--analysis-stacks", "", "--sweep-tiles", "", "--no-cli", "--no-compare"),
        *("--live-rates", "", "--out", tmp_path),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "results.json").read_text())
    assert "sweep" not in result and "live" not in result
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_provider_choices_are_listed_and_checked() -> None:
    from ernet.runtime.backends import PROVIDER_CHOICES

    done = run_cli("ernet-bench", "--help")
    assert done.returncode == 0 and f"<{'|'.join(PROVIDER_CHOICES)}>" in done.stdout
    done = run_cli("ernet-bench", "--provider", "gpu")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("error: Invalid value for '--provider'") and "ort-tensorrt" in done.stderr


@pytest.mark.parametrize("missing", ["matplotlib"])
def test_missing_bench_extra_is_one_error_line(missing: str) -> None:
    code = (
        f"import sys; sys.modules[{missing!r}] = None; from ernet.benchmarks.cli import main; "
        "sys.argv = ['ernet-bench', '--provider', 'cpu', '--sizes', '64x64', '--repeats', '1']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: ernet-bench needs the 'bench' extra ({missing} is not installed): pip install 'ernet[bench]'"
    ]
    assert done.stdout == ""  # nothing measured


def test_flops_are_counted_from_the_onnx_graph(tiny_onnx: Path) -> None:
    from ernet.benchmarks.ceiling import onnx_flops_per_pixel
    from ernet.training.models.ernet import ERNetConfig

    # The attention branch's 1x1 convolutions run on pooled vectors: not per pixel.
    assert onnx_flops_per_pixel(tiny_onnx) == ERNetConfig(**TINY_OPTIONS).flops_per_pixel


def test_gemm_rate_is_in_gflops() -> None:
    from ernet.benchmarks.ceiling import gemm_gflops

    # One core of any machine this runs on does 1-5000 GFLOP/s in fp32, even shared with
    # other work; a wrong FLOP count (n**2 instead of 2 n**3) or a rate in FLOP/s falls far
    # outside. No comparison with a second timing: it would depend on the load.
    assert 1 < gemm_gflops(threads=1, n=384, repeats=5) < 5000


def test_original_method_matches_onnx_on_the_same_weights(
    tiny_checkpoint: Path, tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    import ernet.benchmarks.reference as reference
    from ernet.runtime import Segmenter

    frame = np.random.default_rng(0).integers(0, 4000, (64, 64), dtype=np.uint16)
    original = reference.torch_original(tiny_checkpoint, threads=1)
    whole = Segmenter(tiny_onnx, provider="cpu", tile=64)  # one tile: whole-frame inference
    assert (original(frame) == whole.segment(frame)).mean() > 0.999
    large = np.random.default_rng(1).integers(0, 4000, (150, 170), dtype=np.uint16)
    monkeypatch.setattr(reference, "QUADRANT_ABOVE", 100 * 100)  # this frame now goes as four quadrants
    labels = original(large)
    assert labels.shape == large.shape and set(np.unique(labels)) <= {0, 1}
    assert (labels == whole.segment(large)).mean() > 0.8  # close to tiled ONNX, not equal


def test_speckle_counts_pieces_far_from_the_labels_and_size_filters_drop_small_ones() -> None:
    from ernet.benchmarks.speckle import speckle
    from ernet.runtime.postprocess import without_small_pieces as without_small_objects

    truth = np.zeros((100, 100), bool)
    truth[10:20, 10:60] = True
    prediction = truth.copy()
    prediction[80:83, 80:83] = True  # 9 px, 60 px away from the labels
    prediction[22:24, 30:32] = True  # 4 px, 2 px away: near
    assert speckle(prediction, truth, 20) == (1, 9 / prediction.sum())
    kept = without_small_objects(prediction, 10)
    assert kept.sum() == truth.sum() and speckle(kept, truth, 20) == (0, 0.0)
    assert np.array_equal(without_small_objects(prediction, 0), prediction)


def test_the_empty_frames_hold_no_structure() -> None:
    from ernet.benchmarks.background import empty_frames

    frames = empty_frames(side=64)
    assert len(frames) == 6 and all(f.shape == (64, 64) for f in frames.values())
    assert frames["constant"].std() == 0 and frames["Poisson 100"].mean() == pytest.approx(100, rel=0.05)


def test_seams_are_measured_in_tiles_of_the_training_crop(tiny_onnx: Path) -> None:
    from ernet.benchmarks.seams import tiled_spec
    from ernet.runtime import Segmenter

    with Segmenter(tiled_spec(tiny_onnx, None)) as seg:
        assert seg.tile == 64 and len(seg.grid(200, 300)) > 1
    assert tiled_spec(tiny_onnx, 96).tile == 96
