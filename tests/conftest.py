"""Shared fixtures: tiny random-weight models, the real-data folder, CLI runners."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ernet.runtime.evaluation import REAL_DATA as REAL_DATA_SETTING

REPO = Path(__file__).resolve().parents[1]
#: The real frames, as the tools find them when run from the repository root.
REAL_DATA = REPO / REAL_DATA_SETTING
#: ERnet-v2's checkpoint-format facts: an example checkpoint in its released layout and
#: outputs of ERnet-v2's own code (read from ../shared, never committed).
ERNET_V2 = REPO.parent / "shared" / "ernet-v2"
#: ERNet options of the tiny random-weight test model (``ERNetConfig(**TINY_OPTIONS)``).
TINY_OPTIONS = {"n_feats": 8, "n_resgroups": 2, "n_resblocks": 2, "reduction": 4}


def run_cli(command: str, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run an installed console script (e.g. ``ernet-infer``) as a user would."""
    script = Path(sys.executable).parent / command
    return subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not any(REAL_DATA.glob("*_image.tif")):
        pytest.skip(f"real ER frames not available at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def ernet_v2() -> Path:
    """The folder of ERnet-v2's example checkpoint and reference outputs."""
    if not (ERNET_V2 / "example_swinir_nch1.pth").is_file():
        pytest.skip(f"ERnet-v2 example checkpoint not available at {ERNET_V2}")
    return ERNET_V2


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint in our format: random weights, full description."""
    torch = pytest.importorskip("torch")
    from ernet.runtime import ModelMetadata
    from ernet.training.checkpoint import save_checkpoint
    from ernet.training.models.ernet import ERNet, ERNetConfig

    torch.manual_seed(0)
    tiny = ERNetConfig(**TINY_OPTIONS)
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    save_checkpoint(path, ERNet(tiny), ModelMetadata(tiny.contract(64), tiny.architecture()), epoch=0)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint: Path) -> Path:
    """The tiny checkpoint exported to ONNX (tile size 64)."""
    pytest.importorskip("onnx")
    from ernet.export.exporter import export_checkpoint

    path = tiny_checkpoint.with_suffix(".onnx")
    export_checkpoint(tiny_checkpoint, path)
    return path


@pytest.fixture(scope="session")
def ernet_v2_onnx(ernet_v2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ERnet-v2's example checkpoint (random weights, released layout) exported to ONNX."""
    pytest.importorskip("onnx")
    from ernet.export.exporter import export_checkpoint

    path = tmp_path_factory.mktemp("ernet-v2") / "ernet-v2.onnx"
    export_checkpoint(ernet_v2 / "example_swinir_nch1.pth", path)
    return path
