"""The model description carried inside every artefact (ONNX ``metadata_props``).

One dataclass, written by export and training, read by every runtime backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .preprocess import Normalization

#: Key under which the JSON description is stored in ONNX ``metadata_props``.
METADATA_KEY = "ernet"
FORMAT_VERSION = 1
ARCHITECTURE = "ERNet-RCAN"
#: Numeric precision of an artefact's weights and compute (its input and output stay fp32).
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the ERNet (RCAN) network. Defaults are the published ones."""

    in_channels: int = 1
    n_classes: int = 2
    n_feats: int = 64
    n_resgroups: int = 5
    n_resblocks: int = 10
    reduction: int = 16

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"model config {name} must be a positive integer, got {value!r}")
        if self.n_feats // self.reduction < 1:
            raise ValueError("n_feats // reduction must be at least 1")

    @property
    def flops_per_pixel(self) -> int:
        """Multiply-adds x 2 per pixel of one forward pass (convolutions only)."""
        f, c = self.n_feats, self.in_channels
        conv3 = 2 * 9 * f * f
        block = 2 * conv3  # the attention branch is per image, not per pixel
        group = self.n_resblocks * block + conv3
        return 2 * 9 * c * f + self.n_resgroups * group + conv3 + 2 * f * self.n_classes


@dataclass(frozen=True)
class ModelMetadata:
    """Everything the runtime needs to use a model, and where the model came from."""

    config: ModelConfig = field(default_factory=ModelConfig)
    class_names: tuple[str, ...] = ("background", "ER")
    normalization: Normalization = field(default_factory=Normalization)
    tile_size: int = 256
    architecture: str = ARCHITECTURE
    source_checkpoint_sha256: str | None = None
    package_version: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if len(self.class_names) != self.config.n_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.config.n_classes} classes")
        if self.tile_size < 1:
            raise ValueError("tile size must be positive")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["class_names"] = list(self.class_names)
        out["provenance"] = dict(self.provenance)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelMetadata:
        values = dict(values)
        version = values.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(f"metadata format {version} is newer than this runtime understands")
        values["config"] = ModelConfig(**values.get("config", {}))
        values["normalization"] = Normalization.from_dict(values.get("normalization", {}))
        values["class_names"] = tuple(values.get("class_names", ("background", "ER")))
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        return cls.from_dict(json.loads(text))

    def to_props(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` entries describing this model."""
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> ModelMetadata:
        """Read the description from ONNX ``metadata_props``; KeyError when absent."""
        return cls.from_json(props[METADATA_KEY])
