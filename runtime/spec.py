"""The run spec: one frozen, picklable description of how to run a model.

The CLIs build it from their options, a Dask worker receives it, a GUI edits it;
:class:`~ernet.runtime.Segmenter` is built from it. What it leaves open (tile,
overlap) is resolved once, against the model's contract, by :meth:`RunSpec.tiling`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from .contract import ModelContract
from .models import default_model_path, resolve_model
from .resources import available_memory
from .tiling import TilePlan

#: Where a model runs: ``tensorrt`` is native TensorRT; ``ort-tensorrt``, ``cuda`` and
#: ``cpu`` are ONNX Runtime's providers; ``auto`` tries them in that order.
Provider = Literal["auto", "tensorrt", "ort-tensorrt", "cuda", "cpu"]
#: The share of the available memory that grown tiles' activations may take.
ACTIVATION_SHARE = 0.5
#: The memory assumed available where the system does not say.
UNKNOWN_MEMORY = 2 << 30


@dataclass(frozen=True)
class RunSpec:
    """How to run a model: which artefact, on which provider, in which tiles.

    ``model`` is an exported ONNX file or an embedded model's name (``default``,
    ``default-4class``; None: the embedded default model, unless an ``engine`` is given,
    which carries its model). ``provider``: ``auto``, ``tensorrt``
    (native), ``ort-tensorrt``, ``cuda`` or ``cpu``; an explicitly named provider that
    cannot start is an error unless ``fallback``. ``tile`` and ``overlap`` default to the
    model's contract (on the CPU, tiles grow to whole frames where memory allows),
    ``threads`` to the physical cores this process may use, ``min_object_size`` (masks'
    smallest foreground piece) to the model's.
    """

    model: Path | None = None
    provider: Provider = "auto"
    #: Fall back to the next provider when an explicitly requested one cannot start.
    fallback: bool = False
    #: CPU threads; None: the physical cores this process may use.
    threads: int | None = None
    #: Tile side; None: chosen by the backend: whole frames where memory allows on the
    #: CPU (:meth:`tiling`), else the model's training crop.
    tile: int | None = None
    #: Tile overlap in pixels; None: the model's default fraction of the tile.
    overlap: int | None = None
    #: Tiles per model call (fixes GPU optimisation profiles).
    batch: int = 4
    #: ONNX Runtime's TensorRT provider: let it run layers in fp16 (native TensorRT takes
    #: the precision of the ONNX graph instead: use model.fp16.onnx).
    fp16: bool = False
    #: Native TensorRT: this engine file (built there from the model if absent) instead of the cache.
    engine: Path | None = None
    #: Native TensorRT: rebuild the engine even if one exists (e.g. built for another GPU).
    rebuild_engine: bool = False
    #: Where engines and timing caches are kept; None: ``$ERNET_CACHE`` or ``~/.cache/ernet``.
    cache_dir: Path | None = None
    #: Masks drop foreground pieces under this many pixels; None: the model's (its
    #: contract's ``min_object_size``); 0 keeps every piece.
    min_object_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("model", "engine", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.model is not None:
            object.__setattr__(self, "model", resolve_model(self.model))
        if self.batch < 1:
            raise ValueError("batch must be at least 1")
        if self.tile is not None and self.tile < 1:
            raise ValueError("tile must be at least 1")
        if self.overlap is not None and self.overlap < 0:
            raise ValueError("overlap must not be negative")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be at least 1")
        if self.min_object_size is not None and self.min_object_size < 0:
            raise ValueError("min_object_size must not be negative")

    @classmethod
    def of(cls, base: RunSpec | Path | str | None = None, **changes: Any) -> RunSpec:
        """A spec from another spec, or from a model path, with ``changes`` applied."""
        unknown = set(changes) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown run spec field(s): {', '.join(sorted(unknown))}")
        spec = base if isinstance(base, RunSpec) else cls(model=Path(base) if base is not None else None)
        return replace(spec, **changes)

    @property
    def model_path(self) -> Path | None:
        """The ONNX model to run: ``model``, else the embedded default unless an engine is given."""
        if self.model is not None:
            return self.model
        return None if self.engine is not None else default_model_path()

    def tiling(self, contract: ModelContract, *, grow: bool = False) -> TilePlan:
        """Tile, overlap and batch for a model of this contract: the spec's own where it
        sets them, else the contract's defaults. With ``grow`` (a backend on which larger
        tiles run faster: the CPU) and no tile in the spec, tiles grow up to whole frames
        while the model's activations fit in :data:`ACTIVATION_SHARE` of the memory
        available now. ValueError if they do not fit the model."""
        tiles = contract.tiles
        tile = self.tile or tiles.size
        overlap = int(tile * tiles.overlap) if self.overlap is None else self.overlap
        max_pixels = None
        if grow and self.tile is None:
            memory = available_memory() or UNKNOWN_MEMORY
            max_pixels = max(1, int(memory * ACTIVATION_SHARE) // tiles.bytes_per_pixel)
        return TilePlan(tile, overlap, self.batch, tiles.multiple_of, max_pixels=max_pixels)

    def cache(self) -> Path:
        """The cache directory in effect."""
        return self.cache_dir or Path(os.environ.get("ERNET_CACHE", Path.home() / ".cache" / "ernet"))
