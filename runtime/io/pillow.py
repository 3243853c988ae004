"""PNG, JPEG and BMP frames through Pillow, read whole (they hold one frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, first_line
from .source import ArrayPages, Layout

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM")


def probe(path: Path) -> bool:
    """Whether ``path`` is a file that starts like a PNG, JPEG or BMP."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return any(head.startswith(magic) for magic in _MAGIC)


def layout(path: Path) -> Layout:
    """The one frame of an image file; grey stored as RGB(A) is read as grey."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            if im.mode == "P":
                data = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
            else:
                data = np.asarray(im)
    except Exception as exc:
        raise InputError(f"{path}: not a readable image ({first_line(exc)})") from None
    if data.ndim == 3:
        colour = data[..., : min(3, data.shape[-1])]
        if (colour == colour[..., :1]).all():  # grey stored as RGB(A): no channel to choose
            data = colour[..., 0]
    axes = "YXS" if data.ndim == 3 else "YX"
    return Layout(path, axes, data.shape, data.dtype, axes, ArrayPages(data[None]))
