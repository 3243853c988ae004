"""A bounded read-ahead queue: producing the next items overlaps with using the current one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], size: int = 2) -> Iterator[T]:
    """Iterate ``items`` on a background thread, at most ``size`` items ahead of the caller.

    Whatever producing an item costs (reading, decoding, normalising) overlaps with
    the caller's work on the previous ones. An exception in the producer is raised
    here, at the item where it happened; closing the iterator early stops the producer.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    ready: queue.Queue[object] = queue.Queue(maxsize=size)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            offer(_Failure(exc))
            return
        offer(_END)

    thread = threading.Thread(target=produce, name="ernet-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
