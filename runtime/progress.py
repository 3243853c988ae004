"""Progress reporting: a bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[int], None]


@contextmanager
def progress(total: int, description: str, unit: str = "frames", quiet: bool = False) -> Iterator[Advance]:
    """Yield ``advance(n)``: a rich bar with its rate on a TTY, else a line per ~10 %."""
    if quiet or total <= 0:
        yield _ignore
    elif sys.stderr.isatty():
        with _rich_bar(total, description, unit) as advance:
            yield advance
    else:
        yield _line_reporter(total, description, unit)


def _ignore(n: int = 1) -> None:
    """Progress sink for quiet runs."""


@contextmanager
def _rich_bar(total: int, description: str, unit: str) -> Iterator[Advance]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed:.2f} {unit}/s" if task.speed else f"- {unit}/s")

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task_id = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task_id, n)

        yield advance


def _line_reporter(total: int, description: str, unit: str) -> Advance:
    every = max(1, total // 10)
    start = time.perf_counter()
    done = 0

    def advance(n: int = 1) -> None:
        nonlocal done
        before, done = done, done + n
        if done // every != before // every or done == total:
            rate = done / max(time.perf_counter() - start, 1e-9)
            print(f"{description}: {done}/{total} {unit} ({rate:.2f} {unit}/s)", file=sys.stderr, flush=True)

    return advance
