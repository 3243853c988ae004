"""A folder of TIFFs, or a glob of them (``'frames/*.tif'``), read as one dataset.

Each file is one step along a leading ``T`` axis, in natural order (``f2`` before
``f10``, as tifffile sorts); every file must hold the shape and pixel type of the first,
whose calibration the dataset takes. Files are described and read when their frames are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputError
from . import tiff
from .source import Layout

#: Characters that make a path a pattern (as :mod:`glob` reads them).
GLOB_CHARACTERS = "*?["


def is_glob(path: Path) -> bool:
    """Whether ``path`` is a pattern of file names (a glob the shell did not expand)
    rather than a file."""
    return any(c in str(path) for c in GLOB_CHARACTERS) and not path.exists() and not path.is_symlink()


def glob_folder(pattern: Path) -> Path:
    """The folder of a pattern's files: its last part without glob characters
    (``frames/*.tif`` -> ``frames``)."""
    folder = pattern.parent
    while any(c in folder.name for c in GLOB_CHARACTERS):
        folder = folder.parent
    return folder


def probe(path: Path) -> bool:
    """Whether ``path`` is a glob, or a directory holding TIFF files."""
    return is_glob(path) or (path.is_dir() and bool(_folder_tiffs(path)))


def _folder_tiffs(folder: Path) -> list[str]:
    """The TIFF files of ``folder`` (by suffix; hidden files left out)."""
    return [
        str(p)
        for p in folder.iterdir()
        if p.suffix.lower() in tiff.SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]


def files(path: Path) -> list[Path]:
    """The files of the sequence ``path`` (a glob or a folder), in natural order."""
    try:
        sequence = tifffile.TiffSequence(str(path) if is_glob(path) else _folder_tiffs(path), sort=True)
    except ValueError:  # tifffile: "no files found"
        raise InputError(f"{path}: no files match") from None
    return [Path(name) for name in sequence]


class _SequencePages:
    """Pages of the files of a sequence: page ``k`` is page ``k % per_file`` of file
    ``k // per_file``; each file is described (and checked against the first) when its
    first page is read."""

    def __init__(self, paths: list[Path], first: Layout) -> None:
        self.paths, self.first = paths, first
        self.per_file = int(np.prod(first.shape[: len(first.axes) - len(first.page_axes)], dtype=np.int64))
        self._current = first

    def read(self, frames: Iterable[tuple[int, int]]) -> Iterator[np.ndarray]:
        for i, k in frames:
            n, page = divmod(k, self.per_file)
            yield from self._file(n).pages.read([(i, page)])

    def _file(self, n: int) -> Layout:
        """The layout of file ``n``, the last one kept for the pages that follow."""
        path, current = self.paths[n], self._current
        if current.path != path:
            current = tiff.layout(path)
            first = self.first
            if (current.shape, current.dtype) != (first.shape, first.dtype):
                raise InputError(
                    f"{path}: shape {current.shape} {current.dtype}, unlike the first file of the sequence "
                    f"({first.path.name}: {first.shape} {first.dtype}); its files must all be alike"
                )
            self._current = current
        return current


def layout(path: Path) -> Layout:
    """The files of a folder or glob as one stack along a leading ``T`` axis, described by
    the first file (axes, shape, pixel type, calibration)."""
    paths = files(path)
    first = tiff.layout(paths[0])
    return Layout(
        path,
        "T" + first.axes,
        (len(paths), *first.shape),
        first.dtype,
        first.page_axes,
        _SequencePages(paths, first),
        first.calibration,
        first.description,
    )
