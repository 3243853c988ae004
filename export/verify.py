"""Accuracy and CPU-speed checks of a reduced-precision artefact against the fp32 model.

Both models segment the same frames through the runtime (same tiling, same
normalisation, ONNX Runtime on the CPU); the report gives per-pixel argmax
agreement, the ER IoU of each against the labels and their difference, and the
latency of one batch of tiles. Gates: fp16 on agreement, int8 on IoU drop.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ernet.runtime import Segmenter
from ernet.runtime.evaluation import confusion_matrix, scores
from ernet.runtime.io import labelled_pairs, open_image
from ernet.training.synthetic import generate

#: fp16 must agree with fp32 on at least this share of pixels, on every frame set.
MIN_FP16_AGREEMENT = 0.995
#: int8 may lose at most this much ER IoU (on real frames when present).
MAX_INT8_IOU_DROP = 0.01
#: Seeds of the generated check frames (512 x 512, with labels); training uses its own.
CHECK_SEEDS = range(9000, 9004)


@dataclass(frozen=True)
class LabelledFrames:
    """A named set of frames with their ER labels."""

    name: str
    frames: list[np.ndarray]
    labels: list[np.ndarray]


def generated_frames(seeds: Iterable[int] = CHECK_SEEDS) -> LabelledFrames:
    """Frames from the synthetic generator, with the labels it drew."""
    drawn = [generate(seed) for seed in seeds]
    return LabelledFrames("generated", [d.image for d in drawn], [d.mask for d in drawn])


def real_frames(folder: Path) -> LabelledFrames | None:
    """The hand-labelled frames in ``folder``; None where the folder is absent."""
    if not folder.is_dir():
        return None
    pairs = labelled_pairs(folder)
    images = [frame for p in pairs for frame in open_image(p.image).frames()]
    masks = [frame for p in pairs for frame in open_image(p.mask).frames()]
    return LabelledFrames(f"real ({folder})", images, masks)


@dataclass
class Comparison:
    """One frame set through the reference and the variant."""

    dataset: str
    frames: int
    pixels: int
    argmax_agreement: float
    iou_reference: float
    iou_variant: float

    @property
    def iou_drop(self) -> float:
        return self.iou_reference - self.iou_variant


@dataclass
class VariantReport:
    """Everything measured about one artefact, as saved beside it."""

    artefact: str
    precision: str
    reference: str
    gate: str
    comparisons: list[Comparison]
    cpu_batch_latency_s: dict[str, float]
    passed: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for row, comparison in zip(out["comparisons"], self.comparisons, strict=True):
            row["iou_drop"] = comparison.iou_drop
        return out

    def lines(self) -> list[str]:
        """The report as printed by ``ernet-export``."""
        out = [f"{self.artefact} ({self.precision}) vs {self.reference}:"]
        for c in self.comparisons:
            out.append(
                f"  {c.dataset}: {c.frames} frames, argmax agreement {c.argmax_agreement:.4%}, "
                f"ER IoU {c.iou_reference:.4f} -> {c.iou_variant:.4f} (drop {c.iou_drop:+.4f})"
            )
        latency = self.cpu_batch_latency_s
        out.append(
            f"  CPU latency of one batch: {latency['reference']:.3f} s -> {latency['variant']:.3f} s "
            f"({latency['reference'] / latency['variant']:.2f}x)"
        )
        out.extend(f"  note: {note}" for note in self.notes)
        out.append(f"  gate: {self.gate} [{'ok' if self.passed else 'FAILED'}]")
        return out


def _er_iou(labels: list[np.ndarray], truth: list[np.ndarray]) -> float:
    matrix = sum(confusion_matrix(p, t != 0, 2) for p, t in zip(labels, truth, strict=True))
    return scores(np.asarray(matrix), ("background", "ER"))["iou_ER"]


def compare(reference: Segmenter, variant: Segmenter, data: LabelledFrames) -> Comparison:
    """Segment ``data`` with both models and compare the class maps."""
    ref = [reference.segment(f) for f in data.frames]
    var = [variant.segment(f) for f in data.frames]
    pixels = sum(r.size for r in ref)
    agree = sum(int((r == v).sum()) for r, v in zip(ref, var, strict=True))
    return Comparison(
        data.name, len(ref), pixels, agree / pixels, _er_iou(ref, data.labels), _er_iou(var, data.labels)
    )


def batch_latency(segmenter: Segmenter, repeats: int = 5) -> float:
    """Median seconds of one model call on a full batch of tiles (after the warm-up)."""
    c = segmenter.metadata.config.in_channels
    batch = np.random.default_rng(0).random((segmenter.batch, c, segmenter.tile, segmenter.tile), np.float32)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        segmenter.backend.run(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_variant(
    reference: Path, variant: Path, precision: str, datasets: list[LabelledFrames], artefact: str
) -> VariantReport:
    """Compare ``variant`` with ``reference`` on ``datasets`` and apply the precision's gate."""
    with Segmenter(reference, provider="cpu") as ref, Segmenter(variant, provider="cpu") as var:
        comparisons = [compare(ref, var, data) for data in datasets]
        latency = {"reference": batch_latency(ref), "variant": batch_latency(var)}
    notes = []
    if precision == "fp16":
        gate = f"argmax agreement >= {MIN_FP16_AGREEMENT:.1%} on every frame set"
        passed = all(c.argmax_agreement >= MIN_FP16_AGREEMENT for c in comparisons)
        notes.append(
            "ONNX Runtime's x86 CPU provider has no fp16 convolutions: it runs this graph in fp32 "
            "with the fp16 weights, so the check covers weight rounding, not fp16 arithmetic"
        )
    elif precision == "int8":
        gated = [c for c in comparisons if c.dataset.startswith("real")] or comparisons
        gate = f"ER IoU drop <= {MAX_INT8_IOU_DROP} on {gated[0].dataset}"
        passed = all(c.iou_drop <= MAX_INT8_IOU_DROP for c in gated)
        if latency["variant"] >= latency["reference"]:
            notes.append("int8 is not faster than fp32 on this CPU: deploy model.onnx here")
    else:
        raise ValueError(f"no accuracy gate for precision {precision!r}")
    return VariantReport(artefact, precision, reference.name, gate, comparisons, latency, passed, notes)
