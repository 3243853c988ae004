"""``ernet-analyze``: ER network metrics of label masks, a CSV row per frame."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from ..analysis import (
    SUCCESSOR_COLUMNS,
    AnalysisOptions,
    FractionsTable,
    MetricsRecorder,
    frame_indices,
    require_analysis_libraries,
    require_label_frame,
)
from ..contract import BINARY_CLASSES
from ..errors import InputError
from ..io import input_stem, open_image, output_path, refuse_existing
from ..progress import progress
from .infer import FIGURES_HELP, FRACTIONS_HELP, finish_fractions
from .policy import Failures, command, typer_app

app = typer_app(extra="analysis")


def parse_classes(text: str | None) -> tuple[int, ...] | None:
    """``"1,3"`` -> ``(1, 3)``; None for all classes but background."""
    if not text:
        return None
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"expected class ids such as 1,3, got {text!r}", param_hint="--classes"
        ) from None


@app.command()
@command
def analyze(
    masks: Annotated[list[Path], typer.Argument(help="Label masks (TIFF/PNG; class ids), frames or stacks.")],
    pixel_size: Annotated[
        float | None, typer.Option(help="Pixel side in µm; default: from the file, else lengths in px.")
    ] = None,
    classes: Annotated[
        str | None, typer.Option(help="Class ids forming the network, e.g. '1' or '1,3'; default: all but 0.")
    ] = None,
    min_object_size: Annotated[
        int, typer.Option(help="Remove ER pieces smaller than this many pixels first.")
    ] = AnalysisOptions.min_object_size,
    min_spur_length: Annotated[
        float, typer.Option(help="Prune free-end branches shorter than this many pixels.")
    ] = AnalysisOptions.min_spur_length,
    merge_junctions_within: Annotated[
        float, typer.Option(help="Merge junctions joined by a branch shorter than this many pixels.")
    ] = AnalysisOptions.merge_junctions_within,
    figures: Annotated[bool, typer.Option(help=FIGURES_HELP)] = False,
    successor_columns: Annotated[
        bool, typer.Option(help="Only the successor's (ERnet-v2) metric set, in its order (see README).")
    ] = False,
    fractions_csv: Annotated[
        Path | None,
        typer.Option(help=FRACTIONS_HELP),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder; default: beside each mask.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """ER network metrics of each MASK; writes <stem>_metrics.csv (a row per frame, units in the header)."""
    chosen = parse_classes(classes)
    require_analysis_libraries(figures)
    targets = [output_path(m, "metrics", out, ".csv") for m in masks]
    for target in [*targets, *([fractions_csv] if fractions_csv else [])]:
        refuse_existing(target, overwrite)
    fractions = FractionsTable(fractions_csv, overwrite) if fractions_csv else None
    failures = Failures()
    for source, target in zip(masks, targets, strict=True):
        with failures.each(source):
            image = open_image(source)
            if not np.issubdtype(image.dtype, np.integer):
                raise InputError(f"{source}: a label mask holds integer class ids, not {image.dtype}")
            # A mask ernet-infer wrote names its classes and those forming the network.
            class_names = tuple(image.description.get("class_names", BINARY_CLASSES))
            network = image.description.get("network_classes") if len(class_names) > 2 else None
            if fractions:
                fractions.check_classes(class_names, source)
            options = AnalysisOptions(
                classes=chosen or (tuple(network) if network else None),
                min_object_size=min_object_size,
                min_spur_length=min_spur_length,
                merge_junctions_within=merge_junctions_within,
                pixel_size=pixel_size or image.calibration.micrometres_per_pixel,
            )
            recorder = MetricsRecorder(
                target,
                image.axes,
                image.shape,
                class_names,
                options=options,
                figures=figures,
                columns=SUCCESSOR_COLUMNS if successor_columns else None,
                name=input_stem(source),
                frame_interval=image.calibration["T"],
                overwrite=overwrite,
            )
            name = str(image.description.get("source", source.name))
            indices = frame_indices(image.axes, image.shape)
            with progress(image.n_frames, source.name, quiet=quiet) as advance:
                for index, labels in enumerate(image.frames()):
                    require_label_frame(labels, source, index)
                    recorder.add(labels)
                    if fractions:
                        fractions.add(name, indices[index], labels, class_names)
                    advance(1)
            recorder.finish()
            if not quiet:
                unit = "µm" if options.pixel_size else "px (no pixel size)"
                print(f"wrote {target} ({image.n_frames} frames, lengths in {unit})", file=sys.stderr)
    if fractions:
        finish_fractions(fractions, failures, quiet)
    failures.exit()


def main() -> None:
    """Entry point of ``ernet-analyze``."""
    app()
