"""Checkpoints: our own (full description inside) and foreign (published-format) ones.

Accepted: ``{'epoch', 'state_dict', 'optimizer', ...}`` dicts, bare state dicts, and
keys prefixed ``module.`` (DataParallel). Always loaded with ``weights_only=True``.
Our checkpoints name their architecture; a foreign one is recognised from its
weights by the registered architectures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ernet.runtime.errors import ModelError, first_line
from ernet.runtime.io import atomic_output, file_sha256
from ernet.runtime.metadata import METADATA_KEY, ModelMetadata

from .models import architectures, build_model, get_architecture


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel's ``module.`` prefix from every key that has it."""
    return {k.removeprefix("module."): v for k, v in state.items()}


@dataclass
class LoadedCheckpoint:
    """A model with its weights, its description and the raw checkpoint dict."""

    model: nn.Module
    metadata: ModelMetadata
    raw: dict[str, Any]
    sha256: str


def recognise(state: Mapping[str, torch.Tensor]) -> ModelMetadata:
    """The description of a foreign state dict, from the first registered architecture
    that recognises its weights; ValueError with each architecture's reason otherwise."""
    reasons = []
    for architecture in architectures():
        try:
            spec, contract = architecture.recognise(state)
        except ValueError as exc:
            reasons.append(f"{architecture.name}: {first_line(exc)}")
            continue
        return ModelMetadata(contract, spec, provenance={"source": "published-format checkpoint"})
    raise ValueError("; ".join(reasons))


def load_checkpoint(path: Path | str) -> LoadedCheckpoint:
    """Load a checkpoint of ours or a published one into its architecture's module.

    Published checkpoints carry no description: the architecture recognising their
    weights gives the configuration and the preprocessing they were trained with.
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
            metadata = recognise(state)
            state = get_architecture(metadata.architecture.name).adopt(state)
        architecture = get_architecture(metadata.architecture.name).complete(metadata.architecture)
        metadata = replace(metadata, architecture=architecture)
        model = build_model(architecture, metadata.contract)
        model.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"{path}: not a checkpoint of a known architecture ({first_line(exc)})") from None
    model.eval()
    return LoadedCheckpoint(model, metadata, raw, file_sha256(path))


def save_checkpoint(path: Path, model: nn.Module, metadata: ModelMetadata, **extra: Any) -> None:
    """Write a checkpoint dict (``epoch``, ``state_dict``, ``optimizer``... and our
    description under ``'ernet'``) atomically."""
    payload = {"state_dict": model.state_dict(), METADATA_KEY: metadata.to_dict(), **extra}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
