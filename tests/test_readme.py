"""The README's Python snippets run as written (given the files they name)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import run_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def python_snippets() -> list[str]:
    """Every ```python block of the README, in order."""
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.S | re.M)


def test_the_readme_has_its_snippets() -> None:
    assert len(python_snippets()) >= 2


def test_snippets_that_need_other_systems_compile() -> None:
    """Snippets fenced ```python (needs ...) are not run here, but are Python."""
    others = re.findall(
        r"^```python  \(needs .*?\)\n(.*?)^```$", README.read_text(encoding="utf-8"), re.S | re.M
    )
    assert others
    for snippet in others:
        compile(snippet, "README.md snippet", "exec")


@pytest.mark.parametrize("index", range(len(python_snippets())))
def test_readme_snippet_runs(
    index: int, tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run snippet ``index`` in a folder holding the files the snippets open."""
    rng = np.random.default_rng(index)
    shutil.copy(tiny_onnx, tmp_path / "model.onnx")
    tifffile.imwrite(tmp_path / "frame.tif", rng.integers(0, 4000, (70, 90), np.uint16))
    tifffile.imwrite(tmp_path / "stack.tif", rng.integers(0, 4000, (3, 2, 40, 50), np.uint16))
    tifffile.imwrite(tmp_path / "timelapse.tif", rng.integers(0, 255, (5, 40, 50), np.uint8))
    if "cells.ome.zarr" in python_snippets()[index]:
        zarr = pytest.importorskip("zarr")
        array = zarr.create_array(tmp_path / "cells.ome.zarr" / "0", shape=(3, 64, 80), dtype="uint16")
        array[:] = rng.integers(0, 4000, (3, 64, 80), np.uint16)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(python_snippets()[index], f"README.md python snippet {index}", "exec"), namespace)  # noqa: S102
    if "stream" in namespace:  # errors inside a stream are counted, not raised: check them
        stats = namespace["stream"].stats()  # type: ignore[attr-defined]
        assert stats.failed == 0 and stats.completed == 5, stats
        assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [f"{i}_mask.tif" for i in range(5)]
    if "result" in namespace:
        assert namespace["result"].axes == "TZYX"  # type: ignore[attr-defined]
    if "cells.ome.zarr" in python_snippets()[index]:
        written = zarr.open_array(tmp_path / "cells_labels.zarr", mode="r")
        assert written.shape == (3, 64, 80) and written.dtype == np.uint8


def command_lines() -> list[tuple[str, list[str]]]:
    """Each ``ernet-*`` command line of the README's indented blocks (continuations
    joined): the command and the options it names."""
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    text = re.sub(r"\n {4,}(?=\[)", " ", text)  # a synopsis' continuation lines
    found = []
    for line in re.findall(r"^ {4,}(?:\.venv/bin/)?(ernet-[a-z]+.*)$", text, re.M):
        command, _, rest = line.partition(" ")
        options = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest.split("#")[0])
        found.append((command, options))
    return found


def test_the_readme_shows_every_command() -> None:
    shown = {command for command, _ in command_lines()}
    assert {"ernet-infer", "ernet-analyze", "ernet-train", "ernet-simulate", "ernet-export"} <= shown
    assert {"ernet-validate", "ernet-bench", "ernet-live"} <= shown


@pytest.mark.parametrize(("command", "options"), command_lines())
def test_readme_command_lines_use_real_options(command: str, options: list[str], tmp_path: Path) -> None:
    """Every option a README command line names is one its --help lists."""
    done = run_cli(command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"(--[a-z][a-z0-9-]*)", done.stdout))
    assert [o for o in options if o not in listed] == []
