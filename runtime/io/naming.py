"""Where outputs go: ``DIR/<stem>_<kind><suffix>``, whatever the input's or output's format."""

from __future__ import annotations

from pathlib import Path

#: Suffixes that count as one (``cells.ome.tif`` has the stem ``cells``).
COMPOUND_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr")
#: The format of image outputs unless asked otherwise.
DEFAULT_IMAGE_SUFFIX = ".tif"


def input_stem(source: Path) -> str:
    """The name of an input without its (possibly compound) suffix."""
    name = source.name
    for compound in COMPOUND_SUFFIXES:
        if name.lower().endswith(compound):
            return name[: -len(compound)]
    return source.stem


def output_path(
    source: Path, kind: str, out_dir: Path | None = None, suffix: str = DEFAULT_IMAGE_SUFFIX
) -> Path:
    """Where an output of ``source`` goes: ``DIR/<stem>_<kind><suffix>`` (DIR defaults to
    the input's folder)."""
    return (out_dir or source.parent) / f"{input_stem(source)}_{kind}{suffix}"


def mask_path(source: Path, out_dir: Path | None = None) -> Path:
    """Where ``ernet-infer`` writes the mask of ``source``: ``DIR/<stem>_mask.tif``."""
    return output_path(source, "mask", out_dir)
