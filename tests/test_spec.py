"""The run spec: frozen, picklable, resolved once against the model's contract."""

from __future__ import annotations

import pickle
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from ernet.runtime import DEFAULT_MODEL, ModelContract, RunSpec, Segmenter, TileSpec
from ernet.runtime.tiling import TilePlan


def test_spec_is_frozen_picklable_and_takes_paths_as_text() -> None:
    spec = RunSpec("m.onnx", "cpu", threads=2, tile=128, batch=8, engine="m.plan")
    assert spec.model == Path("m.onnx") and spec.engine == Path("m.plan")
    assert pickle.loads(pickle.dumps(spec)) == spec  # what a cluster worker receives
    with pytest.raises(FrozenInstanceError):
        spec.tile = 64  # type: ignore[misc]
    for bad in ({"batch": 0}, {"tile": 0}, {"overlap": -1}, {"threads": 0}):
        with pytest.raises(ValueError):
            RunSpec(**bad)  # type: ignore[arg-type]


def test_defaults_come_from_the_contract_once() -> None:
    contract = ModelContract(tiles=TileSpec(96, multiple_of=8, overlap=0.5))
    assert RunSpec().tiling(contract) == TilePlan(96, 48, 4, 8)
    assert RunSpec(tile=64).tiling(contract) == TilePlan(64, 32, 4, 8)  # the share, of the tile asked for
    assert RunSpec(tile=64, overlap=0, batch=2).tiling(contract) == TilePlan(64, 0, 2, 8)
    with pytest.raises(ValueError, match="need 0 <= overlap < tile"):
        RunSpec(tile=64, overlap=64).tiling(contract)
    with pytest.raises(ValueError, match="not a multiple of 8"):
        RunSpec(tile=60).tiling(contract)


def test_tiles_grow_with_the_memory_available_unless_a_tile_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from ernet.runtime import spec as spec_module

    monkeypatch.setattr(spec_module, "available_memory", lambda: 8 << 30)
    contract = ModelContract(tiles=TileSpec(96, multiple_of=8, overlap=0.5, activation_bytes=1024))
    # half of 8 GiB for activations of 1 KiB per pixel
    assert RunSpec().tiling(contract, grow=True) == TilePlan(96, 48, 4, 8, max_pixels=4 << 20)
    assert RunSpec(tile=64).tiling(contract, grow=True) == TilePlan(64, 32, 4, 8)  # the tile asked for
    unknown = ModelContract(tiles=TileSpec(96, multiple_of=8))  # an artefact older than the estimate
    assert RunSpec().tiling(unknown, grow=True).max_pixels == (4 << 30) // 2048
    monkeypatch.setattr(spec_module, "available_memory", lambda: None)  # the system does not say
    assert RunSpec().tiling(contract, grow=True).max_pixels == (1 << 30) // 1024


def test_memory_planned_for_a_frame_counts_the_model_s_activations(tiny_onnx: Path) -> None:
    with Segmenter(tiny_onnx, provider="cpu") as seg:
        whole = seg.plan.fitted(1000, 1000).tile
        assert whole == 1000
        activations = whole * whole * seg.contract.tiles.bytes_per_pixel
        assert activations < seg.frame_bytes(1000, 1000) < activations + 60 * 1000 * 1000  # + buffers


def test_model_defaults_to_the_embedded_one_unless_an_engine_is_given() -> None:
    assert RunSpec().model_path == DEFAULT_MODEL
    assert RunSpec(engine=Path("m.plan")).model_path is None
    assert RunSpec(Path("m.onnx"), engine=Path("m.plan")).model_path == Path("m.onnx")


def test_segmenter_is_built_from_a_spec_or_its_fields(tiny_onnx: Path) -> None:
    spec = RunSpec(tiny_onnx, "cpu", tile=48, batch=3)
    with Segmenter(spec) as a, Segmenter(tiny_onnx, provider="cpu", tile=48, batch=3) as b:
        assert a.spec == b.spec == spec
        assert a.plan == b.plan == TilePlan(48, 12, 3)
    assert RunSpec.of(spec, batch=1) == RunSpec(tiny_onnx, "cpu", tile=48, batch=1)
    with pytest.raises(TypeError, match="unknown run spec field"):
        RunSpec.of(spec, tiles=3)
