"""Where live labels go as they arrive: one file per position, complete when the run ends.

A store is opened with the acquisition's :class:`~.plan.AcquisitionPlan` and the frame
shape, takes each position's labels in acquisition order (``put``), and at the end
(``finish``) fills the frames it never got (dropped or failed) with background and
moves its files into place; ``abort`` leaves nothing behind. What was missing is
returned, so that a summary never reports a partial result as complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..io import TiffStackWriter
from .plan import AcquisitionPlan, Index, PositionPlan


class LabelStore(Protocol):
    """What a live segmentation writes its labels to."""

    def begin(
        self, plan: AcquisitionPlan, frame_shape: tuple[int, int], description: Mapping[str, Any]
    ) -> None:
        """Open the outputs of one acquisition."""

    def put(self, index: Index, labels: np.ndarray) -> None:
        """Store one frame's labels (frames of a position arrive in acquisition order)."""

    def finish(self) -> list[dict[str, Any]]:
        """Complete every output; one description per output (path, axes, frames missing)."""

    def abort(self) -> None:
        """Remove the unfinished outputs."""


class _PositionFile:
    """One position's labels, written in order, gaps filled with background."""

    def __init__(self, plan: PositionPlan, writer: TiffStackWriter, frame_shape: tuple[int, int]) -> None:
        self.plan, self.writer, self.frame_shape = plan, writer, frame_shape
        self.order = plan.order()
        self.next = 0
        self.missing: list[Index] = []
        # The writer takes whole blocks (all channels of a plane when C is innermost).
        self._per_block = int(np.prod(writer.block_shape[:-2], dtype=np.int64))
        self._block: list[np.ndarray] = []

    def put(self, index: Index, labels: np.ndarray) -> None:
        k = self.order.get(index)
        if k is None:
            raise ValueError(f"frame {dict(index)} is not part of this acquisition's plan")
        if k < self.next:
            raise ValueError(f"frame {dict(index)} arrived after a later frame of its position")
        if labels.shape != self.frame_shape:
            raise ValueError(
                f"frame {dict(index)} is {labels.shape}, the acquisition's frames {self.frame_shape}"
            )
        self._fill(k)
        self._write(labels)
        self.next = k + 1

    def _fill(self, stop: int) -> None:
        for k in range(self.next, stop):
            self.missing.append(self.plan.frames[k])
            self._write(np.zeros(self.frame_shape, np.uint8))

    def _write(self, frame: np.ndarray) -> None:
        self._block.append(frame)
        if len(self._block) == self._per_block:
            self.writer.write(np.stack(self._block).reshape(self.writer.block_shape))
            self._block = []

    def finish(self) -> dict[str, Any]:
        self._fill(len(self.plan.frames))
        self.writer.__exit__(None, None, None)
        return {
            "position": self.plan.position,
            "name": self.plan.name,
            "path": str(self.writer.path),
            "axes": self.plan.axes + "YX",
            "frames": len(self.plan.frames),
            "segmented": len(self.plan.frames) - len(self.missing),
            "missing": [dict(i) for i in self.missing],
        }


class TiffLabelStore:
    """Each position's labels in ``FOLDER/PREFIX_pN_labels.tif`` (uint8 class ids; an
    ImageJ hyperstack of the sequence's axes where they fit it), written as frames are
    segmented and renamed into place only when complete."""

    def __init__(self, folder: Path, prefix: str = "mda", *, overwrite: bool = False) -> None:
        self.folder, self.prefix, self.overwrite = Path(folder), prefix, overwrite
        self._files: dict[int, _PositionFile] = {}

    def path(self, position: int) -> Path:
        """Where a position's labels go."""
        return self.folder / f"{self.prefix}_p{position}_labels.tif"

    def begin(
        self, plan: AcquisitionPlan, frame_shape: tuple[int, int], description: Mapping[str, Any]
    ) -> None:
        self._files = {}
        try:
            for position in plan.positions:
                writer = TiffStackWriter(
                    self.path(position.position),
                    (*position.shape, *frame_shape),
                    position.axes + "YX",
                    np.uint8,
                    plan.calibration,
                    description={
                        **description,
                        "position": position.position,
                        "position_name": position.name,
                    },
                    overwrite=self.overwrite,
                )
                writer.__enter__()
                self._files[position.position] = _PositionFile(position, writer, frame_shape)
        except BaseException:
            self.abort()
            raise

    def put(self, index: Index, labels: np.ndarray) -> None:
        p = dict(index).get("p", 0)
        if p not in self._files:
            raise ValueError(f"frame {dict(index)}: no position {p} in this acquisition")
        self._files[p].put(index, labels)

    def finish(self) -> list[dict[str, Any]]:
        try:
            return [f.finish() for f in self._files.values()]
        except BaseException:
            self.abort()
            raise
        finally:
            self._files = {}

    def abort(self) -> None:
        for f in self._files.values():
            f.writer.__exit__(RuntimeError, RuntimeError("aborted"), None)
        self._files = {}
