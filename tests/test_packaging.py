"""Packaging: a light runtime, one namespace, one ONNX Runtime distribution."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conftest import REPO

HEAVY = ("torch", "onnx", "tensorrt", "cuda.bindings", "dask", "zarr", "napari", "magicgui", "qtpy", "PyQt6")


def _python(code: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize(
    "module", ["ernet.runtime", "ernet.runtime.cli.infer", "ernet.runtime.cli.analyze", "ernet.runtime.io"]
)
def test_runtime_imports_without_heavy_dependencies(module: str, tmp_path: Path) -> None:
    out = _python(f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))", tmp_path)
    assert out == "[]"


def test_ernet_infer_help_loads_no_heavy_dependency(tmp_path: Path) -> None:
    code = (
        "import sys; sys.argv = ['ernet-infer', '--help']\n"
        "from ernet.runtime.cli.infer import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert _python(code, tmp_path).splitlines()[-1] == "LOADED []"


def test_no_bare_top_level_modules(tmp_path: Path) -> None:
    code = (
        "import importlib.util as u; print([n for n in ('runtime', 'export', 'training') if u.find_spec(n)])"
    )
    assert _python(code, tmp_path) == "[]"


def test_subpackages_live_in_top_level_folders() -> None:
    import ernet.export
    import ernet.runtime
    import ernet.training

    for package, folder in (
        (ernet.runtime, "runtime"),
        (ernet.training, "training"),
        (ernet.export, "export"),
    ):
        assert Path(package.__file__).resolve().parent == REPO / folder


def _requirements() -> tuple[list[str], dict[str, list[str]]]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["dependencies"], project["optional-dependencies"]


@pytest.mark.parametrize(
    "platform",
    [
        ("linux", "x86_64"),
        ("win32", "x86_64"),
        ("linux", "aarch64"),
        ("darwin", "arm64"),
        ("darwin", "x86_64"),
    ],
)
def test_exactly_one_onnxruntime_distribution_per_platform(platform: tuple[str, str]) -> None:
    from packaging.requirements import Requirement

    base, _ = _requirements()
    env = {"sys_platform": platform[0], "platform_machine": platform[1]}
    chosen = [
        r.name
        for r in map(Requirement, base)
        if r.name.startswith("onnxruntime") and (r.marker is None or r.marker.evaluate(env))
    ]
    assert len(chosen) == 1
    expected = "onnxruntime-gpu" if platform in (("linux", "x86_64"), ("win32", "x86_64")) else "onnxruntime"
    assert chosen == [expected]


def test_base_install_is_the_runtime_alone() -> None:
    from packaging.requirements import Requirement

    base, extras = _requirements()
    names = {Requirement(r).name for r in base}
    assert not names & {"torch", "onnx", "tensorrt", "onnxscript"}
    assert {"numpy", "tifffile", "typer"} <= names
    assert {"train", "export", "tensorrt", "dev"} <= extras.keys()
    for extra in extras.values():  # no extra drags in a second ONNX Runtime
        assert not {Requirement(r).name for r in extra} & {"onnxruntime", "onnxruntime-gpu"}
        assert all(
            Requirement(r).specifier == Requirement("torch==2.13.0").specifier
            for r in extra
            if Requirement(r).name == "torch"
        )


def test_warns_when_two_onnxruntime_distributions_are_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from ernet.runtime.backends import ort

    both = ["onnxruntime", "onnxruntime-gpu"]
    monkeypatch.setattr(ort, "installed_onnxruntime_distributions", lambda: both)
    with pytest.warns(RuntimeWarning, match="onnxruntime, onnxruntime-gpu"):
        ort.import_onnxruntime()
    monkeypatch.setattr(ort, "installed_onnxruntime_distributions", lambda: ["onnxruntime-gpu"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ort.import_onnxruntime()


def test_wheel_installs_nothing_but_the_ernet_package(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    import zipfile

    (wheel,) = tmp_path.glob("ernet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"ernet", wheel.name.split("-py3")[0] + ".dist-info"}
    # every sub-package of every layer is packaged without being listed anywhere, and the model
    layers = ("runtime", "training", "export", "benchmarks")
    inits = {f"ernet/{p.relative_to(REPO)}" for layer in layers for p in (REPO / layer).rglob("__init__.py")}
    assert inits <= set(names)
    assert "ernet/runtime/models/default.onnx" in names and "ernet/runtime/py.typed" in names
