"""``ernet-live``: run an acquisition (MDA) with live segmentation written to disk.

The MDA comes from a useq sequence file (YAML or JSON) or, without one, is a time-lapse
of ``--frames`` frames every ``--interval`` seconds. It runs on a Micro-Manager
configuration (``--config``) or, without one, on the demo microscope
(:mod:`ernet.runtime.acquisition.demo`: a camera streaming generated ER frames), so the
integration can be tried with no microscope. A one-line status (frames/s, drops,
latency) is shown while it runs; Ctrl-C cancels the MDA and still leaves complete files.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from ..acquisition.live import DEFAULT_QUEUE
from ..io import refuse_existing
from ..segmenter import Segmenter
from ..spec import Provider, RunSpec
from ..stream import WhenFull
from .policy import EXIT_ERROR, EXIT_INTERRUPTED, MODEL_HELP, command, fail, typer_app

app = typer_app(extra="acquisition")
#: Seconds between status lines when stderr is not a terminal.
STATUS_EVERY_S = 2.0


def load_sequence(path: Path | None, frames: int, interval: float) -> Any:
    """The MDA to run: ``path``'s useq sequence, else a plain time-lapse."""
    import useq

    if path is None:
        plan = useq.TIntervalLoops(interval=timedelta(seconds=interval), loops=frames)
        return useq.MDASequence(time_plan=plan)
    if not path.is_file():
        raise ValueError(f"{path}: no such sequence file")
    try:
        return useq.MDASequence.from_file(path)
    except Exception as exc:  # pydantic's validation errors, YAML/JSON syntax errors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a useq MDA sequence ({reason})") from None


def open_core(config: Path | None, size: tuple[int, int]) -> Any:
    """The acquisition engine: Micro-Manager with ``config``, else the demo microscope."""
    if config is None:
        from ..acquisition.demo import demo_core, er_frames

        return demo_core(er_frames(20, *size))
    from pymmcore_plus import CMMCorePlus

    if not config.is_file():
        raise ValueError(f"{config}: no such Micro-Manager configuration file")
    core = CMMCorePlus()
    try:
        core.loadSystemConfiguration(str(config))
    except Exception as exc:
        raise ValueError(
            f"{config}: not loaded by Micro-Manager ({str(exc).strip().splitlines()[0]})"
        ) from None
    return core


def show_status(live: Any, done: threading.Event, total: int) -> None:
    """Print the status line until ``done``: rewritten in place on a terminal, else a
    line every few seconds."""
    tty, start, last = sys.stderr.isatty(), time.perf_counter(), 0.0
    while not done.wait(0.25 if tty else 0.5):
        now = time.perf_counter()
        if not tty and now - last < STATUS_EVERY_S:
            continue
        last, s = now, live.stats()
        rate = s.segmented / (now - start)
        line = f"{s.received}/{total} frames, {rate:.1f} segmented/s, {s.line().split(', ', 1)[1]}"
        print(f"\r{line}\033[K" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)


@app.command()
@command
def live(
    sequence: Annotated[
        Path | None, typer.Argument(help="useq MDA sequence (YAML or JSON); default: a time-lapse.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the labels and the summary.")] = Path(
        "live"
    ),
    config: Annotated[
        Path | None,
        typer.Option(help="Micro-Manager configuration file; default: the demo microscope (generated ER)."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help=MODEL_HELP,
        ),
    ] = None,
    provider: Annotated[Provider, typer.Option(help="Execution provider, as for ernet-infer.")] = "auto",
    channel: Annotated[str | None, typer.Option(help="Segment only this channel configuration.")] = None,
    frames: Annotated[
        int, typer.Option(min=1, help="Frames of the time-lapse without a sequence file.")
    ] = 20,
    interval: Annotated[float, typer.Option(min=0, help="Seconds between its frames.")] = 0.2,
    size: Annotated[str, typer.Option(help="The demo camera's frame size, HxW.")] = "512x512",
    queue: Annotated[int, typer.Option(min=1, help="Frames that may wait for the model.")] = DEFAULT_QUEUE,
    when_full: Annotated[
        WhenFull, typer.Option(help="When the queue is full: drop the oldest or newest frame, or wait.")
    ] = "drop_oldest",
    overwrite: Annotated[bool, typer.Option(help="Replace the outputs of an earlier run.")] = False,
) -> None:
    """Run an MDA with live ER segmentation; labels per position, and a summary, in OUT."""
    from ..acquisition import AcquisitionPlan, attach

    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{size!r} is not HxW, e.g. 512x512", param_hint="--size") from None
    mda = load_sequence(sequence, frames, interval)
    AcquisitionPlan.of(mda, channel)  # a channel the sequence lacks: refused before anything runs
    refuse_existing(out / "mda_summary.json", overwrite)
    core = open_core(config, (height, width))
    segmenter = Segmenter(RunSpec(model, provider))
    print(f"model: {segmenter.model_path} on {segmenter.backend.description}", file=sys.stderr)
    session = attach(
        core, segmenter, out=out, overwrite=overwrite, channel=channel, maxsize=queue, when_full=when_full
    )
    total = len(list(mda))
    done = threading.Event()
    status = threading.Thread(target=show_status, args=(session, done, total), daemon=True)
    status.start()
    interrupted = False
    runner = core.run_mda(mda)
    try:
        runner.join()
    except KeyboardInterrupt:  # cancel at the next event; the files are still completed
        interrupted = True
        core.mda.cancel()
        runner.join()  # the MDA has ended and said so (sequenceCanceled, sequenceFinished)
    summary = session.wait()
    session.detach()
    done.set()
    status.join()
    if summary is None:
        raise RuntimeError("the acquisition ended without a summary")
    print(summary.stats.line(), file=sys.stderr)
    for output in summary.outputs:
        print(f"wrote {output['path']} ({output['axes']}, {output['segmented']}/{output['frames']} frames)")
    if interrupted:
        fail(f"{out}: interrupted; the MDA was cancelled, its files are complete up to there")
        raise typer.Exit(EXIT_INTERRUPTED)
    if not summary.complete:
        missing = sum(len(o["missing"]) for o in summary.outputs)
        fail(
            f"{out}: {missing} frame(s) not segmented ({summary.stats.dropped} dropped, "
            f"{summary.stats.failed} failed{', ' + summary.error if summary.error else ''}); "
            "stored as background and listed in mda_summary.json"
        )
        raise typer.Exit(EXIT_ERROR)


def main() -> None:
    """Entry point of ``ernet-live``."""
    app()
