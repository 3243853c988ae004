"""Opening inputs: the registered readers, chosen by probing the path.

A reader is a name, the suffixes it claims, a ``probe`` of a path (a file's first
bytes, a directory store's layout) and a ``layout`` of what it recognised. The first
reader whose probe accepts a path opens it; failing that, the reader claiming its
suffix does (and says what is wrong with the file). Directories are probed like files,
so a store format (a zarr directory) is one more reader; a directory no reader claims,
or a glob (``'frames/*.tif'``), is a sequence of TIFFs, one per time point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from . import pillow, tiff, tiff_sequence
from .omezarr import reader as omezarr
from .source import Layout, Source, one_series, select


@dataclass(frozen=True)
class Reader:
    """One input format: ``layout`` describes a file of one series; formats holding
    several series (a bioformats2raw store) give ``series_layout`` (path, series number)."""

    name: str
    suffixes: tuple[str, ...]
    probe: Callable[[Path], bool]
    layout: Callable[[Path], Layout]
    series_layout: Callable[[Path, int], Layout] | None = None

    def open(self, path: Path, series: int | None = None) -> Layout:
        """The layout of ``path`` (of its ``series``; None: the first)."""
        if self.series_layout is not None:
            return self.series_layout(path, series or 0)
        one_series(path, series or 0)
        return self.layout(path)


_READERS: list[Reader] = [
    Reader("TIFF", tiff.SUFFIXES, tiff.probe, tiff.layout),
    Reader("image", pillow.SUFFIXES, pillow.probe, pillow.layout),
    Reader("zarr", omezarr.SUFFIXES, omezarr.probe, omezarr.layout, omezarr.layout),
]
#: Folders no other reader claims, and globs: one TIFF per time point.
_TIFF_SEQUENCE = Reader("TIFF sequence", (), tiff_sequence.probe, tiff_sequence.layout)


def register_reader(reader: Reader) -> None:
    """Make ``reader`` available to :func:`open_image` (probed after the built-in ones)."""
    _READERS.append(reader)


def known_suffixes() -> tuple[str, ...]:
    """Every suffix a registered reader claims."""
    return tuple(s for reader in _READERS for s in reader.suffixes)


def reader_for(path: Path) -> Reader:
    """The reader that opens ``path``; InputError naming the path if none does."""
    if tiff_sequence.is_glob(path):
        return _TIFF_SEQUENCE
    if path.is_symlink() and not path.exists():
        raise InputError(f"{path}: a broken or looping symbolic link")
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file() and not path.is_dir():  # probing would block on a FIFO
        raise InputError(f"{path}: not a regular file (a device, FIFO or socket)")
    for reader in _READERS:
        if reader.probe(path):
            return reader
    if path.is_dir():
        if _TIFF_SEQUENCE.probe(path):
            return _TIFF_SEQUENCE
        raise InputError(
            f"{path}: a directory, not an image or an image store; to segment the images in it, "
            f"give them: {path / '*'} (it holds no TIFF files and no zarr metadata)"
        )
    suffix = path.suffix.lower()
    for reader in _READERS:
        if suffix in reader.suffixes:
            return reader  # its layout says what is wrong with the file
    raise InputError(f"{path}: unsupported file type '{suffix}' (use {', '.join(known_suffixes())})")


def open_image(
    path: Path | str,
    channel: int | None = None,
    index: Mapping[str, int] | None = None,
    series: int | None = None,
) -> Source:
    """Open a 2-D image or a stack whose leading axes are time and/or z.

    ``path`` is a file, a store (zarr), a folder of TIFFs or a glob of them.
    ``channel`` picks one channel of a multichannel or RGB input; ``index`` fixes
    other axes (e.g. ``{"Q": 0}``) when there are more than two leading ones; ``series``
    picks an image of a store holding several (bioformats2raw; None: the first).
    Raises :class:`InputError` with one line naming the file and the problem.
    """
    path = Path(path)
    return select(reader_for(path).open(path, series), channel, dict(index or {}))
