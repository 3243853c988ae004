"""The embeddable API: a model on a backend, its normalisation, and the tiler."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from .backends import Backend, BackendOptions, open_backend
from .errors import InputError, ModelError
from .metadata import ModelMetadata
from .pipeline import prefetch
from .preprocess import Normalization
from .tiling import stitch_bands, tiled_logits

#: Where an install carries its default model.
DEFAULT_MODEL = Path(__file__).parent / "models" / "default.onnx"
#: Tile overlap as a fraction of the tile side, chosen by measurement (README, *Tiling*).
OVERLAP_FRACTION = 0.25
ProbabilityFormat = Literal["float32", "float16", "uint8"]


def default_model_path() -> Path:
    """The model embedded in the package; ModelError if this install has none."""
    if not DEFAULT_MODEL.is_file():
        raise ModelError(
            f"{DEFAULT_MODEL}: no default model is embedded in this install; pass --model MODEL.onnx"
        )
    return DEFAULT_MODEL


@dataclass(frozen=True)
class Prediction:
    """What one frame's inference gives: class ids, and class probabilities when asked."""

    labels: np.ndarray  # H x W uint8
    probabilities: np.ndarray | None = None  # K x H x W, float32/float16, or uint8 scaled to 0-255


class Segmenter:
    """Segment ER frames with an ERNet model; construct once, call per frame.

    >>> with Segmenter("model.onnx") as seg:      # doctest: +SKIP
    ...     labels = seg.segment(frame)          # H x W uint8 class ids

    ``tile`` defaults to the training crop size recorded in the model, ``overlap``
    to a quarter of the tile; ``batch`` tiles run per model call. The model is
    loaded and warmed up (buffers allocated, GPU engines built) on construction.
    Calls are serialised, so one instance may be shared between threads.
    """

    def __init__(
        self,
        model: Path | str | None = None,
        *,
        provider: str = "auto",
        fallback: bool = False,
        tile: int | None = None,
        overlap: int | None = None,
        batch: int = 4,
        threads: int | None = None,
        fp16: bool = False,
        engine: Path | str | None = None,
        rebuild_engine: bool = False,
        backend: Backend | None = None,
        warmup: bool = True,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if tile is not None and tile < 1:
            raise ValueError("tile must be at least 1")
        if backend is None:
            # A given engine carries its model; without one, the embedded model is the default.
            self.model_path: Path | None = Path(model) if model else None if engine else default_model_path()
            options = BackendOptions(
                provider,
                fallback,
                threads,
                tile,
                batch,
                fp16,
                engine=Path(engine) if engine else None,
                rebuild_engine=rebuild_engine,
            )
            backend = open_backend(self.model_path, options)
        else:
            self.model_path = None
        self.backend = backend
        self.metadata: ModelMetadata = self.backend.metadata
        self.tile = tile or self.metadata.tile_size
        self.overlap = int(self.tile * OVERLAP_FRACTION) if overlap is None else overlap
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"need 0 <= overlap < tile (tile {self.tile}, overlap {self.overlap})")
        self.batch = batch
        self._lock = threading.Lock()
        if warmup:
            channels = self.metadata.config.in_channels
            self.backend.run(np.zeros((batch, channels, self.tile, self.tile), np.float32))

    @property
    def normalization(self) -> Normalization:
        return self.metadata.normalization

    @property
    def n_classes(self) -> int:
        return self.metadata.config.n_classes

    def describe(self) -> dict[str, Any]:
        """How frames are processed, for the metadata of outputs."""
        return {
            "model": str(self.model_path) if self.model_path else None,
            "backend": self.backend.description,
            "tile": self.tile,
            "overlap": self.overlap,
            "class_names": list(self.metadata.class_names),
            "normalization": self.normalization.to_dict(),
        }

    def prepare(self, frame: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
        """Normalise one H x W frame (C x H x W for C > 1 channels) to float32 model input.

        ``value_range`` fixes the intensities mapped to 0 and 1 (e.g. a whole stack's);
        by default it is computed on this frame.
        """
        channels = self.metadata.config.in_channels
        image = np.asarray(frame)
        if image.ndim == 2 and channels == 1:
            image = image[None]
        if image.ndim != 3 or image.shape[0] != channels or 0 in image.shape:
            raise InputError(f"frame of shape {np.shape(frame)} does not fit a {channels}-channel model")
        if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
            raise InputError(f"unsupported pixel type {image.dtype}")
        if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
            raise InputError("frame has NaN or infinite pixels")
        return self.normalization.apply(image, value_range)

    def bands(self, image: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Blended logits of a prepared image as row bands (see :func:`stitch_bands`)."""
        return stitch_bands(image, self.backend.run, self.n_classes, self.tile, self.overlap, self.batch)

    def predict_prepared(
        self, image: np.ndarray, probabilities: ProbabilityFormat | None = None
    ) -> Prediction:
        """Labels (and probabilities) of a prepared C x H x W image, finished band by band."""
        _, height, width = image.shape
        labels = np.empty((height, width), np.uint8)
        probs = None if probabilities is None else np.empty((self.n_classes, height, width), probabilities)
        with self._lock:
            for y0, band in self.bands(image):
                rows = slice(y0, y0 + band.shape[1])
                labels[rows] = class_ids(band)
                if probs is not None:
                    p = softmax(band)
                    probs[:, rows] = np.rint(p * 255) if probabilities == "uint8" else p
        return Prediction(labels, probs)

    def predict(
        self,
        frame: np.ndarray,
        value_range: tuple[float, float] | None = None,
        probabilities: ProbabilityFormat | None = None,
    ) -> Prediction:
        """Labels of one frame, and its class probabilities in the format asked for."""
        return self.predict_prepared(self.prepare(frame, value_range), probabilities)

    def segment(self, frame: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
        """Class ids (H x W uint8) of one frame."""
        return self.predict(frame, value_range).labels

    def probabilities(
        self,
        frame: np.ndarray,
        value_range: tuple[float, float] | None = None,
        dtype: ProbabilityFormat = "float32",
    ) -> np.ndarray:
        """Class probabilities (K x H x W) of one frame."""
        prediction = self.predict(frame, value_range, probabilities=dtype)
        assert prediction.probabilities is not None
        return prediction.probabilities

    def logits(self, frame: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
        """Blended class logits (K x H x W float32) of one frame."""
        image = self.prepare(frame, value_range)
        with self._lock:
            return tiled_logits(image, self.backend.run, self.n_classes, self.tile, self.overlap, self.batch)

    def segment_frames(self, frames: Iterable[np.ndarray], queue_size: int = 2) -> Iterator[np.ndarray]:
        """Class-id masks of ``frames`` in order, each normalised on its own; frames are
        drawn (and normalised) on a background thread, at most ``queue_size`` ahead."""
        for image in prefetch((self.prepare(f) for f in frames), queue_size):
            yield self.predict_prepared(image).labels

    def close(self) -> None:
        """Release the model; the segmenter cannot be used afterwards."""
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def class_ids(logits: np.ndarray) -> np.ndarray:
    """Argmax over the class axis (0); for two classes a comparison, several times faster."""
    if logits.shape[0] == 2:
        return logits[1] > logits[0]  # ties go to class 0, as with argmax
    return logits.argmax(axis=0)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis (0) of K x ... float32 logits."""
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    shifted /= shifted.sum(axis=0, keepdims=True)
    return shifted
