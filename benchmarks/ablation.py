"""Which generator feature matters: train on generated data with and without each one,
score each model on the labelled real frames.

``python -m ernet.benchmarks.ablation --out build/ablation [--rows 2,3]`` runs, for
every row of :data:`ROWS` (or those named), what ``make train-default`` runs, with the
row's ``ernet-simulate --set`` changes: ``ernet-simulate`` (the embedded default's data),
``ernet-train`` (its recipe: the ``shipped`` preset, seed 0, noise floor 30),
``ernet-export`` (fp32, its minimum object size), then ``ernet-validate`` on
``../shared/data/er-real``, and prints a Markdown table of the real frames' IoU per row.
The first row is the binary default itself. About 45 minutes of training per row on
2 CPU cores; every step's files stay under ``--out/rowN``, and a row whose validation
exists is not run again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

#: Generator changes of each row (``ernet-simulate --set``), against the full generator.
ROWS: dict[str, list[str]] = {
    "full generator": [],
    "without sheets (a saturated disc) and SBT": ["sheet_extent=[0,0]"],
    "without SBT": ["sbt_band=[0,0]"],
    "without tubule variety (width, brightness along)": ["width_spread=[0,0]", "along_variation=[0,0]"],
    "the generator before (none of the four)": [
        "sheet_extent=[0,0]",
        "sbt_band=[0,0]",
        "width_spread=[0,0]",
        "along_variation=[0,0]",
    ],
}
#: The embedded default's data, training and export arguments (the Makefile's).
DATA = ["--count", "200", "--size", "512x512", "--seed", "1", "--empty-fraction", "0.1"]
RECIPE = ["--preset", "shipped", "--seed", "0", "--noise-floor", "30"]
EXPORT = ["--variants", "", "--no-engine", "--min-object-size", "64", "--overwrite"]


def _run(args: list[str], log: Path) -> None:
    with log.open("a") as out:
        print("$ " + " ".join(args), file=out, flush=True)
        subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=True)


def run_row(name: str, changes: list[str], folder: Path, bin_dir: Path, classes: str) -> dict:
    """Simulate, train, export and validate one row; its validation.json as a dict."""
    result = folder / "validate" / "validation.json"
    if not result.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "log.txt"
        sets = [a for c in changes for a in ("--set", c)]
        class_names = "background,ER" if classes == "binary" else "background,tubule,sheet,SBT"
        _run([str(bin_dir / "ernet-simulate"), str(folder / "data"), *DATA, "--classes", classes, *sets], log)
        _run([str(bin_dir / "ernet-train"), str(folder / "data"), "--out", str(folder), *RECIPE,
              "--classes", class_names, "--quiet"], log)  # fmt: skip
        _run(
            [
                str(bin_dir / "ernet-export"),
                str(folder / "best.pt"),
                "-o",
                str(folder / "model.onnx"),
                *EXPORT,
            ],
            log,
        )
        model, report = str(folder / "model.onnx"), str(folder / "validate")
        _run([str(bin_dir / "ernet-validate"), "--model", model, "--out", report], log)
    return json.loads(result.read_text())


def main() -> None:
    """Run every row (or those named) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/ablation"))
    parser.add_argument("--classes", choices=("binary", "four"), default="binary")
    parser.add_argument("--rows", default="", help="comma-separated row numbers (1-based); default: all")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    names = list(ROWS)
    chosen = [names[int(i) - 1] for i in args.rows.split(",")] if args.rows else names
    print("| generator | real IoU per frame | mean IoU | mean Dice |")
    print("|---|---|---|---|")
    for name in chosen:
        result = run_row(name, ROWS[name], args.out / f"row{names.index(name) + 1}", bin_dir, args.classes)
        per_frame = " / ".join(f"{r['iou']:.3f}" for r in result["frames"])
        print(
            f"| {name} | {per_frame} | {result['mean']['iou']:.3f} | {result['mean']['dice']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
