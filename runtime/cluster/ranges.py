"""A stack's normalisation range on a cluster: partial ranges of groups of frames,
gathered by the workers and merged in a tree (exactly what one pass over the stack gives)."""

from __future__ import annotations

import dask
from dask.delayed import Delayed

from ..preprocess import StackRange

#: Partial ranges merged per task.
MERGE_FAN_IN = 8


def merged_range(partials: list[Delayed]) -> Delayed:
    """The value range of lazily gathered :class:`StackRange` partials, merged in a tree."""
    while len(partials) > 1:
        partials = [
            dask.delayed(_merge)(*partials[i : i + MERGE_FAN_IN])
            for i in range(0, len(partials), MERGE_FAN_IN)
        ]
    return dask.delayed(StackRange.value_range)(partials[0])


def _merge(first: StackRange, *others: StackRange) -> StackRange:
    for other in others:
        first.merge(other)
    return first
