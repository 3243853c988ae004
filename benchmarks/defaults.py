"""The embedded models beside the default they replace: speed through ``ernet-infer``
and accuracy on the labelled real frames, side by side in one run.

``python -m ernet.benchmarks.defaults --baseline OLD.onnx [--repeats 5]`` times whole
``ernet-infer`` runs (start-up, model load, reading and writing included) on one
generated 1040 x 1392 uint16 frame, the models taking turns round after round (the
first round is a warm-up), and scores each model on the labelled real frames as
``ernet-validate`` does (binary labels score a multi-class model by its network
classes), with the share of the labelled ER each leaves background and the size of its
predicted ER against the labels'. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.evaluation import REAL_DATA, labelled_er, labelled_frames
from ernet.runtime.evaluation.scores import foreground_scores
from ernet.runtime.io import labelled_pairs
from ernet.runtime.models import EMBEDDED, embedded_model

from .measure import machine


def infer_seconds(models: dict[str, Path], frame: Path, repeats: int) -> dict[str, list[float]]:
    """Wall seconds of ``ernet-infer FRAME --model M`` per model, interleaved over rounds."""
    command = Path(sys.executable).parent / "ernet-infer"
    out = frame.parent / "out"
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(repeats + 1):
        for name, model in models.items():
            args = [str(command), str(frame), "--model", str(model), "--out", str(out), "--overwrite", "-q"]
            start = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            if round_:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def real_frame_scores(model: Path, real_data: Path) -> dict[str, dict[str, float]]:
    """Per labelled real frame (2-D pairs, by name), in one pass: the IoU of the model's
    ER (its network classes) as ``ernet-validate`` scores it, the shares of the labelled
    ER it calls background and calls a class outside its network (e.g. sheet), and its
    predicted ER over the labelled ER."""
    names = [pair.name for pair in labelled_pairs(real_data)]
    real = labelled_frames(real_data, "real")
    assert real is not None and len(real.frames) == len(names), f"{real_data}: 2-D labelled pairs expected"
    out = {}
    with Segmenter(RunSpec(model, "cpu")) as seg:
        for name, frame, truth in zip(names, real.frames, real.labels, strict=True):
            labels, labelled = seg.segment(frame), truth != 0
            network = labelled_er(labels, seg.contract)
            background = float((labels[labelled] == 0).mean())
            out[name] = {
                "iou": foreground_scores(network, truth)["iou"],
                "background": background,
                "other": float((~network[labelled]).mean()) - background,
                "size": float(network.sum() / labelled.sum()),
            }
    return out


def main() -> None:
    """Print the table."""
    import tifffile

    from ernet.training.synthetic import SyntheticConfig, generate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the model before (ONNX)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after one warm-up")
    parser.add_argument("--real-data", type=Path, default=REAL_DATA, help="labelled real frames")
    args = parser.parse_args()
    models = {"before": args.baseline, **{name: embedded_model(name) for name in EMBEDDED}}
    with tempfile.TemporaryDirectory() as tmp:
        frame = Path(tmp) / "frame.tif"
        tifffile.imwrite(frame, generate(0, SyntheticConfig(height=1040, width=1392, bit_depth=16)).image)
        seconds = infer_seconds(models, frame, args.repeats)
    scores = {name: real_frame_scores(model, args.real_data) for name, model in models.items()}
    base = statistics.median(seconds["before"])
    info = machine()
    print(
        f"`python -m ernet.benchmarks.defaults --baseline {args.baseline} --repeats {args.repeats}` on "
        f"{info['cores']} cores ({info['cpu']}), ONNX Runtime {info['onnxruntime']}: ernet-infer on one "
        "generated 1040x1392 uint16 frame (median of the rounds), IoU on the real frames.\n"
    )
    frames = list(scores["before"])
    print(f"| model | ernet-infer s per frame | vs before | {' | '.join(frames)} | mean IoU |")
    print("|---|---|---|" + "---|" * len(frames) + "---|")
    for name in models:
        median = statistics.median(seconds[name])
        ious = [scores[name][f]["iou"] for f in frames]
        each = " | ".join(f"{iou:.3f}" for iou in ious)
        print(f"| {name} | {median:.2f} | {median / base:.2f}x | {each} | {statistics.fmean(ious):.3f} |")
    print("\n| model | labelled ER called background | called another class | predicted ER / labelled ER |")
    print("|---|---|---|---|")
    for name in models:
        background, other = (
            " / ".join(f"{100 * scores[name][f][k]:.1f} %" for f in frames) for k in ("background", "other")
        )
        size = " / ".join(f"{scores[name][f]['size']:.2f}" for f in frames)
        print(f"| {name} | {background} | {other} | {size} |")


if __name__ == "__main__":
    main()
