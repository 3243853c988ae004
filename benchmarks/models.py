"""The deployable models side by side on this machine: the embedded default (ERNet) and
ERnet-v2's four-class Swin network in its released configuration.

``python -m ernet.benchmarks.models`` times ``Segmenter.segment`` (as ``ernet-infer``
runs it by default: on the CPU whole frames, or the largest tiles the memory allows) on
a uint16 frame, and ERnet-v2's own method beside it: PyTorch eager on the whole frame,
as its inference script runs it. ERnet-v2's released weights are not needed: random
weights in the released configuration (the speed does not depend on them). Each model
is released before the next is opened. Needs the ``export`` extra (torch, onnx).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.backends import physical_cores

from .comparison import export_random
from .measure import timings, uint16_frame


def onnx_row(name: str, model: Path, frame: np.ndarray, repeats: int) -> dict[str, Any]:
    """One model through the runtime on ``frame``: its size, tiling and seconds per frame."""
    from ernet.training.models import get_architecture

    with Segmenter(RunSpec(model, "cpu")) as seg:
        seconds = statistics.median(timings(lambda: seg.segment(frame), repeats))
        meta = seg.metadata
        registered = get_architecture(meta.architecture.name)
        spec = registered.complete(meta.architecture)
        return {
            "model": name,
            "architecture": f"{spec.name} {registered.label(spec)}",
            "classes": len(seg.contract.class_names),
            "mflop_per_pixel": registered.flops_per_pixel(spec, seg.contract) / 1e6,
            "activation_bytes_per_pixel": seg.contract.tiles.activation_bytes,
            "tiling": seg.plan.fitted(*frame.shape).summary(),
            "seconds": seconds,
        }


def torch_whole_frame(checkpoint: Path, frame: np.ndarray, repeats: int) -> float:
    """Median seconds of ERnet-v2's own method: normalise, the whole frame through the
    network in PyTorch eager (float32, CPU), argmax."""
    import torch

    from ernet.training.checkpoint import load_checkpoint

    torch.set_num_threads(physical_cores())
    loaded = load_checkpoint(checkpoint)
    normalization = loaded.metadata.contract.normalization

    def segment() -> np.ndarray:
        with torch.inference_mode():
            logits = loaded.model(torch.from_numpy(normalization.apply(frame))[None, None])
        return logits[0].argmax(0).numpy().astype(np.uint8)

    return statistics.median(timings(segment, repeats))


def measure(height: int, width: int, repeats: int, torch_reference: bool = True) -> list[dict[str, Any]]:
    """Rows for the embedded default and ERnet-v2's released configuration."""
    from ernet.runtime.models import default_model_path
    from ernet.training.models.swin import SwinConfig, ernet_v2_contract

    frame = uint16_frame(height, width)
    rows = [onnx_row("embedded default", default_model_path(), frame, repeats)]
    spec, contract = SwinConfig().architecture(), ernet_v2_contract(SwinConfig())
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, model = export_random(spec, contract, Path(tmp))
        row = onnx_row("ERnet-v2 (released configuration)", model, frame, repeats)
        if torch_reference:
            row["torch_whole_frame_seconds"] = torch_whole_frame(checkpoint, frame, repeats)
            row["speedup"] = row["torch_whole_frame_seconds"] / row["seconds"]
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], height: int, width: int) -> list[str]:
    """The rows as a Markdown table."""
    base = rows[0]["seconds"]
    out = [
        "| model | architecture | classes | MFLOP/pixel | activations B/pixel | "
        f"tiling of a {height}x{width} frame | s per frame | vs default | PyTorch whole frame s | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        torch_s = r.get("torch_whole_frame_seconds")
        speedup = f"{r['speedup']:.2f}x" if torch_s else "-"
        out.append(
            f"| {r['model']} | {r['architecture']} | {r['classes']} | {r['mflop_per_pixel']:.3f} | "
            f"{r['activation_bytes_per_pixel'] or 'not recorded'} | {r['tiling']} | {r['seconds']:.2f} | "
            f"{r['seconds'] / base:.1f}x | {f'{torch_s:.2f}' if torch_s else '-'} | "
            f"{speedup} |"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", default="1040x1392", help="HEIGHTxWIDTH of the uint16 frame.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per model, after one warm-up.")
    parser.add_argument("--no-torch", action="store_true", help="Skip ERnet-v2's own method in PyTorch.")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    rows = measure(height, width, args.repeats, torch_reference=not args.no_torch)
    print("\n".join(markdown(rows, height, width)))


if __name__ == "__main__":
    main()
