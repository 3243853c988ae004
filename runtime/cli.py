"""``ernet-infer``: segment images and stacks. Thin: parse, call the API, report."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from .backends import PROVIDER_CHOICES
from .errors import ErnetError, OutputError, first_line
from .io import mask_path, read_image, write_mask
from .progress import progress
from .segmenter import Segmenter

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def fail(message: str) -> None:
    """Print one error line to stderr."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def plan_outputs(inputs: list[Path], out_dir: Path | None, overwrite: bool) -> list[Path]:
    """Output path per input; refuses to overwrite an input, or an output unless asked."""
    sources = {p.resolve() for p in inputs}
    outputs = [mask_path(p, out_dir) for p in inputs]
    seen: set[Path] = set()
    for source, target in zip(inputs, outputs, strict=True):
        resolved = target.resolve()
        if resolved in sources:
            raise OutputError(f"{target}: output for {source} would overwrite an input")
        if resolved in seen:
            raise OutputError(f"{target}: two inputs would write the same output")
        seen.add(resolved)
        if target.exists() and not overwrite:
            raise OutputError(f"{target}: output exists (pass --overwrite to replace it)")
    return outputs


@app.command()
def infer(
    inputs: Annotated[
        list[Path], typer.Argument(help="Images (TIFF, PNG, JPG) or TIFF stacks.", show_default=False)
    ],
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="ERNet ONNX model; default: the embedded one.")
    ] = None,
    provider: Annotated[
        str, typer.Option(help=f"Execution provider: {'|'.join(PROVIDER_CHOICES)}.")
    ] = "auto",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder; default: beside each input.")
    ] = None,
    tile: Annotated[int | None, typer.Option(help="Tile size; default: the model's training crop.")] = None,
    overlap: Annotated[int | None, typer.Option(help="Tile overlap in pixels; default: tile / 4.")] = None,
    batch: Annotated[int, typer.Option(help="Tiles per model call.")] = 4,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Segment ER in each INPUT; writes <stem>_mask.tif (uint8 class ids, input axes)."""
    try:
        outputs = plan_outputs(inputs, out, overwrite)
        segmenter = Segmenter(model, provider=provider, tile=tile, overlap=overlap, batch=batch)
    except (ErnetError, ValueError) as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    if not quiet:
        for name, reason in segmenter.backend.fallbacks:
            print(f"note: provider {name} not used: {reason}", file=sys.stderr)
        print(
            f"model: {segmenter.model_path} on {segmenter.backend.description}"
            f" (tile {segmenter.tile}, overlap {segmenter.overlap}, batch {segmenter.batch})",
            file=sys.stderr,
        )
    failures = frames = 0
    pixels = 0
    start = time.perf_counter()
    for source, target in zip(inputs, outputs, strict=True):
        try:
            image = read_image(source)
            mask = np.empty(image.data.shape, np.uint8)
            flat = mask.reshape(-1, *image.frame_shape)
            with progress(image.n_frames, source.name, quiet=quiet) as advance:
                for i, frame in enumerate(image.frames()):
                    flat[i] = segmenter.segment(frame)
                    advance(1)
            write_mask(target, mask, image, overwrite=overwrite)
        except ErnetError as exc:
            fail(str(exc))
            failures += 1
            continue
        except (OSError, RuntimeError, MemoryError) as exc:  # disk full, model runtime failure
            fail(f"{source}: {type(exc).__name__}: {first_line(exc)}")
            failures += 1
            continue
        frames += image.n_frames
        pixels += image.data.size
        if not quiet:
            print(f"wrote {target}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    mpix = pixels / 1e6
    print(
        f"{frames} frames, {mpix:.2f} MPix in {elapsed:.2f} s: {mpix / max(elapsed, 1e-9):.2f} MPix/s "
        f"on {segmenter.backend.description}" + (f"; {failures} input(s) failed" if failures else "")
    )
    if failures:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of ``ernet-infer``."""
    app()
