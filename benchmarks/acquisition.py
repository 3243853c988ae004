"""Live segmentation at a steady frame rate: latency from a frame's arrival to its labels.

Real pymmcore-plus MDAs on the demo microscope (a pure-Python camera streaming generated
ER frames) with the live layer as a user attaches it (queue of 8, ``drop_oldest``), one
MDA per frame rate: frames received, segmented and dropped, latency p50/p99, and the
highest rate held with no frame dropped. ``ernet-bench --live-rates`` runs it, or
``python -m ernet.benchmarks.acquisition [--rates 2,4,8] [--frames 60] [--size 512x512]``.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated, Any

import typer

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.acquisition.live import DEFAULT_QUEUE
from ernet.runtime.spec import Provider

#: Camera frame rates measured by default (frames/s).
RATES = "2,3,4,5,6,8"


def bench_live(seg: Segmenter, rates: list[float], frames: int, height: int, width: int) -> dict[str, Any]:
    """One MDA of ``frames`` frames at each camera rate (frames/s)."""
    import useq

    from ernet.runtime.acquisition import attach
    from ernet.runtime.acquisition.demo import demo_core, er_frames

    images = er_frames(20, height, width)
    rows = []
    for rate in rates:
        core = demo_core(images)
        live = attach(core, seg, maxsize=DEFAULT_QUEUE, when_full="drop_oldest")
        plan = useq.TIntervalLoops(interval=timedelta(seconds=1 / rate), loops=frames)
        tic = time.perf_counter()
        core.mda.run(useq.MDASequence(time_plan=plan))
        acquired_s = time.perf_counter() - tic
        summary = live.detach()
        assert summary is not None
        s = summary.stats
        rows.append(
            {
                "rate": rate,
                "camera_rate": s.received / acquired_s,
                "received": s.received,
                "segmented": s.segmented,
                "dropped": s.dropped,
                "failed": s.failed,
                "latency_p50_s": s.latency_p50_s,
                "latency_p99_s": s.latency_p99_s,
            }
        )
    held = [r["rate"] for r in rows if r["dropped"] == 0 and r["failed"] == 0]
    return {
        "frame": f"{height}x{width}",
        "frames": frames,
        "queue": DEFAULT_QUEUE,
        "rows": rows,
        "highest_rate_without_drops": max(held) if held else None,
    }


def live_markdown(live: dict[str, Any]) -> list[str]:
    """The table of :func:`bench_live`'s results."""
    held = live["highest_rate_without_drops"]
    lines = [
        "",
        f"Live segmentation in pymmcore-plus MDAs (demo camera, {live['frame']} uint16 frames, "
        f"{live['frames']} per rate, queue {live['queue']}, drop oldest); latency from a frame's arrival "
        f"to its labels. Highest rate without drops: {held if held is not None else 'none'} frames/s.",
        "",
        "| rate frames/s | camera held | received | segmented | dropped | latency p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in live["rows"]:
        counts = f"{r['received']} | {r['segmented']} | {r['dropped']}"
        lines.append(
            f"| {r['rate']:g} | {r['camera_rate']:.2f} | {counts} | "
            f"{r['latency_p50_s'] * 1e3:.0f} | {r['latency_p99_s'] * 1e3:.0f} |"
        )
    return lines


def main(
    rates: Annotated[str, typer.Option(help="Comma-separated camera frame rates (frames/s).")] = RATES,
    frames: Annotated[int, typer.Option(min=1, help="Frames per rate.")] = 60,
    size: Annotated[str, typer.Option(help="Frame size, HxW.")] = "512x512",
    provider: Annotated[Provider, typer.Option(help="Execution provider.")] = "cpu",
) -> None:
    """Print the live-segmentation table for the embedded default model."""
    height, width = (int(v) for v in size.split("x"))
    with Segmenter(RunSpec(None, provider)) as seg:
        result = bench_live(seg, [float(r) for r in rates.split(",")], frames, height, width)
    print("\n".join(live_markdown(result)))


if __name__ == "__main__":
    typer.run(main)
