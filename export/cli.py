"""``ernet-export``: checkpoint -> verified ONNX (fp32, fp16, int8) and a TensorRT engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ernet.runtime.cli.policy import command, missing_extra, typer_app
from ernet.runtime.errors import ErnetError
from ernet.runtime.evaluation import REAL_DATA

app = typer_app(extra="export")


@app.command()
@command
def export(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="Checkpoint (ours, or a published ERNet or ERnet-v2 one), or an exported fp32 .onnx "
            "(e.g. the embedded default model) to derive the variants from."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="fp32 ONNX file; variants are written beside it.",
            show_default="model.onnx in the current folder",
        ),
    ] = Path("model.onnx"),
    variants: Annotated[
        str, typer.Option(help="Reduced-precision variants to derive: 'fp16,int8', one of them, or ''.")
    ] = "fp16,int8",
    engine: Annotated[
        bool, typer.Option(help="Build a TensorRT engine too, where TensorRT and a GPU are present.")
    ] = True,
    real_data: Annotated[
        Path,
        typer.Option(
            help="Labelled real frames for the accuracy checks (skipped if absent).",
            show_default="$ERNET_REAL_DATA, else the project's real frames",
        ),
    ] = REAL_DATA,
    opset: Annotated[int, typer.Option(help="ONNX opset, 18-20.")] = 18,
    tile_size: Annotated[
        int | None, typer.Option(help="Override the tile size recorded in the model.")
    ] = None,
    min_object_size: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Record the model's minimum object size: its masks drop foreground pieces under "
            "this many pixels unless ernet-infer is told otherwise (0: keep all).",
            show_default="the checkpoint's, 0 unless set",
        ),
    ] = None,
    bioimageio: Annotated[
        Path | None,
        typer.Option(
            help="Also write a bioimage.io model package (a .zip) of the fp32 model, validated and "
            "tested by bioimageio.core (extra 'bioimageio').",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing artefacts.")] = False,
) -> None:
    """Export CHECKPOINT to ONNX and its variants, each checked before it is written,
    each with its report saved beside it (NAME.parity.json)."""
    from .artefacts import export_all

    if bioimageio is not None:
        try:
            from .bioimageio import require_bioimageio_libraries

            require_bioimageio_libraries()
        except ModuleNotFoundError as exc:
            raise ErnetError(missing_extra("ernet-export", "bioimageio", exc.name or "bioimageio")) from None

    export_all(
        checkpoint,
        output,
        variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
        engine=engine,
        real_data=real_data,
        opset=opset,
        tile_size=tile_size,
        min_object_size=min_object_size,
        bioimageio=bioimageio,
        overwrite=overwrite,
    )


def main() -> None:
    """Entry point of ``ernet-export``."""
    app()
