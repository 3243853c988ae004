"""Segmentation on a Dask cluster against one process: frames/s, scaling, overhead.

``python -m ernet.benchmarks.cluster`` (also part of ``ernet-bench``) segments one
generated 16-bit stack, as a TIFF, into OME-Zarr masks: in one process (one thread,
then all cores), and on local clusters of 1 and 2 worker processes of one thread each
(``ernet-infer --dask local:N``'s path). Cluster times count everything from the
call on a running cluster: sending the model, the workers opening their sessions,
reading, segmenting and writing the frames; the cluster's start is shown apart. The
labels of every run must be identical.

- scaling efficiency: frames/s of ``local:2`` over twice those of ``local:1``;
- Dask overhead: how much longer ``local:1`` takes than one process of one thread.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tifffile
import typer

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.backends import physical_cores
from ernet.runtime.io import open_image
from ernet.runtime.pipeline import Outputs, segment_image

from .measure import machine

#: The stack measured by default: FRAMES x HEIGHT x WIDTH.
STACK = (32, 512, 512)


def _stack_tiff(folder: Path, frames: int, height: int, width: int) -> Path:
    from ernet.training.synthetic import generate_stack
    from ernet.training.synthetic.stack import SyntheticConfig

    config = SyntheticConfig(height=height, width=width, bit_depth=16)
    path = folder / "stack.tif"
    tifffile.imwrite(
        path,
        np.stack([f.image for f in generate_stack(frames, 11, config)]),
        imagej=True,
        metadata={"axes": "TYX"},
    )
    return path


def bench_cluster(
    spec: RunSpec, frames: int, height: int, width: int, workers: tuple[int, ...] = (1, 2)
) -> dict[str, Any]:
    """Seconds and frames/s of one process and of local clusters of ``workers`` processes."""
    from ernet.runtime.cluster import SourceRef, connect, segment_on_cluster

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source_path = _stack_tiff(folder, frames, height, width)
        source = open_image(source_path)
        masks = []

        def row(mode: str, processes: int, threads: int, seconds: float, **extra: Any) -> None:
            rows.append(
                {"mode": mode, "processes": processes, "threads": threads, "seconds": seconds,
                 "frames_per_s": frames / seconds, **extra}
            )  # fmt: skip

        for threads in (1, None):
            with Segmenter(RunSpec.of(spec, threads=threads), warmup=False) as seg:
                mask = folder / f"one-{threads}.ome.zarr"
                start = time.perf_counter()
                segment_image(seg, source, Outputs(mask))
                row("one process", 1, threads or physical_cores(), time.perf_counter() - start)
                masks.append(mask)
        with Segmenter(spec, warmup=False) as seg:
            for n in workers:
                start = time.perf_counter()
                with connect(f"local:{n}", threads=1) as client:
                    started = time.perf_counter() - start
                    mask = folder / f"local-{n}.ome.zarr"
                    start = time.perf_counter()
                    segment_on_cluster(client, seg, source, SourceRef(source_path), Outputs(mask))
                    row(f"local:{n}", n, 1, time.perf_counter() - start, cluster_start_s=started)
                masks.append(mask)
        reference = open_image(masks[0]).data
        identical = all(np.array_equal(open_image(m).data, reference) for m in masks[1:])
    by_mode = {r["mode"]: r for r in rows if r["threads"] == 1}
    one, local1, local2 = by_mode["one process"], by_mode.get("local:1"), by_mode.get("local:2")
    return {
        "machine": machine(),
        "stack": [frames, height, width],
        "rows": rows,
        "labels_identical": identical,
        "overhead": local1["seconds"] / one["seconds"] - 1 if local1 else None,
        "scaling_efficiency": local2["frames_per_s"] / (2 * local1["frames_per_s"])
        if local1 and local2
        else None,
    }


def cluster_markdown(result: dict[str, Any]) -> list[str]:
    """The table of :func:`bench_cluster`'s results."""
    frames, height, width = result["stack"]
    lines = [
        "",
        f"Segmentation on a Dask cluster: {frames} frames of {height}x{width} uint16 (TIFF in, OME-Zarr "
        "masks out); cluster rows count from the call on a running cluster (model sent, sessions opened, "
        f"frames read, segmented, written). Labels identical in every run: "
        f"{'yes' if result['labels_identical'] else 'NO'}.",
        "",
        "| run | processes x threads | seconds | frames/s | cluster start s |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        start = f"{r['cluster_start_s']:.1f}" if "cluster_start_s" in r else "-"
        lines.append(
            f"| {r['mode']} | {r['processes']} x {r['threads']} | {r['seconds']:.2f} | "
            f"{r['frames_per_s']:.2f} | {start} |"
        )
    if result["overhead"] is not None:
        lines += [
            "",
            f"Dask overhead at one worker against one process of one thread: {result['overhead']:+.1%}.",
        ]
    if result["scaling_efficiency"] is not None:
        lines.append(f"Scaling efficiency from 1 to 2 workers: {result['scaling_efficiency']:.0%}.")
    return lines


def main(
    model: Annotated[
        Path | None, typer.Option(help="ONNX model or embedded name; default: the embedded one.")
    ] = None,
    stack: Annotated[str, typer.Option(help="FRAMESxHEIGHTxWIDTH of the generated stack.")] = "x".join(
        map(str, STACK)
    ),
) -> None:
    """Print the cluster table for a model (default: the embedded default model)."""
    frames, height, width = (int(v) for v in stack.split("x"))
    result = bench_cluster(RunSpec(model, "cpu"), frames, height, width)
    print("\n".join(cluster_markdown(result)))


if __name__ == "__main__":
    typer.run(main)
