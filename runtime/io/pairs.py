"""Labelled data on disk: images paired with their label masks by name."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..errors import InputError
from .readers import known_suffixes


class LabelledPair(NamedTuple):
    """An image (or stack) and its label file."""

    name: str
    image: Path
    mask: Path


def _images_by_name(folder: Path, tag: str = "") -> dict[str, Path]:
    """Image files of ``folder`` whose stem ends with ``tag``, keyed by the stem without it."""
    suffixes = known_suffixes()
    return {
        p.stem.removesuffix(tag): p
        for p in folder.iterdir()
        if p.suffix.lower() in suffixes and p.stem.endswith(tag)
    }


def labelled_pairs(folder: Path) -> list[LabelledPair]:
    """``NAME_image.EXT`` / ``NAME_mask.EXT`` pairs of ``folder``, or files of the same name
    in its ``images/`` and ``masks/``; sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: data folder not found")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        images, masks = _images_by_name(folder / "images"), _images_by_name(folder / "masks")
    else:
        images, masks = _images_by_name(folder, "_image"), _images_by_name(folder, "_mask")
    names = sorted(images.keys() & masks.keys())
    if not names:
        raise InputError(
            f"{folder}: no image/mask pairs (NAME_image.tif + NAME_mask.tif, or images/ + masks/)"
        )
    return [LabelledPair(n, images[n], masks[n]) for n in names]
