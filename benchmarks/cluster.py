"""Segmentation on a Dask cluster against one process: frames/s, scaling, overhead.

``python -m ernet.benchmarks.cluster`` (also part of ``ernet-bench``) segments one
generated 16-bit stack, as a TIFF, into OME-Zarr masks (``ernet-infer --dask``'s path):

- Dask overhead: one process as ``ernet-infer`` runs (all cores) against a local
  cluster of one worker process with as many threads (``--dask local:1``);
- scaling: local clusters of 1 and 2 worker processes of one thread each; efficiency
  is the frames/s of 2 workers over twice those of 1.

Every run is timed as ``ernet-infer`` runs it, from the model unopened: one process
opens it and segments; a cluster run opens it on the client (for the plan), sends it
to the workers, which open their sessions, read, segment and write the frames. The
cluster's own start is shown apart. The labels of every run must be identical.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
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
STACK = (64, 512, 512)


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


#: Rounds of every run, interleaved; the table gives each run's median (and range).
ROUNDS = 3


def bench_cluster(
    spec: RunSpec, frames: int, height: int, width: int, rounds: int = ROUNDS
) -> dict[str, Any]:
    """Seconds and frames/s of one process and of local clusters, each run ``rounds``
    times in interleaved rounds (a fresh cluster each time, its start timed apart)."""
    from ernet.runtime.cluster import SourceRef, connect, segment_on_cluster

    cores = physical_cores()
    runs: list[tuple[str, int, int]] = [("one process", 1, cores), ("local:1", 1, cores), ("local:1", 1, 1)]
    runs.append(("local:2", 2, 1))
    seconds: dict[int, list[float]] = {i: [] for i in range(len(runs))}
    starts: dict[int, list[float]] = {i: [] for i in range(len(runs))}
    identical = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source_path = _stack_tiff(folder, frames, height, width)
        source = open_image(source_path)
        reference = None
        for round_number in range(rounds):
            for i, (mode, _, threads) in enumerate(runs):
                mask = folder / f"{round_number}-{i}.ome.zarr"
                with ExitStack() as cluster:
                    client = None
                    if mode != "one process":
                        start = time.perf_counter()
                        client = cluster.enter_context(connect(mode, threads=threads))
                        starts[i].append(time.perf_counter() - start)
                    start = time.perf_counter()  # from the model unopened, as ernet-infer runs
                    with Segmenter(RunSpec.of(spec, threads=None), warmup=False) as seg:
                        if client is None:
                            segment_image(seg, source, Outputs(mask))
                        else:
                            segment_on_cluster(client, seg, source, SourceRef(source_path), Outputs(mask))
                    seconds[i].append(time.perf_counter() - start)
                labels = open_image(mask).data
                reference = labels if reference is None else reference
                identical = identical and bool(np.array_equal(labels, reference))
    rows: list[dict[str, Any]] = []
    for i, (mode, processes, threads) in enumerate(runs):
        median = float(np.median(seconds[i]))
        rows.append(
            {"mode": mode, "processes": processes, "threads": threads, "seconds": median,
             "seconds_range": [min(seconds[i]), max(seconds[i])], "frames_per_s": frames / median,
             **({"cluster_start_s": float(np.median(starts[i]))} if starts[i] else {})}
        )  # fmt: skip
    return {
        "machine": machine(),
        "stack": [frames, height, width],
        "rounds": rounds,
        "rows": rows,
        "labels_identical": identical,
        "overhead": rows[1]["seconds"] / rows[0]["seconds"] - 1,
        "scaling_efficiency": rows[3]["frames_per_s"] / (2 * rows[2]["frames_per_s"]),
    }


def cluster_markdown(result: dict[str, Any]) -> list[str]:
    """The table of :func:`bench_cluster`'s results."""
    frames, height, width = result["stack"]
    lines = [
        "",
        f"Segmentation on a Dask cluster: {frames} frames of {height}x{width} uint16 (TIFF in, OME-Zarr "
        f"masks out), each run {result['rounds']} times in interleaved rounds: median seconds (range). "
        "Each run counts from the model unopened (a cluster run: opened on the client, sent, opened "
        "by the workers; frames read, segmented, written), on a fresh cluster whose start is apart. "
        "Labels identical in "
        f"every run: {'yes' if result['labels_identical'] else 'NO'}.",
        "",
        "| run | processes x threads | seconds | frames/s | cluster start s |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        low, high = r["seconds_range"]
        start = f"{r['cluster_start_s']:.1f}" if "cluster_start_s" in r else "-"
        seconds = f"{r['seconds']:.2f} ({low:.2f}-{high:.2f})"
        rate = f"{r['frames_per_s']:.2f}"
        lines.append(f"| {r['mode']} | {r['processes']} x {r['threads']} | {seconds} | {rate} | {start} |")
    return [
        *lines,
        "",
        f"Dask overhead, one worker against one process, both on all cores: {result['overhead']:+.1%}. "
        f"Scaling efficiency from 1 to 2 workers of one thread: {result['scaling_efficiency']:.0%}.",
    ]


def main(
    model: Annotated[
        Path | None, typer.Option(help="ONNX model or embedded name; default: the embedded one.")
    ] = None,
    stack: Annotated[str, typer.Option(help="FRAMESxHEIGHTxWIDTH of the generated stack.")] = "x".join(
        map(str, STACK)
    ),
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved rounds of every run.")] = ROUNDS,
) -> None:
    """Print the cluster table for a model (default: the embedded default model)."""
    frames, height, width = (int(v) for v in stack.split("x"))
    result = bench_cluster(RunSpec(model, "cpu"), frames, height, width, rounds)
    print("\n".join(cluster_markdown(result)))


if __name__ == "__main__":
    typer.run(main)
