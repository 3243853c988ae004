"""The description carried inside every artefact (ONNX ``metadata_props``, engine
manifests, checkpoints): the model contract, the architecture, and where it came from.

Read and written only here. Format 2 keeps the contract apart from the architecture;
format 1 (ERNet's hyper-parameters and the contract in one ``config``) still loads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .contract import ModelContract

#: Key under which the JSON description is stored in ONNX ``metadata_props`` and checkpoints.
METADATA_KEY = "ernet"
FORMAT_VERSION = 2
#: The architecture of every format-1 artefact.
ERNET_ARCHITECTURE = "ERNet-RCAN"
#: Numeric precision of an artefact's weights and compute (its input and output stay fp32).
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ArchitectureSpec:
    """The network that computes a model: a registered name and its own configuration,
    as data. Opaque to the runtime; the training registry builds it."""

    name: str = ERNET_ARCHITECTURE
    config: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": dict(self.config)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ArchitectureSpec:
        return cls(str(values["name"]), dict(values.get("config", {})))


@dataclass(frozen=True)
class ModelMetadata:
    """Everything the runtime needs to use a model, and where the model came from."""

    contract: ModelContract = field(default_factory=ModelContract)
    architecture: ArchitectureSpec = field(default_factory=ArchitectureSpec)
    source_checkpoint_sha256: str | None = None
    package_version: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "contract": self.contract.to_dict(),
            "architecture": self.architecture.to_dict(),
            "source_checkpoint_sha256": self.source_checkpoint_sha256,
            "package_version": self.package_version,
            "provenance": dict(self.provenance),
            "precision": self.precision,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelMetadata:
        """Read any format up to this runtime's; ValueError for a newer one."""
        version = values.get("format_version", 1)
        if version > FORMAT_VERSION:
            raise ValueError(f"metadata format {version} is newer than this runtime understands")
        if version < 2:
            values = _upgrade_format_1(values)
        return cls(
            contract=ModelContract.from_dict(values.get("contract", {})),
            architecture=ArchitectureSpec.from_dict(values["architecture"]),
            source_checkpoint_sha256=values.get("source_checkpoint_sha256"),
            package_version=values.get("package_version"),
            provenance=dict(values.get("provenance", {})),
            precision=values.get("precision", "fp32"),
        )

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


def _upgrade_format_1(values: Mapping[str, Any]) -> dict[str, Any]:
    """A format-1 description (every ERNet artefact exported before format 2) as format 2."""
    config = dict(values.get("config", {}))
    n_classes = config.pop("n_classes", 2)
    class_names = list(values.get("class_names", ("background", "ER")))
    if len(class_names) != n_classes:
        raise ValueError(f"{len(class_names)} class names for {n_classes} classes")
    contract = {
        "in_channels": config.pop("in_channels", 1),
        "class_names": class_names,
        "normalization": values.get("normalization", {}),
        "tiles": {"size": values.get("tile_size", 256)},
    }
    architecture = {"name": values.get("architecture", ERNET_ARCHITECTURE), "config": config}
    return {**values, "contract": contract, "architecture": architecture}
