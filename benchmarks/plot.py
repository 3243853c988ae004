"""The benchmark's picture: a panel for each part of the run that was measured."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ernet.runtime.io import atomic_output


def _mpix(frame: str) -> float:
    """Megapixels of a ``HEIGHTxWIDTH`` (or ``"HEIGHTxWIDTH uint16"``) frame."""
    h, w = (int(v) for v in frame.split()[0].split("x"))
    return h * w / 1e6


def _bars(ax: Any, labels: list[str], series: dict[str, list[float]]) -> None:
    """Groups of bars, one group per label and one bar per series."""
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, fontsize=8)
    if len(series) > 1:
        ax.legend(fontsize=8)


def _latency(ax: Any, result: dict[str, Any]) -> None:
    frames = result["frames"]
    _bars(
        ax,
        [f["frame"] for f in frames],
        {
            "Segmenter.segment": [_mpix(f["frame"]) / f["end_to_end"]["median_s"] for f in frames],
            "raw model, same tiles": [_mpix(f["frame"]) / f["model"]["median_s"] for f in frames],
        },
    )
    ax.set_ylabel("MPix/s (p50)")
    ax.set_title(f"One frame, {result['provider']}", fontsize=9)


def _infer(ax: Any, result: dict[str, Any]) -> None:
    labels, values = [], []
    if "cli" in result:
        labels.append(f"one {result['cli']['frame'].split()[0]} frame")
        values.append(_mpix(result["cli"]["frame"]) / result["cli"]["median_s"])
    for r in result.get("stacks") or []:
        labels.append(f"{r['frames']} x {r['frame']}")
        values.append(r["mpix_per_s"])
    _bars(ax, labels, {"ernet-infer": values})
    ax.set_ylabel("MPix/s")
    ax.set_title("Whole ernet-infer runs (start-up and IO included)", fontsize=9)


def _sweep(ax: Any, result: dict[str, Any]) -> None:
    sweep = result["sweep"]
    for batch in sorted({r["batch"] for r in sweep}):
        rows = [r for r in sweep if r["batch"] == batch]
        tiles, rates = [r["tile"] for r in rows], [r["mpix_per_s"] for r in rows]
        ax.plot(tiles, rates, marker="o", label=f"batch {batch}")
    ax.set_xlabel("tile size (px)")
    ax.set_ylabel("MPix/s")
    ax.set_title(f"ernet-infer, {sweep[0]['frames']} x {sweep[0]['frame']} stack", fontsize=9)
    ax.legend(fontsize=8)


def _analysis(ax: Any, result: dict[str, Any]) -> None:
    a = result["analysis"]
    stacks = a["stacks"]
    labels = [f"frame_metrics\none {a['mask']}", *(f"ernet-analyze\n{r['frames']} x 256x256" for r in stacks)]
    values = [1 / a["frame"]["median_s"], *(r["frames_per_s"] for r in stacks)]
    _bars(ax, labels, {"network analysis": values})
    ax.set_ylabel("frames/s")
    ax.set_title("Network analysis", fontsize=9)


def _comparison(ax: Any, result: dict[str, Any]) -> None:
    labels: list[str] = []
    series: dict[str, list[float]] = {
        "ONNX Runtime, default tiling": [],
        "ONNX Runtime, training-crop tiles": [],
        "ONNX Runtime int8, training-crop tiles": [],
        "PyTorch original": [],
    }
    keys = ("onnx_default", "onnx_crop", "onnx_crop_int8", "torch_original")
    for model in result["comparison"]["models"]:
        for frame in model["frames"]:
            labels.append(f"{model['model']}\n{frame['frame']}")
            for name, key in zip(series, keys, strict=True):
                series[name].append(_mpix(frame["frame"]) / frame[key]["median_s"])
    _bars(ax, labels, series)
    ax.set_yscale("log")
    ax.set_ylabel("MPix/s (log)")
    ax.set_title("End to end, CPU", fontsize=9)


#: Each panel and whether the result has what it draws.
PANELS: tuple[tuple[Callable[[Any, dict[str, Any]], None], Callable[[dict[str, Any]], bool]], ...] = (
    (_latency, lambda r: bool(r.get("frames"))),
    (_infer, lambda r: "cli" in r or bool(r.get("stacks"))),
    (_sweep, lambda r: bool(r.get("sweep"))),
    (_analysis, lambda r: "analysis" in r),
    (_comparison, lambda r: bool((r.get("comparison") or {}).get("models"))),
)


def plot_results(result: dict[str, Any], path: Path) -> None:
    """PNG of what ``result`` measured, a panel each: single-frame latency against the raw
    model, whole ernet-infer runs, the tile/batch sweep, the network analysis and the
    comparison with PyTorch; written atomically (needs matplotlib, ``bench`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [draw for draw, present in PANELS if present(result)]
    cols = min(len(panels), 2) or 1
    rows = max(math.ceil(len(panels) / cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.5 * rows), dpi=110, squeeze=False)
    try:
        cells = list(axes.flat)
        for draw, ax in zip(panels, cells, strict=False):
            draw(ax, result)
        for ax in cells[len(panels) :]:
            ax.set_axis_off()
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
