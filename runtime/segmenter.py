"""The embeddable API: a model on a backend, its normalisation, and the tiler."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .backends import Backend, open_backend
from .errors import InputError, ModelError
from .metadata import ModelMetadata
from .preprocess import Normalization
from .tiling import tiled_logits

#: Where an install carries its default model.
DEFAULT_MODEL = Path(__file__).parent / "models" / "default.onnx"


def default_model_path() -> Path:
    """The model embedded in the package; ModelError if this install has none."""
    if not DEFAULT_MODEL.is_file():
        raise ModelError(
            f"{DEFAULT_MODEL}: no default model is embedded in this install; pass --model MODEL.onnx"
        )
    return DEFAULT_MODEL


class Segmenter:
    """Segment ER frames with an ERNet model.

    >>> seg = Segmenter("model.onnx")           # doctest: +SKIP
    >>> mask = seg.segment(frame)               # H x W uint8 class ids

    ``tile`` defaults to the training crop size recorded in the model, ``overlap``
    to a quarter of the tile; ``batch`` tiles run per model call.
    """

    def __init__(
        self,
        model: Path | str | None = None,
        *,
        provider: str = "auto",
        tile: int | None = None,
        overlap: int | None = None,
        batch: int = 4,
        backend: Backend | None = None,
    ) -> None:
        if backend is None:
            self.model_path: Path | None = Path(model) if model else default_model_path()
            backend = open_backend(self.model_path, provider)
        else:
            self.model_path = None
        self.backend = backend
        self.metadata: ModelMetadata = self.backend.metadata
        self.tile = tile or self.metadata.tile_size
        self.overlap = self.tile // 4 if overlap is None else overlap
        if self.tile < 1 or not 0 <= self.overlap < self.tile:
            raise ValueError(
                f"need tile >= 1 and 0 <= overlap < tile (tile {self.tile}, overlap {self.overlap})"
            )
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.batch = batch

    @property
    def normalization(self) -> Normalization:
        return self.metadata.normalization

    def predict_logits(self, frame: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
        """Class logits (K x H x W float32) of one H x W frame (C x H x W for C > 1 channels).

        ``value_range`` fixes the normalisation range (e.g. one computed over a whole
        stack); by default it is computed on this frame.
        """
        channels = self.metadata.config.in_channels
        image = np.asarray(frame)
        if image.ndim == 2 and channels == 1:
            image = image[None]
        if image.ndim != 3 or image.shape[0] != channels:
            raise InputError(f"frame of shape {np.shape(frame)} does not fit a {channels}-channel model")
        normalized = self.normalization.apply(image, value_range)
        return tiled_logits(
            normalized,
            self.backend.run,
            self.metadata.config.n_classes,
            self.tile,
            self.overlap,
            self.batch,
        )

    def segment(self, frame: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
        """Class ids (H x W uint8) of one frame."""
        return self.predict_logits(frame, value_range).argmax(axis=0).astype(np.uint8)

    def segment_frames(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Class-id masks of ``frames``, one by one, each normalised on its own."""
        for frame in frames:
            yield self.segment(frame)
