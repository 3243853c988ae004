"""The model registry: architecture names mapped to what training, checkpoints, export
and benchmarks need of each (timm's ``create_model``, SAM's registry).

An architecture is one module that calls :func:`register` with its
:class:`Architecture`; adding one touches nothing else. The built-in ones are
imported on first use; others register themselves when imported, or through the
``ernet.architectures`` entry-point group of an installed package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ernet.runtime.contract import ModelContract
from ernet.runtime.metadata import ArchitectureSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Modules of the architectures that ship with the package.
BUILT_IN = ("ernet.training.models.ernet", "ernet.training.models.swin")
ENTRY_POINT_GROUP = "ernet.architectures"


@dataclass(frozen=True)
class Fp16Policy:
    """How an fp16 variant of an architecture's ONNX graph is made: the operators it may
    hold, and the nodes that stay fp32 (given the graph, their indices)."""

    ops: frozenset[str]
    keep_fp32: Callable[[Any], set[int]] = lambda graph: set()


@dataclass(frozen=True)
class Architecture:
    """What the project needs of one architecture, by its registered ``name``.

    ``defaults`` is its whole configuration with default values (a spec's config is
    completed from it and may hold no other key); ``build`` makes the torch module for
    a completed spec and a contract; ``recognise`` reads a foreign (published-format)
    state dict, returning the spec and contract it implies, or raising ValueError with
    the reason it is not this architecture's; ``flops_per_pixel`` counts 2 x
    multiply-adds per pixel of one forward pass; ``adopt`` turns a recognised foreign
    state dict into this module's layout (e.g. logit channels in class-id order);
    ``fp16`` is the export op policy (None: no fp16 variant); ``tile_multiple`` gives,
    for a completed spec, what its tile sides and origins must be a multiple of (e.g. a
    windowed transformer's window); ``label`` names a configuration in tables.
    """

    name: str
    defaults: Mapping[str, Any]
    build: Callable[[ArchitectureSpec, ModelContract], nn.Module]
    recognise: Callable[[Mapping[str, torch.Tensor]], tuple[ArchitectureSpec, ModelContract]]
    flops_per_pixel: Callable[[ArchitectureSpec, ModelContract], int]
    adopt: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]] = dict
    fp16: Fp16Policy | None = None
    tile_multiple: Callable[[ArchitectureSpec], int] = field(default=lambda spec: 1)
    label: Callable[[ArchitectureSpec], str] = field(
        default=lambda spec: " ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
    )

    def complete(self, spec: ArchitectureSpec) -> ArchitectureSpec:
        """``spec`` with every configuration key, defaults filled in; ValueError for a key
        this architecture does not have."""
        unknown = set(spec.config) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"architecture {self.name} has no option {', '.join(sorted(unknown))} "
                f"(it has {', '.join(self.defaults)})"
            )
        return ArchitectureSpec(self.name, {**self.defaults, **spec.config})


_REGISTRY: dict[str, Architecture] = {}
_loaded = False


def register(architecture: Architecture) -> Architecture:
    """Add ``architecture`` under its name (replacing one of the same name)."""
    _REGISTRY[architecture.name] = architecture
    return architecture


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILT_IN:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def architectures() -> list[Architecture]:
    """Every registered architecture, built-in first."""
    _load()
    return list(_REGISTRY.values())


def get_architecture(name: str) -> Architecture:
    """The architecture registered as ``name``; ValueError naming the known ones."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(_REGISTRY)}") from None


def build_model(spec: ArchitectureSpec, contract: ModelContract) -> nn.Module:
    """The torch module of ``spec`` (completed with its defaults) for ``contract``."""
    architecture = get_architecture(spec.name)
    return architecture.build(architecture.complete(spec), contract)


__all__ = [
    "Architecture",
    "Fp16Policy",
    "architectures",
    "build_model",
    "get_architecture",
    "register",
]
