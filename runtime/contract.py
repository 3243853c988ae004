"""The model contract: what the runtime needs to run any model, whatever its architecture.

Input channels, the classes (in logit-channel order) and those that form the ER
network, the intensity normalisation, the tile constraints, and the smallest
foreground piece its masks keep. Every artefact
carries it (ONNX metadata, engine manifest); the architecture that computes it is
opaque here (:class:`~ernet.runtime.metadata.ArchitectureSpec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .preprocess import Normalization

BINARY_CLASSES = ("background", "ER")
#: ERnet-v2's classes: tubules, sheets and sheet-based tubules (dense tubular matrices).
FOUR_CLASSES = ("background", "tubule", "sheet", "SBT")
#: Activation bytes per tile pixel assumed for a model that does not say: about the
#: published-size ERNet's (measured on ONNX Runtime's CPU provider: 1849).
UNKNOWN_ACTIVATION_BYTES = 2048


@dataclass(frozen=True)
class TileSpec:
    """The tiles a model takes: its default side, what the side and the tile origins
    must be a multiple of, the default overlap as a fraction of the side, and the memory
    its activations take per tile pixel."""

    #: Default tile side: the training crop.
    size: int = 256
    #: Tile sides and origins are multiples of this (e.g. a windowed transformer's window).
    multiple_of: int = 1
    #: Default overlap of neighbouring tiles, as a fraction of the tile side; a quarter was
    #: chosen by measurement (README, *Tiling*).
    overlap: float = 0.25
    #: Bytes of activations per tile pixel on ONNX Runtime's CPU provider, estimated at
    #: export from the graph; None (older artefacts): :data:`UNKNOWN_ACTIVATION_BYTES`.
    activation_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.size < 1 or self.multiple_of < 1:
            raise ValueError("tile size and multiple must be positive")
        if self.size % self.multiple_of:
            raise ValueError(f"tile size {self.size} is not a multiple of {self.multiple_of}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"tile overlap must be a fraction in [0, 1), got {self.overlap}")
        if self.activation_bytes is not None and self.activation_bytes < 1:
            raise ValueError(f"activation bytes per pixel must be positive, got {self.activation_bytes}")

    @property
    def bytes_per_pixel(self) -> int:
        """The activation bytes per tile pixel to plan memory with."""
        return self.activation_bytes or UNKNOWN_ACTIVATION_BYTES


@dataclass(frozen=True)
class ModelContract:
    """Everything the runtime needs to run a model and read its output."""

    in_channels: int = 1
    #: One name per logit channel; channel 0 is the background.
    class_names: tuple[str, ...] = BINARY_CLASSES
    #: Class ids that form the ER network for analysis; None: every class but background.
    network_classes: tuple[int, ...] | None = None
    normalization: Normalization = field(default_factory=Normalization)
    tiles: TileSpec = field(default_factory=TileSpec)
    #: Foreground pieces (8-connected) under this many pixels are the model's speckle:
    #: masks leave them out unless asked otherwise; 0 keeps every piece. Chosen by
    #: measurement and recorded at export (``ernet-export --min-object-size``).
    min_object_size: int = 0

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ValueError("a model needs at least one input channel")
        if self.min_object_size < 0:
            raise ValueError(f"a minimum object size is a pixel count >= 0, got {self.min_object_size}")
        if len(self.class_names) < 2:
            raise ValueError(f"{len(self.class_names)} class names: a model needs background and a class")
        if self.network_classes is not None and not all(0 < k < self.n_classes for k in self.network_classes):
            raise ValueError(f"network classes {self.network_classes} are not foreground class ids")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def network_class_ids(self) -> tuple[int, ...]:
        """The class ids forming the network, explicitly."""
        return self.network_classes or tuple(range(1, self.n_classes))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["class_names"] = list(self.class_names)
        if self.network_classes is not None:
            out["network_classes"] = list(self.network_classes)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelContract:
        values = dict(values)
        values["class_names"] = tuple(values.get("class_names", BINARY_CLASSES))
        if values.get("network_classes") is not None:
            values["network_classes"] = tuple(values["network_classes"])
        values["normalization"] = Normalization.from_dict(values.get("normalization", {}))
        values["tiles"] = TileSpec(**values.get("tiles", {}))
        return cls(**values)


def class_names_for(n_classes: int) -> tuple[str, ...]:
    """Class names of a model that does not name its classes: background and ER for
    two, else ``class0``, ``class1``, ..."""
    return BINARY_CLASSES if n_classes == 2 else tuple(f"class{i}" for i in range(n_classes))
