"""Checkpoints: our own (full config inside) and the published ERNet ones.

Accepted: ``{'epoch', 'state_dict', 'optimizer', ...}`` dicts, bare state dicts, and
keys prefixed ``module.`` (DataParallel). Always loaded with ``weights_only=True``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ernet.runtime.errors import ModelError, first_line
from ernet.runtime.io import file_sha256
from ernet.runtime.metadata import ModelConfig, ModelMetadata
from ernet.runtime.preprocess import Normalization

from .model import ERNet

#: Key of our model description inside a checkpoint dict.
METADATA_KEY = "ernet"
_GROUP_KEY = re.compile(r"^body\.(\d+)\.body\.(\d+)\.")


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel's ``module.`` prefix from every key that has it."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def infer_config(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    """Recover F, G, B, r and channel counts from parameter names and shapes."""
    try:
        head = state["head.0.weight"]
        tail = state["tail.0.weight"]
        blocks_of_group: dict[int, set[int]] = {}
        for key in state:
            match = _GROUP_KEY.match(key)
            if match:
                blocks_of_group.setdefault(int(match[1]), set()).add(int(match[2]))
        n_groups = len(blocks_of_group)
        # Each group's Sequential holds B blocks and then its closing conv (index B).
        n_blocks = max(blocks_of_group[0])
        hidden = state["body.0.body.0.body.3.conv_du.0.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not an ERNet state dict (missing {exc})") from None
    if sorted(blocks_of_group) != list(range(n_groups)) or f"body.{n_groups}.weight" not in state:
        raise ValueError("not an ERNet state dict (residual groups are not numbered 0..G-1)")
    n_feats = int(head.shape[0])
    return ModelConfig(
        in_channels=int(head.shape[1]),
        n_classes=int(tail.shape[0]),
        n_feats=n_feats,
        n_resgroups=n_groups,
        n_resblocks=n_blocks,
        reduction=n_feats // int(hidden),
    )


@dataclass
class LoadedCheckpoint:
    """A model with its weights, its description and the raw checkpoint dict."""

    model: ERNet
    metadata: ModelMetadata
    raw: dict[str, Any]
    sha256: str


def load_checkpoint(path: Path | str) -> LoadedCheckpoint:
    """Load a checkpoint of ours or a published one into an :class:`ERNet`.

    Published checkpoints carry no description: the config is inferred from the
    weights and the original preprocessing (value / 255) is assumed.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a loadable checkpoint ({first_line(exc)})") from None
    raw: dict[str, Any] = obj if isinstance(obj, dict) else {}
    state = raw.get("state_dict", raw)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: no state dict of tensors found")
    state = strip_module_prefix(state)
    try:
        if METADATA_KEY in raw:
            metadata = ModelMetadata.from_dict(raw[METADATA_KEY])
        else:
            metadata = ModelMetadata(
                config=infer_config(state),
                normalization=Normalization.original(),
                provenance={"source": "published-format checkpoint"},
            )
            if metadata.config.n_classes != 2:
                metadata = ModelMetadata(
                    config=metadata.config,
                    class_names=tuple(f"class{i}" for i in range(metadata.config.n_classes)),
                    normalization=metadata.normalization,
                    provenance=metadata.provenance,
                )
        model = ERNet(metadata.config)
        model.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"{path}: not an ERNet checkpoint ({first_line(exc)})") from None
    model.eval()
    return LoadedCheckpoint(model, metadata, raw, file_sha256(path))


def save_checkpoint(path: Path, model: ERNet, metadata: ModelMetadata, **extra: Any) -> None:
    """Write a checkpoint dict (``epoch``, ``state_dict``, ``optimizer``... and our
    description under ``'ernet'``) atomically."""
    from ernet.runtime.io import atomic_output

    payload = {"state_dict": model.state_dict(), METADATA_KEY: metadata.to_dict(), **extra}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
