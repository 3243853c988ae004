"""A microscope without hardware: pymmcore-plus's ``UniMMCore`` with pure-Python devices.

The camera streams generated ER frames (a drifting, remodelling cell from the project's
generator, 16-bit), the focus drive and XY stage move at once; no Micro-Manager device
adapters are needed. ``ernet-live`` runs on it when no configuration file is given, and
the acquisition tests and benchmark run real MDAs on it. Needs the ``acquisition``
extra (pymmcore-plus) and SciPy (the generator).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pymmcore_plus.experimental.unicore import SimpleCameraDevice, StageDevice, UniMMCore, XYStageDevice


def er_frames(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` frames of one generated ER cell moving over time (uint16)."""
    # The generator lives with the training code but needs only numpy and SciPy.
    from ernet.training.synthetic import SyntheticConfig, generate_stack

    config = SyntheticConfig(height=height, width=width, bit_depth=16)
    return [frame.image for frame in generate_stack(count, seed=seed, config=config)]


class ERCamera(SimpleCameraDevice):
    """A camera whose frames are ``frames``, one after another, round and round."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        super().__init__()
        self.frames, self.snapped, self._exposure = frames, 0, 10.0

    def sensor_shape(self) -> tuple[int, int]:
        return self.frames[0].shape[:2]  # type: ignore[return-value]

    def dtype(self) -> Any:
        return self.frames[0].dtype

    def get_exposure(self) -> float:
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        self._exposure = exposure

    def snap(self, buffer: np.ndarray) -> Mapping[str, Any]:
        buffer[:] = self.frames[self.snapped % len(self.frames)]
        self.snapped += 1
        return {}


class Focus(StageDevice):
    """A focus drive that is where it is told at once."""

    _z = 0.0

    def set_position_um(self, val: float) -> None:
        self._z = val

    def get_position_um(self) -> float:
        return self._z

    def set_origin(self) -> None:
        self._z = 0.0

    def home(self) -> None:
        self._z = 0.0

    def stop(self) -> None:
        """Nothing moves, nothing to stop."""


class XYStage(XYStageDevice):
    """An XY stage that is where it is told at once."""

    _xy = (0.0, 0.0)

    def set_position_um(self, x: float, y: float) -> None:
        self._xy = (x, y)

    def get_position_um(self) -> tuple[float, float]:
        return self._xy

    def set_origin_x(self) -> None:
        self._xy = (0.0, self._xy[1])

    def set_origin_y(self) -> None:
        self._xy = (self._xy[0], 0.0)

    def home(self) -> None:
        self._xy = (0.0, 0.0)

    def stop(self) -> None:
        """Nothing moves, nothing to stop."""


def demo_core(frames: list[np.ndarray]) -> UniMMCore:
    """A ``UniMMCore`` whose camera (``Camera``) streams ``frames``, with a focus drive
    (``Z``) and an XY stage (``XY``)."""
    core = UniMMCore()
    for label, device in (("Camera", ERCamera(frames)), ("Z", Focus()), ("XY", XYStage())):
        core.loadPyDevice(label, device)
        core.initializeDevice(label)
    core.setCameraDevice("Camera")
    core.setFocusDevice("Z")
    core.setXYStageDevice("XY")
    core.setAutoShutter(False)  # no shutter to open
    return core
