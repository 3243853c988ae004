"""What both acquisition examples share: a stream that saves each frame's labels."""

from __future__ import annotations

from pathlib import Path

from ernet.runtime import FrameStream, Segmenter, StreamResult
from ernet.runtime.io import write_tiff


def saving_stream(segmenter: Segmenter, out_dir: Path, **stream_options: object) -> FrameStream:
    """A :class:`FrameStream` writing ``OUT/<tag>_mask.tif`` (uint8 class ids) per frame."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def save(result: StreamResult) -> None:
        write_tiff(out_dir / f"{result.tag}_mask.tif", result.labels, "YX", overwrite=True)

    return FrameStream(segmenter, save, **stream_options)  # type: ignore[arg-type]
