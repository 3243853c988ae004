"""``ernet-export``: checkpoint -> verified ONNX."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ernet.runtime.errors import ErnetError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint (ours or a published ERNet one).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="ONNX file to write.")] = Path("model.onnx"),
    opset: Annotated[int, typer.Option(help="ONNX opset, 18-20.")] = 18,
    tile_size: Annotated[
        int | None, typer.Option(help="Override the tile size recorded in the model.")
    ] = None,
    overwrite: bool = False,
) -> None:
    """Export CHECKPOINT to ONNX and verify it against PyTorch before writing."""
    from .onnx import export_checkpoint

    try:
        results = export_checkpoint(checkpoint, output, opset=opset, tile_size=tile_size, overwrite=overwrite)
    except (ErnetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    for result in results:
        print(result)
    print(f"wrote {output}")


def main() -> None:
    """Entry point of ``ernet-export``."""
    app()
