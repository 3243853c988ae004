"""``ernet-bench``: latency and throughput of the runtime on this machine.

Measures, in one run, the embeddable API end to end (normalise, tile, run,
stitch, argmax) against the raw model on the same tiles, so the overhead ratio
holds on a noisy machine. Warm-up excluded; medians and spread reported.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ernet.runtime import Segmenter, __version__
from ernet.runtime.errors import ErnetError
from ernet.runtime.io import atomic_output
from ernet.runtime.tiling import TileGrid

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def timings(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(seconds: list[float]) -> dict[str, float]:
    """Median, p95 and spread of a list of timings."""
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median_s": statistics.median(ordered), "p95_s": p95, "min_s": ordered[0], "max_s": ordered[-1]}


def machine() -> dict[str, Any]:
    """CPU model, cores and library versions, recorded with every result."""
    import onnxruntime

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ernet": __version__,
        "platform": platform.platform(),
    }


def uint16_frame(height: int, width: int) -> np.ndarray:
    """A uint16 frame (the costlier input type: converted to float32 before use)."""
    return np.random.default_rng(0).integers(0, 4096, (height, width), dtype=np.uint16)


def bench_frame(seg: Segmenter, height: int, width: int, repeats: int) -> dict[str, Any]:
    """End-to-end ``segment`` latency vs the raw model on the same tiles."""
    frame = uint16_frame(height, width)
    grid = TileGrid.plan(height, width, seg.tile, seg.overlap)
    tiles = np.zeros((len(grid), seg.metadata.config.in_channels, seg.tile, seg.tile), np.float32)

    def raw() -> None:
        for first in range(0, len(tiles), seg.batch):
            seg.backend.run(tiles[first : first + seg.batch])

    end_to_end = summary(timings(lambda: seg.segment(frame), repeats))
    model = summary(timings(raw, repeats))
    mpix = height * width / 1e6
    return {
        "frame": f"{height}x{width}",
        "tiles": len(grid),
        "end_to_end": end_to_end,
        "model": model,
        "mpix_per_s": mpix / end_to_end["median_s"],
        "overhead": end_to_end["median_s"] / model["median_s"] - 1,
    }


def bench_cli(model: Path, provider: str, height: int, width: int, repeats: int) -> dict[str, Any]:
    """Wall time of whole ``ernet-infer`` runs (start-up, model load, IO) on one frame."""
    import tifffile

    command = Path(sys.executable).parent / "ernet-infer"
    with tempfile.TemporaryDirectory() as tmp:
        frame = Path(tmp) / "frame.tif"
        tifffile.imwrite(frame, uint16_frame(height, width))
        args = [str(command), str(frame), "--model", str(model), "--provider", provider, "--overwrite", "-q"]
        seconds = timings(lambda: subprocess.run(args, check=True, capture_output=True), repeats)
    return {"frame": f"{height}x{width} uint16", **summary(seconds)}


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown table with the machine description."""
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}; "
        f"provider {result['provider']}; tile {result['tile']}, overlap {result['overlap']}, "
        f"batch {result['batch']}; {result['repeats']} repeats after warm-up.",
        "",
        "| frame | tiles | end-to-end median (p95) s | model median s | MPix/s | overhead vs model |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["frames"]:
        e, mo = r["end_to_end"], r["model"]
        lines.append(
            f"| {r['frame']} | {r['tiles']} | {e['median_s']:.3f} ({e['p95_s']:.3f}) | "
            f"{mo['median_s']:.3f} | {r['mpix_per_s']:.2f} | {r['overhead']:+.1%} |"
        )
    if "cli" in result:
        c = result["cli"]
        lines += [
            "",
            f"`ernet-infer` on one {c['frame']} frame, whole process: median {c['median_s']:.2f} s "
            f"(p95 {c['p95_s']:.2f} s, min {c['min_s']:.2f} s, max {c['max_s']:.2f} s).",
        ]
    return "\n".join(lines) + "\n"


@app.command()
def bench(
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="ERNet ONNX model; default: the embedded one.")
    ] = None,
    provider: Annotated[str, typer.Option(help="auto|cpu|cuda|tensorrt")] = "auto",
    sizes: Annotated[str, typer.Option(help="Comma-separated HEIGHTxWIDTH frames.")] = "512x512,1040x1392",
    tile: Annotated[int | None, typer.Option(help="Tile size; default: the model's.")] = None,
    batch: int = 4,
    repeats: int = 5,
    cli: Annotated[bool, typer.Option(help="Also time whole ernet-infer runs on the largest frame.")] = True,
    out: Annotated[Path | None, typer.Option(help="Folder for results.json and results.md.")] = None,
) -> None:
    """Time single-frame segmentation through the embeddable API and through ernet-infer."""
    try:
        seg = Segmenter(model, provider=provider, tile=tile, batch=batch)
        shapes = [tuple(int(v) for v in s.lower().split("x")) for s in sizes.split(",")]
    except (ErnetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    result = {
        "machine": machine(),
        "model": str(seg.model_path),
        "provider": seg.backend.description,
        "tile": seg.tile,
        "overlap": seg.overlap,
        "batch": seg.batch,
        "repeats": repeats,
        "frames": [bench_frame(seg, h, w, repeats) for h, w in shapes],
    }
    if cli and seg.model_path is not None:
        height, width = max(shapes, key=lambda hw: hw[0] * hw[1])
        result["cli"] = bench_cli(seg.model_path, provider, height, width, repeats)
    table = markdown(result)
    print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_output(out / "results.json") as tmp:
            tmp.write_text(json.dumps(result, indent=2))
        with atomic_output(out / "results.md") as tmp:
            tmp.write_text(table)


def main() -> None:
    """Entry point of ``ernet-bench``."""
    app()
