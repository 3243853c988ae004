"""Accuracy and CPU-speed checks of a reduced-precision artefact against the fp32 model.

Both models segment the same frames through the runtime (same tiling, same
normalisation, ONNX Runtime on the CPU); the report gives per-pixel argmax
agreement over all classes, the IoU of each foreground class against the labels for
both and their difference, and the latency of one batch of tiles. Gates: fp16 on
agreement, int8 on the largest IoU drop of any class.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.evaluation import LabelledFrames, confusion_matrix, scores, truth_ids
from ernet.training.synthetic import generate

#: fp16 must agree with fp32 on at least this share of pixels, on every frame set.
MIN_FP16_AGREEMENT = 0.995
#: int8 may lose at most this much ER IoU (on real frames when present).
MAX_INT8_IOU_DROP = 0.01
#: Seeds of the generated check frames (512 x 512, with labels); training uses its own.
CHECK_SEEDS = range(9000, 9004)


def generated_frames(seeds: Iterable[int] = CHECK_SEEDS) -> LabelledFrames:
    """Frames from the synthetic generator, with the labels it drew."""
    drawn = [generate(seed) for seed in seeds]
    return LabelledFrames("generated", [d.image for d in drawn], [d.mask for d in drawn])


@dataclass
class Comparison:
    """One frame set through the reference and the variant: per-pixel agreement, and
    each foreground class's IoU against the labels."""

    dataset: str
    frames: int
    pixels: int
    argmax_agreement: float
    iou_reference: dict[str, float]
    iou_variant: dict[str, float]

    @property
    def iou_drops(self) -> dict[str, float]:
        return {k: self.iou_reference[k] - self.iou_variant[k] for k in self.iou_reference}

    @property
    def iou_drop(self) -> float:
        """The largest drop of any class (classes absent from labels and masks left out)."""
        drops = [d for d in self.iou_drops.values() if np.isfinite(d)]
        return max(drops) if drops else 0.0


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
            row["iou_drops"] = comparison.iou_drops
            row["iou_drop"] = comparison.iou_drop
        return out

    def lines(self) -> list[str]:
        """The report as printed by ``ernet-export``."""
        out = [f"{self.artefact} ({self.precision}) vs {self.reference}:"]
        for c in self.comparisons:
            ious = ", ".join(
                f"{name} IoU {c.iou_reference[name]:.4f} -> {c.iou_variant[name]:.4f} (drop {drop:+.4f})"
                for name, drop in c.iou_drops.items()
            )
            out.append(f"  {c.dataset}: {c.frames} frames, argmax agreement {c.argmax_agreement:.4%}, {ious}")
        latency = self.cpu_batch_latency_s
        out.append(
            f"  CPU latency of one batch: {latency['reference']:.3f} s -> {latency['variant']:.3f} s "
            f"({latency['reference'] / latency['variant']:.2f}x)"
        )
        out.extend(f"  note: {note}" for note in self.notes)
        out.append(f"  gate: {self.gate} [{'ok' if self.passed else 'FAILED'}]")
        return out


def foreground_ious(
    labels: list[np.ndarray], truth: list[np.ndarray], class_names: tuple[str, ...]
) -> dict[str, float]:
    """The IoU of each foreground class over all pixels of all frames."""
    k = len(class_names)
    matrix = sum(confusion_matrix(p, truth_ids(t, k), k) for p, t in zip(labels, truth, strict=True))
    s = scores(np.asarray(matrix), class_names)
    return {name: s[f"iou_{name}"] for name in class_names[1:]}


def compare(reference: Segmenter, variant: Segmenter, data: LabelledFrames) -> Comparison:
    """Segment ``data`` with both models and compare the class maps."""
    ref = [reference.segment(f) for f in data.frames]
    var = [variant.segment(f) for f in data.frames]
    pixels = sum(r.size for r in ref)
    agree = sum(int((r == v).sum()) for r, v in zip(ref, var, strict=True))
    names = reference.contract.class_names
    return Comparison(
        data.name,
        len(ref),
        pixels,
        agree / pixels,
        foreground_ious(ref, data.labels, names),
        foreground_ious(var, data.labels, names),
    )


def batch_latency(segmenter: Segmenter, repeats: int = 5) -> float:
    """Median seconds of one model call on a full batch of tiles (after the warm-up)."""
    c = segmenter.contract.in_channels
    batch = np.random.default_rng(0).random((segmenter.batch, c, segmenter.tile, segmenter.tile), np.float32)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        segmenter.run_model(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_variant(
    reference: Path, variant: Path, precision: str, datasets: list[LabelledFrames], artefact: str
) -> VariantReport:
    """Compare ``variant`` with ``reference`` on ``datasets`` and apply the precision's gate."""
    with (
        Segmenter(RunSpec(reference, "cpu", min_object_size=0)) as ref,
        Segmenter(RunSpec(variant, "cpu", min_object_size=0)) as var,
    ):
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
        gate = f"IoU drop of every class <= {MAX_INT8_IOU_DROP} on {gated[0].dataset}"
        passed = all(c.iou_drop <= MAX_INT8_IOU_DROP for c in gated)
        if latency["variant"] >= latency["reference"]:
            notes.append("int8 is not faster than fp32 on this CPU: deploy model.onnx here")
    else:
        raise ValueError(f"no accuracy gate for precision {precision!r}")
    return VariantReport(artefact, precision, reference.name, gate, comparisons, latency, passed, notes)
