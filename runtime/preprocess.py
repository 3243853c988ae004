"""Intensity normalisation, defined once and shared by training, export and inference.

The normalisation is data that travels with a model (inside its metadata), so the
runtime always prepares frames exactly as the model saw them in training.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

NormalizationMode = Literal["scale", "percentile"]


@dataclass(frozen=True)
class Normalization:
    """How raw intensities become model input.

    ``scale``: ``value / scale`` (the original ERNet: ``scale=255`` for 8-bit frames).
    ``percentile``: the ``low``/``high`` percentiles of the frame map to 0/1
    (the successor's 1-99 % rescaling), clipped to [0, 1] when ``clip``; with a
    ``noise_floor``, a range narrower than that many times the frame's noise level
    (:func:`noise_level`) is widened to it, so that noise is not stretched into contrast;
    with ``levels``, clipped values are then truncated to multiples of 1 / ``levels``
    (ERnet-v2's conversion to 8 bits: 255).
    """

    mode: NormalizationMode = "percentile"
    scale: float = 255.0
    low: float = 1.0
    high: float = 99.0
    clip: bool = True
    #: The range mapped to [0, 1] spans at least this many noise standard deviations
    #: (percentile mode); 0: no floor.
    noise_floor: float = 0.0
    #: Clipped values are truncated to ``floor(value * levels) / levels``; 0: not quantised.
    levels: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("scale", "percentile"):
            raise ValueError(f"unknown normalisation mode {self.mode!r}")
        if self.mode == "scale" and not self.scale > 0:
            raise ValueError("normalisation scale must be positive")
        if self.mode == "percentile" and not 0 <= self.low < self.high <= 100:
            raise ValueError("percentiles must satisfy 0 <= low < high <= 100")
        if self.noise_floor < 0 or (self.noise_floor and self.mode != "percentile"):
            raise ValueError("a noise floor is a non-negative number of noise levels, in percentile mode")
        if self.levels < 0 or (self.levels and not self.clip):
            raise ValueError("quantisation levels are a non-negative count, for clipped values")

    @classmethod
    def original(cls) -> Normalization:
        """The original ERNet preprocessing for 8-bit frames: value / 255, no clipping."""
        return cls(mode="scale", scale=255.0, clip=False)

    @classmethod
    def ernet_v2(cls) -> Normalization:
        """ERnet-v2's inference preprocessing: the frame's 1st and 99th percentiles to 0
        and 1, clipped, truncated to 8 bits (``(x * 255).astype(uint8) / 255``)."""
        return cls(mode="percentile", low=1.0, high=99.0, clip=True, levels=255)

    def value_range(self, data: np.ndarray) -> tuple[float, float]:
        """The intensities that map to 0 and 1, computed over all of ``data`` (a frame, or
        frames along its leading axes)."""
        if self.mode == "scale":
            return 0.0, float(self.scale)
        lo, hi = self.percentiles(data)
        return self.floored(lo, hi, noise_level(data) if self.noise_floor else 0.0)

    def floored(self, lo: float, hi: float, noise: float) -> tuple[float, float]:
        """``(lo, hi)``, with ``hi`` raised to ``lo`` + ``noise_floor`` x ``noise`` where lower."""
        return lo, max(hi, lo + self.noise_floor * noise)

    def percentiles(self, data: np.ndarray) -> tuple[float, float]:
        """The ``low`` and ``high`` percentiles of all of ``data``."""
        data = np.asarray(data)
        if _histogram_friendly(data):  # exact, and several times faster than sorting
            counts = np.bincount(data.ravel(), minlength=256)
            return _histogram_percentile(counts, self.low), _histogram_percentile(counts, self.high)
        work = np.float64 if _needs_float64(data) else np.float32
        lo, hi = np.percentile(data.astype(work, copy=False), (self.low, self.high))
        return float(lo), float(hi)

    def apply(self, data: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
        """Normalise ``data`` to float32; the range defaults to ``data``'s own."""
        lo, hi = value_range if value_range is not None else self.value_range(data)
        # Convert before any arithmetic: uint16 differences would wrap around; values
        # near float32's limits (or beyond them, in float64) are worked on in float64.
        data = np.asarray(data)
        # Truncation to levels is decided at exact multiples: worked out in float64.
        wide = bool(self.levels) or _needs_float64(data) or max(abs(lo), abs(hi)) > _FLOAT32_SAFE
        work = np.dtype(np.float64 if wide else np.float32)
        out: np.ndarray = data.astype(work) - work.type(lo)
        span = hi - lo
        if span > 0:
            out /= work.type(span)  # divide, as the original does: bit-exact value / 255
        else:  # a constant frame carries no contrast
            out[...] = 0.0
        if self.clip:
            np.clip(out, 0.0, 1.0, out=out)
        if self.levels:
            out = np.floor(out * self.levels) / self.levels
        return out.astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Normalization:
        return cls(**values)


#: Every how many rows the noise level is estimated on (a quarter of a frame is plenty).
_NOISE_ROW_STEP = 4


def noise_level(data: np.ndarray) -> float:
    """A robust estimate of the standard deviation of pixel noise in a frame (its last two
    axes; leading axes: their first frame): the median absolute deviation of differences
    between horizontal neighbours, scaled for Gaussian noise and divided by sqrt 2.
    Structure is sparse next to noise, so it barely moves the estimate; 0 for a 1-D array."""
    data = np.asarray(data)
    if data.ndim < 2 or data.shape[-1] < 2:
        return 0.0
    frame = data.reshape(-1, *data.shape[-2:])[0]
    rows = frame[::_NOISE_ROW_STEP].astype(np.float64 if _needs_float64(frame) else np.float32)
    differences = np.diff(rows, axis=-1).ravel()
    deviation = np.median(np.abs(differences - np.median(differences)))
    return float(1.4826 * deviation / np.sqrt(2))


#: Magnitudes beyond which float32 differences of two values could overflow.
_FLOAT32_SAFE = 1e37


def _needs_float64(data: np.ndarray) -> bool:
    """Whether float ``data`` holds values too large for float32 arithmetic."""
    if not np.issubdtype(data.dtype, np.floating) or data.size == 0:
        return False
    return bool(np.abs(data).max() > _FLOAT32_SAFE)


#: Pixels sampled per frame of float (or wide integer) data for a stack's range.
_FLOAT_SAMPLES_PER_FRAME = 4096


class StackRange:
    """The normalisation range of a whole stack, gathered frame by frame in bounded memory.

    Percentiles are exact for integer frames of up to 16 bits (a running histogram);
    other data contribute an evenly strided sample of each frame. A noise floor uses
    the median of the frames' noise levels.
    """

    def __init__(self, normalization: Normalization) -> None:
        self.normalization = normalization
        self._counts: np.ndarray | None = None
        self._samples: list[np.ndarray] = []
        self._noise: list[float] = []

    def add(self, frame: np.ndarray) -> None:
        """Count one frame."""
        if self.normalization.mode == "scale":
            return
        if self.normalization.noise_floor:
            self._noise.append(noise_level(frame))
        values = np.asarray(frame).ravel()
        if _histogram_friendly(values):
            counts = np.bincount(values, minlength=65536 if values.dtype.itemsize == 2 else 256)
            if self._counts is not None and self._counts.size > counts.size:
                counts = np.pad(counts, (0, self._counts.size - counts.size))
            self._counts = counts if self._counts is None else self._counts + counts
        else:
            step = max(1, values.size // _FLOAT_SAMPLES_PER_FRAME)
            self._samples.append(values[::step].astype(np.float32))

    @classmethod
    def of(cls, normalization: Normalization, frames: Iterable[np.ndarray]) -> StackRange:
        """The range of ``frames`` gathered in one pass (a part of a stack, to
        :meth:`merge` with others)."""
        gathered = cls(normalization)
        for frame in frames:
            gathered.add(frame)
        return gathered

    def merge(self, other: StackRange) -> StackRange:
        """Count ``other``'s frames too (ranges gathered apart, e.g. on cluster workers,
        merge to what one pass over all the frames gives); returns self."""
        if other._counts is not None:
            counts = other._counts
            if self._counts is not None:
                size = max(self._counts.size, counts.size)
                counts = np.pad(self._counts, (0, size - self._counts.size)) + np.pad(
                    counts, (0, size - counts.size)
                )
            self._counts = counts
        self._samples.extend(other._samples)
        self._noise.extend(other._noise)
        return self

    def value_range(self) -> tuple[float, float]:
        """The range of everything added so far (as ``Normalization.value_range`` of it all)."""
        norm = self.normalization
        if norm.mode == "scale":
            return 0.0, float(norm.scale)
        if self._samples:  # a stack has one pixel type: either samples or counts
            lo, hi = norm.percentiles(np.concatenate(self._samples))
        elif self._counts is None:
            raise ValueError("no frames were added")
        else:
            lo, hi = (
                _histogram_percentile(self._counts, norm.low),
                _histogram_percentile(self._counts, norm.high),
            )
        return norm.floored(lo, hi, float(np.median(self._noise)) if self._noise else 0.0)


def stack_range(normalization: Normalization, frames: Iterable[np.ndarray]) -> tuple[float, float]:
    """The normalisation range of all ``frames`` together, in one bounded-memory pass."""
    return StackRange.of(normalization, frames).value_range()


def _histogram_friendly(data: np.ndarray) -> bool:
    """Unsigned integers of at most 16 bits: percentiles come exactly from a histogram."""
    return data.dtype.kind in "ub" and data.dtype.itemsize <= 2


def _histogram_percentile(counts: np.ndarray, q: float) -> float:
    """``np.percentile`` (linear interpolation) of the values whose histogram is ``counts``."""
    cumulative = np.cumsum(counts)
    position = q / 100 * (cumulative[-1] - 1)
    below = int(np.floor(position))
    lo, hi = np.searchsorted(cumulative, [below, min(below + 1, cumulative[-1] - 1)], side="right")
    return float(lo + (position - below) * (hi - lo))
