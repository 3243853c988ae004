"""The benchmark's picture: throughput by backend, and by tile and batch size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ernet.runtime.io import atomic_output


def plot_results(result: dict[str, Any], path: Path) -> None:
    """PNG with MPix/s per backend (the comparison) and per tile/batch (the sweep);
    nothing is written when matplotlib is missing or there is nothing to draw."""
    comparison, sweep = result.get("comparison") or {}, result.get("sweep") or []
    if not (comparison or sweep):
        return
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    try:
        labels: list[str] = []
        series: dict[str, list[float]] = {
            "ONNX Runtime, tiled": [],
            "ONNX Runtime int8, tiled": [],
            "ONNX Runtime, one tile": [],
            "PyTorch original": [],
        }
        keys = ("onnx_tiled", "onnx_tiled_int8", "onnx_whole", "torch_original")
        for model in comparison.get("models", []):
            for frame in model["frames"]:
                h, w = (int(v) for v in frame["frame"].split("x"))
                labels.append(f"{model['model']}\n{frame['frame']}")
                for name, key in zip(series, keys, strict=True):
                    series[name].append(h * w / 1e6 / frame[key]["median_s"])
        width = 0.8 / len(series)
        for i, (name, values) in enumerate(series.items()):
            left.bar([x + i * width for x in range(len(labels))], values, width, label=name)
        left.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, fontsize=8)
        left.set_yscale("log")
        left.set_ylabel("MPix/s (log)")
        left.set_title("End to end, CPU")
        left.legend(fontsize=8)
        for batch in sorted({r["batch"] for r in sweep}):
            rows = [r for r in sweep if r["batch"] == batch]
            right.plot(
                [r["tile"] for r in rows], [r["mpix_per_s"] for r in rows], marker="o", label=f"batch {batch}"
            )
        right.set_xlabel("tile size (px)")
        right.set_ylabel("MPix/s")
        stack = sweep[0] if sweep else {}
        right.set_title(f"ernet-infer, {stack.get('frames')} x {stack.get('frame')} stack", fontsize=9)
        if sweep:
            right.legend(fontsize=8)
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
