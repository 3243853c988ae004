"""The embeddable API: a model on a backend, its normalisation, and the tiler."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from .backends import Backend, open_backend
from .contract import ModelContract
from .errors import ErnetError, InputError, ModelError, NoContrastWarning, first_line
from .metadata import ModelMetadata
from .postprocess import (
    Prediction,
    ProbabilityFormat,
    background_prediction,
    class_ids,
    probabilities_as,
    without_small_pieces,
)
from .prefetch import prefetch
from .preprocess import Normalization
from .spec import RunSpec
from .tiling import TileGrid, TilePlan, pad_to_grid, stitch_bands, tile_batches, tiled_logits


def without_contrast(frames: list[int], total: int) -> str:
    """What to say of the ``frames`` (numbers, of ``total``) that had no contrast."""
    shown = ", ".join(map(str, frames[:5])) + (f" and {len(frames) - 5} more" if len(frames) > 5 else "")
    which = "the frame has" if total == 1 else f"{len(frames)} of {total} frames ({shown}) have"
    return f"{which} no contrast (an empty normalisation range, e.g. a constant frame): labelled background"


#: Side of the blank tile a model is checked on when opened (where tile shapes may vary).
PROBE_SIDE = 32


class Segmenter:
    """Segment ER frames with a model; construct once, call per frame.

    >>> with Segmenter("model.onnx") as seg:      # doctest: +SKIP
    ...     labels = seg.segment(frame)          # H x W uint8 class ids

    Built from a :class:`RunSpec` (or a model path; no model: the embedded default),
    with any of its fields given as keywords, e.g. ``Segmenter("m.onnx", provider="cpu")``.
    ``tile`` defaults to whole frames on the CPU where memory allows (else tiles as
    large as it allows), and to the model's training crop elsewhere; ``overlap`` to the
    crop's share of it (a quarter); ``batch`` tiles run per model call; labels leave out
    foreground pieces under the model's minimum object size (``min_object_size``). The model is
    loaded, checked and, where its tile shape is known in advance, warmed up (buffers
    allocated, GPU engines built) on construction. Calls are serialised, so one
    instance may be shared between threads.
    """

    def __init__(
        self,
        spec: RunSpec | Path | str | None = None,
        /,
        *,
        warmup: bool = True,
        backend: Backend | None = None,
        **fields: Any,
    ) -> None:
        self.spec = RunSpec.of(spec, **fields)
        #: The backend that runs the model (given, for tests and embedding, or opened from the spec).
        self.backend = backend if backend is not None else open_backend(self.spec)
        self.model_path: Path | None = self.spec.model_path if backend is None else None
        self.metadata: ModelMetadata = self.backend.metadata
        #: Tile, overlap and batch in effect: the spec resolved against the model's contract.
        self.plan: TilePlan = self.backend.plan
        #: Foreground pieces under this many pixels are background in the labels: the
        #: spec's, else the model's (0: every piece kept).
        self.min_object_size: int = (
            self.contract.min_object_size if self.spec.min_object_size is None else self.spec.min_object_size
        )
        self._lock = threading.Lock()
        self._probe()
        if warmup and self.plan.max_pixels is None:
            tiles = (self.batch, self.contract.in_channels, self.tile, self.tile)
            self.run_model(np.zeros(tiles, np.float32))

    def _probe(self) -> None:
        """Run the model on one blank tile and check its logits against its metadata, so
        that a model that does not match fails here, before any input is read."""
        name = self.model_path or self.spec.engine or "model"
        side = max(self.plan.multiple_of, PROBE_SIDE)
        channels, tile = self.contract.in_channels, self.plan.fitted(side, side).tile  # small, unless fixed
        try:
            logits = self.run_model(np.zeros((1, channels, tile, tile), np.float32))
        except (ErnetError, MemoryError):
            raise
        except Exception as exc:  # what a runtime raises for a graph that takes other tensors
            raise ModelError(
                f"{name}: fails on a float32 tile of {channels} channel(s), as its metadata describes "
                f"({first_line(exc)})"
            ) from None
        expected = (1, self.n_classes, tile, tile)
        if logits.shape != expected:
            raise ModelError(
                f"{name}: returns logits of shape {logits.shape} for a {tile}x{tile} tile; its metadata "
                f"({self.n_classes} classes) says {expected}"
            )
        if not np.isfinite(logits).all():
            raise ModelError(f"{name}: returns NaN or infinite logits for a blank tile")

    @property
    def contract(self) -> ModelContract:
        return self.metadata.contract

    @property
    def normalization(self) -> Normalization:
        return self.contract.normalization

    @property
    def n_classes(self) -> int:
        return self.contract.n_classes

    @property
    def tile(self) -> int:
        return self.plan.tile

    @property
    def overlap(self) -> int:
        return self.plan.overlap

    @property
    def batch(self) -> int:
        return self.plan.batch

    def describe(self, frame_shape: tuple[int, int] | None = None) -> dict[str, Any]:
        """How frames (of ``frame_shape``: with the tile fitted to them) are processed,
        for the metadata of outputs."""
        plan = self.plan.fitted(*frame_shape) if frame_shape is not None else self.plan
        return {
            "model": str(self.model_path) if self.model_path else None,
            "backend": self.backend.description,
            "tile": plan.tile,
            "overlap": plan.overlap,
            "class_names": list(self.contract.class_names),
            "network_classes": list(self.contract.network_class_ids),
            "normalization": self.normalization.to_dict(),
            "min_object_size": self.min_object_size,
        }

    def prepare(self, frame: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
        """Normalise one H x W frame (C x H x W for C > 1 channels) to float32 model input.

        ``value_range`` fixes the intensities mapped to 0 and 1 (e.g. a whole stack's);
        by default it is computed on this frame.
        """
        return self._prepare(frame, value_range)[0]

    def _prepare(self, frame: np.ndarray, value_range: tuple[float, float] | None) -> tuple[np.ndarray, bool]:
        """:meth:`prepare`'s model input, and whether the frame has contrast: an empty
        normalisation range (a constant frame) has none, and no structure to find."""
        channels = self.contract.in_channels
        image = np.asarray(frame)
        if image.ndim == 2 and channels == 1:
            image = image[None]
        if image.ndim != 3 or image.shape[0] != channels or 0 in image.shape:
            raise InputError(f"frame of shape {np.shape(frame)} does not fit a {channels}-channel model")
        if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
            raise InputError(f"unsupported pixel type {image.dtype}")
        if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
            raise InputError("frame has NaN or infinite pixels")
        lo, hi = value_range if value_range is not None else self.normalization.value_range(image)
        return self.normalization.apply(image, (lo, hi)), hi > lo

    def run_model(self, batch: np.ndarray) -> np.ndarray:
        """The raw model on a float32 N x C x h x w batch of prepared tiles: N x K x h x w
        logits (sizes other than the plan's tiles only where the backend takes them)."""
        with self._lock:
            return self.backend.run(batch)

    def frame_bytes(self, height: int, width: int, probabilities: ProbabilityFormat | None = None) -> int:
        """About how much memory segmenting ``height`` x ``width`` frames holds at once:
        prepared frames (the one running, two read ahead, its padded copy), a batch of
        tiles, their logits and the model's activations on them (as its contract
        estimates them), the blending buffers of a tile row, labels and probabilities."""
        plan = self.plan.fitted(height, width)
        grid = plan.grid(height, width)
        channels, classes = self.contract.in_channels, self.n_classes
        padded = grid.padded_height * grid.padded_width
        prepared = 4 * 4 * channels * padded
        tile_pixels = min(plan.batch, len(grid)) * plan.tile * plan.tile
        batch = tile_pixels * (4 * (channels + classes) + self.contract.tiles.bytes_per_pixel)
        blending = 2 * 4 * (classes + 1) * plan.tile * grid.padded_width
        outputs = height * width * (1 + (classes * np.dtype(probabilities).itemsize if probabilities else 0))
        return prepared + batch + blending + outputs

    def grid(self, height: int, width: int) -> TileGrid:
        """The tiles a ``height`` x ``width`` frame is cut into."""
        return self.plan.fitted(height, width).grid(height, width)

    def tile_batches(self, image: np.ndarray) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
        """The model inputs made of a prepared C x H x W image: (tile origins, batch) in
        the order the tiler runs them."""
        grid = self.grid(*image.shape[1:])
        return tile_batches(pad_to_grid(image, grid), grid, self.batch)

    def predict_prepared(
        self, image: np.ndarray, probabilities: ProbabilityFormat | None = None, contrast: bool = True
    ) -> Prediction:
        """Labels (and probabilities) of a prepared C x H x W image, finished band by band;
        labels without foreground pieces under :attr:`min_object_size` pixels. An image
        without ``contrast`` is not run: every pixel is background."""
        _, height, width = image.shape
        if not contrast:
            return background_prediction(self.n_classes, height, width, probabilities)
        labels = np.empty((height, width), np.uint8)
        probs = None if probabilities is None else np.empty((self.n_classes, height, width), probabilities)
        with self._lock:
            for y0, band in stitch_bands(image, self.backend.run, self.n_classes, self.plan):
                rows = slice(y0, y0 + band.shape[1])
                labels[rows] = class_ids(band)
                if probs is not None and probabilities is not None:
                    probs[:, rows] = probabilities_as(band, probabilities)
        return Prediction(without_small_pieces(labels, self.min_object_size), probs)

    def predict(
        self,
        frame: np.ndarray,
        value_range: tuple[float, float] | None = None,
        probabilities: ProbabilityFormat | None = None,
    ) -> Prediction:
        """Labels of one frame, and its class probabilities in the format asked for; a
        frame without contrast (constant) is all background, with a
        :class:`~ernet.runtime.errors.NoContrastWarning`."""
        image, contrast = self._prepare(frame, value_range)
        if not contrast:
            warnings.warn(without_contrast([0], 1), NoContrastWarning, stacklevel=2)
        return self.predict_prepared(image, probabilities, contrast)

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
            return tiled_logits(image, self.backend.run, self.n_classes, self.plan)

    def stream(
        self,
        frames: Iterable[np.ndarray],
        value_range: tuple[float, float] | None = None,
        probabilities: ProbabilityFormat | None = None,
        queue_size: int = 2,
    ) -> Generator[tuple[np.ndarray, Prediction], None, None]:
        """(prepared input, prediction) of each of ``frames`` in order: frames are drawn and
        normalised (on their own, or with ``value_range``) on a background thread, at most
        ``queue_size`` ahead, while the model runs on the caller's. Frames without contrast
        are all background, their ``prediction.contrast`` False (no warning: the caller,
        who knows where they come from, reports them)."""
        for image, contrast in prefetch((self._prepare(f, value_range) for f in frames), queue_size):
            yield image, self.predict_prepared(image, probabilities, contrast)

    def segment_frames(self, frames: Iterable[np.ndarray], queue_size: int = 2) -> Iterator[np.ndarray]:
        """Class-id masks of ``frames`` in order, each normalised on its own (see :meth:`stream`)."""
        for _, prediction in self.stream(frames, queue_size=queue_size):
            yield prediction.labels

    def close(self) -> None:
        """Release the model; the segmenter cannot be used afterwards."""
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
