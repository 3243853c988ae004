"""``ernet-bench``: latency and throughput of the runtime on this machine.

Measures, in one run, the embeddable API end to end (normalise, tile, run,
stitch, argmax) against the raw model on the same tiles, so the overhead ratio
holds on a noisy machine. Warm-up excluded; medians and spread reported.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.analysis import require_analysis_libraries
from ernet.runtime.backends import Provider
from ernet.runtime.cli.policy import EXTRAS, TILE_HELP, command, typer_app
from ernet.runtime.io import atomic_output

from .acquisition import RATES as LIVE_RATES
from .acquisition import bench_live, live_markdown
from .cluster import ROUNDS, bench_cluster, cluster_markdown
from .cluster import STACK as CLUSTER_STACK
from .comparison import RATE_TILE
from .measure import machine, run_measured, summary, timings, uint16_frame
from .plot import plot_results

app = typer_app(extra="bench")


def require_bench_libraries() -> None:
    """Import what the ``bench`` extra brings before measuring anything: a missing one
    raises ModuleNotFoundError, which the command reports as the extra to install."""
    for name in EXTRAS["bench"]:  # scipy (the generated masks), matplotlib (results.png)
        importlib.import_module(name)


def frame_batches(seg: Segmenter, frame: np.ndarray) -> list[np.ndarray]:
    """The model inputs ``seg`` makes of ``frame``: its normalised tiles, in batches."""
    return [batch for _, batch in seg.tile_batches(seg.prepare(frame))]


def bench_frame(seg: Segmenter, height: int, width: int, repeats: int) -> dict[str, Any]:
    """End-to-end ``segment`` latency vs the raw model on the same tiles."""
    frame = uint16_frame(height, width)
    grid = seg.grid(height, width)
    batches = frame_batches(seg, frame)

    def raw() -> None:
        for batch in batches:
            seg.run_model(batch)

    end_to_end = summary(timings(lambda: seg.segment(frame), repeats))
    model = summary(timings(raw, repeats))
    mpix = height * width / 1e6
    return {
        "frame": f"{height}x{width}",
        "tiles": len(grid),
        "tile": grid.tile,
        "end_to_end": end_to_end,
        "model": model,
        "mpix_per_s": mpix / end_to_end["median_s"],
        "overhead": end_to_end["median_s"] / model["median_s"] - 1,
    }


def bench_cli(model: Path, provider: Provider, height: int, width: int, repeats: int) -> dict[str, Any]:
    """Wall time of whole ``ernet-infer`` runs (start-up, model load, IO) on one frame."""
    import tifffile

    command = Path(sys.executable).parent / "ernet-infer"
    with tempfile.TemporaryDirectory() as tmp:
        frame = Path(tmp) / "frame.tif"
        tifffile.imwrite(frame, uint16_frame(height, width))
        args = [str(command), str(frame), "--model", str(model), "--provider", provider, "--overwrite", "-q"]
        seconds = timings(lambda: subprocess.run(args, check=True, capture_output=True), repeats)
    return {"frame": f"{height}x{width} uint16", **summary(seconds)}


def bench_stack(seg: Segmenter, provider: Provider, frames: int, height: int, width: int) -> dict[str, Any]:
    """A whole ``ernet-infer`` run on a uint16 stack: frames/s, peak RSS, and its time
    against the raw model run on the same tiles for as many frames."""
    import tifffile

    assert seg.model_path is not None
    frame = uint16_frame(height, width)
    batches = frame_batches(seg, frame)
    start = time.perf_counter()  # the raw model on every frame's tiles: sustained, not extrapolated
    for _ in range(frames):
        for batch in batches:
            seg.run_model(batch)
    raw = time.perf_counter() - start
    command = Path(sys.executable).parent / "ernet-infer"
    with tempfile.TemporaryDirectory() as tmp:
        stack = Path(tmp) / "stack.tif"
        with tifffile.TiffWriter(stack, imagej=True) as tif:  # written page by page: any length
            tif.write(
                iter(frame for _ in range(frames)),
                shape=(frames, height, width),
                dtype=frame.dtype,
                metadata={"axes": "TYX"},
            )
        args = [str(command), str(stack), "--model", str(seg.model_path), "--provider", provider, "-q"]
        args += ["--tile", str(seg.tile), "--overlap", str(seg.overlap), "--batch", str(seg.batch)]
        seconds, rss = run_measured(args)
    mpix = frames * height * width / 1e6
    return {
        "frames": frames,
        "frame": f"{height}x{width}",
        "tile": seg.tile,
        "batch": seg.batch,
        "seconds": seconds,
        "frames_per_s": frames / seconds,
        "mpix_per_s": mpix / seconds,
        "peak_rss_mb": rss / 2**20,
        "raw_model_s": raw,
        "overhead": seconds / raw - 1,
    }


def bench_analysis(stacks: list[int], repeats: int) -> dict[str, Any]:
    """Network analysis: seconds per generated 1040 x 1392 mask, and whole ``ernet-analyze``
    runs on 256 x 256 mask stacks of each length in ``stacks`` with their peak RSS."""
    import tifffile

    from ernet.runtime.analysis import frame_metrics
    from ernet.training.synthetic import SyntheticConfig, generate_stack

    large = generate_stack(1, 0, SyntheticConfig(height=1040, width=1392))[0].mask
    small = [f.mask for f in generate_stack(8, 0, SyntheticConfig(height=256, width=256))]
    result: dict[str, Any] = {
        "mask": "1040x1392",
        "frame": summary(timings(lambda: frame_metrics(large), repeats, warmup=2)),
        "stacks": [],
    }
    command = Path(sys.executable).parent / "ernet-analyze"
    with tempfile.TemporaryDirectory() as tmp:
        for frames in stacks:
            path = Path(tmp) / f"masks{frames}.tif"
            with tifffile.TiffWriter(path, imagej=True) as tif:
                tif.write(
                    iter(small[i % len(small)] for i in range(frames)),
                    shape=(frames, 256, 256),
                    dtype=np.uint8,
                    metadata={"axes": "TYX"},
                )
            seconds, rss = run_measured([str(command), str(path), "-q"])
            result["stacks"].append(
                {
                    "frames": frames,
                    "seconds": seconds,
                    "frames_per_s": frames / seconds,
                    "peak_rss_mb": rss / 2**20,
                }
            )
    return result


def _stage(text: str) -> None:
    """One progress line on stderr: the whole run takes minutes, its stages seconds to minutes."""
    print(f"ernet-bench: {text}", file=sys.stderr, flush=True)


def parse_size(text: str) -> tuple[int, ...]:
    """``"1040x1392"`` -> ``(1040, 1392)``; ``"50x512x512"`` -> ``(50, 512, 512)``."""
    return tuple(int(v) for v in text.lower().split("x"))


def bench_sweep(
    spec: RunSpec, stack: tuple[int, int, int], tiles: list[int], batches: list[int]
) -> list[dict[str, Any]]:
    """A stack through ``ernet-infer`` (see :func:`bench_stack`) for each tile and batch size."""
    frames, height, width = stack
    rows = []
    for tile in tiles:
        for batch in batches:
            seg = Segmenter(replace(spec, tile=tile, overlap=None, batch=batch))
            rows.append(bench_stack(seg, spec.provider, frames, height, width))
    return rows


def bench_comparison(
    seg: Segmenter, shapes: list[tuple[int, int]], repeats: int, published: bool
) -> dict[str, Any]:
    """The model's configuration (and the published one) against PyTorch eager and the
    GEMM ceiling; skipped with a note where torch or onnx is missing."""
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        print(f"note: no PyTorch comparison: {exc.name} is not installed", file=sys.stderr)
        return {}
    from ernet.training.models.ernet import ERNetConfig

    from .ceiling import gemm_gflops
    from .comparison import compare

    per_core = gemm_gflops(threads=1)
    models = [compare(seg.metadata.architecture, seg.contract, shapes, repeats, per_core)]
    if published:
        models.append(compare(ERNetConfig().architecture(), seg.contract, shapes, 1, per_core))
    return {"gemm_gflops_per_core": per_core, "models": models}


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown table with the machine description."""
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}; "
        f"provider {result['provider']}; {result['tiling']}; {result['repeats']} repeats after warm-up.",
        "",
        "Latency of `Segmenter.segment` on one uint16 frame, against the raw model on the same tiles:",
        "",
        "| frame | tiles x side | p50 s | p95 s | p99 s | raw model p50 s | MPix/s | overhead vs model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["frames"]:
        e, mo = r["end_to_end"], r["model"]
        lines.append(
            f"| {r['frame']} | {r['tiles']} x {r['tile']} | {e['median_s']:.3f} | {e['p95_s']:.3f} | "
            f"{e['p99_s']:.3f} | {mo['median_s']:.3f} | {r['mpix_per_s']:.2f} | {r['overhead']:+.1%} |"
        )
    if result.get("stacks"):
        lines += [
            "",
            "Whole `ernet-infer` runs on uint16 TYX stacks (process start, model load, reading, "
            "writing included), against the raw model on the same tiles:",
            "",
            "| frames | frame | seconds | frames/s | MPix/s | peak RSS MiB | raw model s | overhead |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in result["stacks"]:
            lines.append(
                f"| {r['frames']} | {r['frame']} | {r['seconds']:.1f} | {r['frames_per_s']:.2f} | "
                f"{r['mpix_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['raw_model_s']:.1f} | "
                f"{r['overhead']:+.1%} |"
            )
    if "analysis" in result:
        a = result["analysis"]
        f = a["frame"]
        lines += [
            "",
            f"Network analysis (`frame_metrics`) of one generated {a['mask']} mask: "
            f"p50 {f['median_s']:.3f} s, "
            f"p95 {f['p95_s']:.3f} s. Whole `ernet-analyze` runs on 256x256 mask stacks:",
            "",
            "| frames | seconds | frames/s | peak RSS MiB |",
            "|---|---|---|---|",
            *(
                f"| {r['frames']} | {r['seconds']:.1f} | {r['frames_per_s']:.1f} | {r['peak_rss_mb']:.0f} |"
                for r in a["stacks"]
            ),
        ]
    if result.get("sweep"):
        lines += [
            "",
            "Tile and batch sizes (whole `ernet-infer` runs, as above):",
            "",
            "| frames | frame | tile | batch | seconds | frames/s | MPix/s | peak RSS MiB | overhead |",
            "|---|---|---|---|---|---|---|---|---|",
            *(
                f"| {r['frames']} | {r['frame']} | {r['tile']} | {r['batch']} | {r['seconds']:.1f} | "
                f"{r['frames_per_s']:.2f} | {r['mpix_per_s']:.2f} | {r['peak_rss_mb']:.0f} | "
                f"{r['overhead']:+.1%} |"
                for r in result["sweep"]
            ),
        ]
    if result.get("live"):
        lines += live_markdown(result["live"])
    if result.get("cluster"):
        lines += cluster_markdown(result["cluster"])
    if result.get("comparison"):
        c = result["comparison"]
        lines += [
            "",
            f"Against PyTorch eager, run as the original tool does (whole frames, four quadrants above "
            f"1 MPix; same random weights), and the ceiling: fp32 GEMM "
            f"{c['gemm_gflops_per_core']:.0f} GFLOP/s "
            "on one thread x threads used. GFLOP/s count the ONNX graph's convolutions directly (2 x "
            "multiply-adds); ONNX Runtime's Winograd convolutions need fewer, so efficiency can pass 1.",
            "",
            f"Default: how `ernet-infer` tiles by default (after: whole frames on the CPU where memory "
            f"allows); crop: tiles of the {RATE_TILE}-px training crop, overlap a quarter (before).",
            "",
            "| model | frame | default tiling | ONNX default s | ONNX crop s | ONNX int8 crop s | "
            "PyTorch original s | speed-up default | speed-up crop | int8 / fp32 crop |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in c["models"]:
            for f in m["frames"]:
                lines.append(
                    f"| {m['model']} | {f['frame']} | {f['default_tiling']} | "
                    f"{f['onnx_default']['median_s']:.3f} | {f['onnx_crop']['median_s']:.3f} | "
                    f"{f['onnx_crop_int8']['median_s']:.3f} | {f['torch_original']['median_s']:.3f} | "
                    f"{f['speedup_onnx_default']:.2f}x | {f['speedup_onnx_crop']:.2f}x | "
                    f"{f['int8_over_fp32']:.2f}x |"
                )
        lines += [
            "",
            "| model | MFLOP/px | threads | achieved GFLOP/s | ceiling GFLOP/s | efficiency |",
            "|---|---|---|---|---|---|",
        ]
        for m in c["models"]:
            lines.append(
                f"| {m['model']} | {m['flops_per_pixel'] / 1e6:.3f} | {m['threads']} | "
                f"{m['achieved_gflops']:.0f} | "
                f"{m['ceiling_gflops']:.0f} | {m['efficiency']:.2f} |"
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
@command
def bench(
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="ERNet ONNX model; default: the embedded one.")
    ] = None,
    provider: Annotated[
        Provider, typer.Option(help="Execution provider; auto: the fastest that starts here.")
    ] = "auto",
    sizes: Annotated[str, typer.Option(help="Comma-separated HEIGHTxWIDTH frames.")] = "512x512,1040x1392",
    tile: Annotated[int | None, typer.Option(min=1, help=TILE_HELP)] = None,
    batch: Annotated[int, typer.Option(help="Tiles per model call.")] = 4,
    repeats: Annotated[int, typer.Option(help="Timed repetitions per frame size.")] = 30,
    stacks: Annotated[
        str,
        typer.Option(help="Comma-separated FRAMESxHEIGHTxWIDTH stacks through ernet-infer ('' for none)."),
    ] = "50x1040x1392,100x256x256,2000x256x256",
    analysis_stacks: Annotated[
        str,
        typer.Option(help="Comma-separated frame counts of mask stacks through ernet-analyze ('' for none)."),
    ] = "100,2000",
    cli: Annotated[bool, typer.Option(help="Also time whole ernet-infer runs on the largest frame.")] = True,
    sweep_tiles: Annotated[str, typer.Option(help="Tile sizes to sweep ('' for none).")] = "128,256,512",
    sweep_stack: Annotated[
        str, typer.Option(help="FRAMESxHEIGHTxWIDTH stack through ernet-infer for each tile and batch.")
    ] = "50x512x512",
    sweep_batches: Annotated[str, typer.Option(help="Batch sizes to sweep with each tile size.")] = "1,4",
    compare: Annotated[
        bool, typer.Option(help="PyTorch-eager original method and the GEMM ceiling (needs torch, onnx).")
    ] = True,
    published: Annotated[
        bool, typer.Option(help="With --compare, also the published-size ERNet (a quarter of an hour).")
    ] = True,
    live_rates: Annotated[
        str,
        typer.Option(help="Camera frame rates of live MDAs on the demo microscope ('' for none)."),
    ] = LIVE_RATES,
    live_frames: Annotated[int, typer.Option(min=1, help="Frames of each live MDA.")] = 60,
    live_size: Annotated[str, typer.Option(help="HEIGHTxWIDTH of the live MDAs' frames.")] = "512x512",
    cluster_stack: Annotated[
        str,
        typer.Option(
            help="FRAMESxHEIGHTxWIDTH stack segmented in one process and on local Dask clusters "
            f"of 1 and 2 workers, {ROUNDS} rounds ('' for none)."
        ),
    ] = "x".join(map(str, CLUSTER_STACK)),
    out: Annotated[
        Path | None, typer.Option(help="Folder for results.json, results.md and results.png.")
    ] = None,
) -> None:
    """Time single-frame segmentation through the embeddable API and through ernet-infer."""
    require_bench_libraries()
    spec = RunSpec(model, provider, tile=tile, batch=batch)
    seg = Segmenter(spec)
    shapes = [cast(tuple[int, int], parse_size(s)) for s in sizes.split(",")]
    stack_shapes = [parse_size(s) for s in stacks.split(",") if s]
    _stage(f"latency of {', '.join(f'{h}x{w}' for h, w in shapes)} frames ({repeats} runs each)")
    result = {
        "machine": machine(),
        "model": str(seg.model_path),
        "provider": seg.backend.description,
        "tiling": seg.plan.summary(),
        "repeats": repeats,
        "frames": [bench_frame(seg, h, w, repeats) for h, w in shapes],
    }
    if cli and seg.model_path is not None:
        height, width = max(shapes, key=lambda hw: hw[0] * hw[1])
        _stage(f"ernet-infer on one {height}x{width} frame, then stacks {stacks}")
        result["cli"] = bench_cli(seg.model_path, provider, height, width, min(repeats, 5))
        result["stacks"] = [bench_stack(seg, provider, *shape) for shape in stack_shapes]
    tiles_swept = [int(t) for t in sweep_tiles.split(",") if t]
    if tiles_swept and seg.model_path is not None:
        batches = [int(b) for b in sweep_batches.split(",") if b]
        frames, height, width = parse_size(sweep_stack)
        _stage(f"tile {sweep_tiles} x batch {sweep_batches} sweep on {sweep_stack} stacks")
        result["sweep"] = bench_sweep(spec, (frames, height, width), tiles_swept, batches)
    try:
        require_analysis_libraries()
        _stage("network analysis")
        result["analysis"] = bench_analysis(
            [int(n) for n in analysis_stacks.split(",") if n], min(repeats, 10)
        )
    except ImportError as exc:
        print(
            f"note: network analysis not measured: {exc.name} is not installed (extra 'analysis')",
            file=sys.stderr,
        )
    rates = [float(r) for r in live_rates.split(",") if r]
    if rates:
        try:
            _stage(f"live segmentation in MDAs at {live_rates} frames/s ({live_frames} frames each)")
            result["live"] = bench_live(
                seg, rates, live_frames, *cast(tuple[int, int], parse_size(live_size))
            )
        except ImportError as exc:
            print(
                f"note: live segmentation not measured: {exc.name} is not installed (extra 'acquisition')",
                file=sys.stderr,
            )
    if cluster_stack:
        frames, height, width = parse_size(cluster_stack)
        try:
            _stage(f"{cluster_stack} stack in one process and on local Dask clusters of 1 and 2 workers")
            result["cluster"] = bench_cluster(spec, frames, height, width)
        except ImportError as exc:
            print(
                f"note: the cluster not measured: {exc.name} is not installed (extra 'dask')", file=sys.stderr
            )
    if compare:
        _stage(
            "PyTorch comparison and GEMM ceiling"
            + (" (published size: a quarter of an hour)" if published else "")
        )
        result["comparison"] = bench_comparison(seg, shapes, min(repeats, 5), published)
    table = markdown(result)
    print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_output(out / "results.json") as tmp:
            tmp.write_text(json.dumps(result, indent=2))
        with atomic_output(out / "results.md") as tmp:
            tmp.write_text(table)
        plot_results(result, out / "results.png")


def main() -> None:
    """Entry point of ``ernet-bench``."""
    app()
