"""Speed of ERNet configurations on this machine: the measured side of choosing one.

``python -m ernet.benchmarks.architectures`` exports each configuration with random
weights (speed does not depend on them) and times ``Segmenter.segment`` on a
1040 x 1392 uint16 frame. Needs the ``export`` extra (torch, onnx).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from ernet.runtime import RunSpec, Segmenter
from ernet.training.models.ernet import ERNet, ERNetConfig

from .comparison import export_random
from .measure import timings, uint16_frame

CONFIGS = [
    ERNetConfig(n_feats=8, n_resgroups=1, n_resblocks=2, reduction=4),
    ERNetConfig(n_feats=16, n_resgroups=2, n_resblocks=2, reduction=4),
    ERNetConfig(n_feats=24, n_resgroups=2, n_resblocks=3, reduction=4),
    ERNetConfig(n_feats=32, n_resgroups=3, n_resblocks=4, reduction=8),
    ERNetConfig(),  # the published size
]


def seconds_per_frame(
    config: ERNetConfig, folder: Path, tile: int = 256, repeats: int = 3, warmup: int = 1
) -> float:
    """Median seconds of ``segment`` on a 1040 x 1392 frame for a random-weight model."""
    _, model = export_random(config.architecture(), config.contract(tile), folder)
    seg = Segmenter(RunSpec(model, "cpu"))
    frame = uint16_frame(1040, 1392)
    return statistics.median(timings(lambda: seg.segment(frame), repeats, warmup))


def main() -> None:
    """Print a Markdown table: configuration, parameters, MFLOP per pixel, seconds per frame."""
    print("| F | G | B | r | parameters | MFLOP/pixel | s per 1040x1392 frame (tile 256) | runs |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for c in CONFIGS:
            params = sum(p.numel() for p in ERNet(c).parameters())
            # The published size takes minutes a frame: one run, no warm-up (negligible there).
            repeats = 3 if c.flops_per_pixel < 1e6 else 1
            seconds = seconds_per_frame(c, Path(tmp), repeats=repeats, warmup=1 if repeats > 1 else 0)
            print(
                f"| {c.n_feats} | {c.n_resgroups} | {c.n_resblocks} | {c.reduction} | {params:,} | "
                f"{c.flops_per_pixel / 1e6:.3f} | {seconds:.2f} | {repeats} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
