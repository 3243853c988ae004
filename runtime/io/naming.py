"""Where outputs go: ``DIR/<stem>_<kind><suffix>``, whatever the input's or output's format."""

from __future__ import annotations

from pathlib import Path

from .tiff_sequence import glob_folder, is_glob

#: Suffixes that count as one (``cells.ome.tif`` has the stem ``cells``).
COMPOUND_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr")
#: The format of image outputs unless asked otherwise.
DEFAULT_IMAGE_SUFFIX = ".tif"
#: The suffix of OME-Zarr outputs (of zarr inputs, or asked for).
ZARR_IMAGE_SUFFIX = ".ome.zarr"


def dataset_path(source: Path) -> Path:
    """The path that names an input: a glob's folder (``frames/*.tif`` -> ``frames``),
    a folder given as ``.`` or ``..`` resolved to its name, else ``source``."""
    if is_glob(source):
        source = glob_folder(source)
    return source.resolve() if source.name in ("", "..") else source


def input_stem(source: Path) -> str:
    """The name of an input without its (possibly compound) suffix (a glob's: its folder's)."""
    source = dataset_path(source)
    name = source.name
    for compound in COMPOUND_SUFFIXES:
        if name.lower().endswith(compound):
            return name[: -len(compound)]
    return source.stem


def output_path(
    source: Path, kind: str, out_dir: Path | None = None, suffix: str = DEFAULT_IMAGE_SUFFIX
) -> Path:
    """Where an output of ``source`` goes: ``DIR/<stem>_<kind><suffix>`` (DIR defaults to
    the folder holding the input; a glob's outputs go beside its folder, as a folder's do)."""
    return (out_dir or dataset_path(source).parent) / f"{input_stem(source)}_{kind}{suffix}"


def mask_path(source: Path, out_dir: Path | None = None) -> Path:
    """Where ``ernet-infer`` writes the mask of ``source``: ``DIR/<stem>_mask.tif``."""
    return output_path(source, "mask", out_dir)
