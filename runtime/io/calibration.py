"""Physical scale per axis: what outputs carry over from their input.

Held as a step and a unit per axis (``X``, ``Y``, ``Z``, ``T``); each format's
writer converts it to what the format stores (TIFF: resolution tags and ImageJ
metadata) and each reader from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: How files spell micrometres.
MICROMETRE_UNITS = ("micron", "microns", "um", "µm", "\u00b5m", "μm", "micrometer", "micrometre")


@dataclass(frozen=True)
class AxisScale:
    """The physical step between neighbouring samples along an axis, and its unit."""

    step: float
    unit: str | None = None


@dataclass(frozen=True)
class Calibration:
    """Steps and units by axis name, e.g. ``{"X": AxisScale(0.065, "micron"),
    "T": AxisScale(1.5, "s")}``; axes without a known scale are absent."""

    axes: Mapping[str, AxisScale] = field(default_factory=dict)

    def __getitem__(self, axis: str) -> AxisScale | None:
        return self.axes.get(axis)

    @property
    def pixel_size(self) -> tuple[float, float] | None:
        """Size of a pixel along Y and X, where the file says it."""
        y, x = self["Y"], self["X"]
        return (y.step, x.step) if y and x else None

    @property
    def unit(self) -> str | None:
        """The unit of the pixel size (along X)."""
        x = self["X"]
        return x.unit if x else None

    @property
    def micrometres_per_pixel(self) -> float | None:
        """The pixel side in µm where the file gives it in µm (square pixels), else None."""
        size = self.pixel_size
        if size is None or (self.unit or "").lower() not in MICROMETRE_UNITS:
            return None
        return size[1] if abs(size[0] - size[1]) <= 1e-6 * size[1] else None


#: No known scale along any axis.
UNCALIBRATED = Calibration()
