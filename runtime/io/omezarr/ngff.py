"""OME-NGFF axes and units against ours: axis letters (``TZYX``...) and :class:`Calibration`.

NGFF names axes (``t``, ``c``, ``z``, ``y``, ``x``, or a custom name), types them
(time, channel, space) and gives units from UDUNITS (``micrometer``, ``second``);
this module converts both ways and orders axes as NGFF requires (time first, then a
custom axis, channel, and space last). No zarr needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..calibration import AxisScale, Calibration
from ..source import CHANNEL_AXES

#: NGFF's axis types of our axis letters (others are custom axes, without a type).
AXIS_TYPES = {"T": "time", "C": "channel", "S": "channel", "Z": "space", "Y": "space", "X": "space"}
#: The NGFF axis names that are our letters (upper-cased).
_NGFF_LETTERS = ("T", "C", "Z", "Y", "X")
#: NGFF's order of axes by type: time, custom, channel, space (z, y, x).
_ORDER = {"T": 0, "C": 2, "S": 2, "Z": 3, "Y": 4, "X": 5}
#: Our spellings of units (as files write them) -> NGFF's (UDUNITS) names.
_NGFF_UNITS = {
    **dict.fromkeys(("micron", "microns", "um", "µm", "\u00b5m", "μm", "micrometre"), "micrometer"),
    **dict.fromkeys(("nm", "nanometre"), "nanometer"),
    **dict.fromkeys(("mm", "millimetre"), "millimeter"),
    **dict.fromkeys(("s", "sec", "secs", "seconds"), "second"),
    **dict.fromkeys(("ms", "msec"), "millisecond"),
    **dict.fromkeys(("min", "mins", "minutes"), "minute"),
    **dict.fromkeys(("h", "hr", "hours"), "hour"),
}


def ngff_order(axes: str) -> str:
    """``axes`` in the order NGFF requires: ``ZCTYX`` -> ``TCZYX``."""
    return "".join(sorted(axes, key=lambda a: _ORDER.get(a, 1)))


def ngff_unit(unit: str | None) -> str | None:
    """NGFF's name of ``unit`` (``µm`` -> ``micrometer``); None where it has none."""
    if unit is None:
        return None
    return _NGFF_UNITS.get(unit, _NGFF_UNITS.get(unit.lower(), unit.lower() if unit.isalpha() else None))


def ngff_axes(axes: str, calibration: Calibration) -> list[dict[str, str]]:
    """NGFF axis objects of our ``axes`` (in NGFF order already), with the units of
    ``calibration`` where it has them."""
    out = []
    for a in axes:
        axis = {"name": "c" if a in CHANNEL_AXES else a.lower()}
        if a in AXIS_TYPES:
            axis["type"] = AXIS_TYPES[a]
        scale = calibration[a]
        unit = ngff_unit(scale.unit) if scale else None
        if unit:
            axis["unit"] = unit
        out.append(axis)
    return out


def ngff_scale(axes: str, calibration: Calibration) -> list[float]:
    """The ``scale`` transform of ``axes``: each axis' step, 1 where unknown."""
    return [scale.step if (scale := calibration[a]) else 1.0 for a in axes]


def axis_letters(axes: Sequence[Mapping[str, Any]]) -> str:
    """Our letters of NGFF axis objects: ``t``/``c``/``z``/``y``/``x`` upper-cased, any
    other (custom) axis ``Q``, as tifffile names an unknown axis."""
    names = (str(axis["name"]).upper() for axis in axes)
    return "".join(name if name in _NGFF_LETTERS else "Q" for name in names)


def calibration_of(axes: Sequence[Mapping[str, Any]], scale: Sequence[float]) -> Calibration:
    """The calibration of NGFF ``axes`` with their ``scale`` (of level 0): every axis
    but the channel, with its unit."""
    scales = {}
    for letter, axis, step in zip(axis_letters(axes), axes, scale, strict=True):
        if letter not in "CQ" and step > 0:
            scales[letter] = AxisScale(float(step), axis.get("unit"))
    return Calibration(scales)
