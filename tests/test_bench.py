"""ernet-bench: runs, reports medians and the overhead against the raw model."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


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
        "--out",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
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
    analysis = result["analysis"]
    assert analysis["frame"]["median_s"] > 0 and analysis["stacks"][0]["frames"] == 3
