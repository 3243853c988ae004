"""Acceptance 4: every bad input ends with one line naming the file, a non-zero exit
and no output left behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import run_cli
from test_io import BAD_INPUTS


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() if p.is_file() else b"<dir>" for p in folder.iterdir()}


def assert_one_error_line(done, *must_contain: str) -> None:  # noqa: ANN001
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in done.stdout + done.stderr
    for text in must_contain:
        assert text in lines[0]


INPUT_CASES = [
    "missing",
    "directory",
    "not an image",
    "corrupt TIFF",
    "truncated ImageJ stack",
    "symlink loop",
    "OME size lie",
    "FIFO",
    "device",
    "output name too long",
    "empty array",
    "1-D",
    "5-D",
    "NaN pixels",
    "inf pixels",
    "RGB",
    "multichannel",
    "frames of differing sizes",
    "frames of differing types",
]


#: Inputs a reader takes whose outputs cannot be written.
BAD_OUTPUTS = {
    "output name too long": (
        lambda d: (
            tifffile.imwrite(d / f"{'n' * 248}.tif", np.zeros((8, 8), np.uint8)),
            d / f"{'n' * 248}.tif",
        )[1],
        "_mask.tif' is 257 bytes, more than the file system allows (255): rename the input",
    ),
}


@pytest.mark.parametrize("case", INPUT_CASES)
def test_bad_input(case: str, tiny_onnx: Path, tmp_path: Path) -> None:
    make, message = {**BAD_INPUTS, **BAD_OUTPUTS}[case]
    path = make(tmp_path)
    before = _snapshot(tmp_path)
    done = run_cli("ernet-infer", path, "--model", tiny_onnx, "--provider", "cpu", "-q")
    assert_one_error_line(done, str(path), message)
    assert _snapshot(tmp_path) == before  # no output, no temporary file, input untouched


def _not_onnx(d: Path) -> Path:
    (d / "model.onnx").write_bytes(b"\x00garbage" * 100)
    return d / "model.onnx"


def _identity_onnx(path: Path, props: dict[str, str] | None = None) -> Path:
    """A valid ONNX file that is not ERNet's: x -> Identity -> y, optional metadata."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], path.stem, [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    if props:
        helper.set_model_props(model, props)
    onnx.save(model, path)
    return path


def _foreign_onnx(d: Path) -> Path:
    return _identity_onnx(d / "other.onnx")


def _ernet_metadata_wrong_io(d: Path) -> Path:
    from ernet.runtime import ModelMetadata

    return _identity_onnx(d / "renamed.onnx", ModelMetadata().to_props())


def _torch_checkpoint(d: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, d / "best.pt")
    return d / "best.pt"


def _folder(d: Path) -> Path:
    (d / "exported").mkdir()
    return d / "exported"


def _ernet_graph(path: Path, *, input_type: int | None = None, channels: int = 1, copies: int = 2) -> Path:
    """An ONNX graph with ERNet's tensor names and metadata (1 channel, 2 classes) whose
    tensors differ from what the metadata says: ``image`` of ``input_type`` with
    ``channels`` channels, ``logits`` made of ``copies`` copies of it."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from ernet.runtime import ModelMetadata

    input_type = TensorProto.FLOAT if input_type is None else input_type
    x = helper.make_tensor_value_info("image", input_type, ["N", channels, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", channels * copies, "H", "W"])
    nodes = [helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT)]
    nodes.append(helper.make_node("Concat", ["x"] * copies, ["logits"], axis=1))
    graph = helper.make_graph(nodes, path.stem, [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    helper.set_model_props(model, ModelMetadata().to_props())
    onnx.save(model, path)
    return path


MODEL_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "three classes for two": (
        lambda d: _ernet_graph(d / "k3.onnx", copies=3),
        "returns logits of shape (1, 3, 32, 32) for a 32x32 tile; its metadata (2 classes) says",
    ),
    "3-channel input": (
        lambda d: _ernet_graph(d / "c3.onnx", channels=3, copies=1),
        "fails on a float32 tile of 1 channel(s), as its metadata describes",
    ),
    "fp16 input": (
        lambda d: _ernet_graph(d / "f16.onnx", input_type=10),
        "fails on a float32 tile of 1 channel(s), as its metadata describes",
    ),
    "missing model": (lambda d: d / "absent.onnx", "model file not found"),
    "PyTorch checkpoint": (
        _torch_checkpoint,
        "a PyTorch checkpoint, not an ONNX model; export it first: ernet-export",
    ),
    "folder": (_folder, "a directory, not a model file"),
    "not ONNX": (_not_onnx, "not a loadable ONNX model"),
    "not ERNet's ONNX": (_foreign_onnx, "not an ERNet model"),
    "wrong inputs/outputs": (_ernet_metadata_wrong_io, "expected input 'image' and output 'logits'"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_bad_model(case: str, tmp_path: Path) -> None:
    """A bad model is refused when it is opened, before any input is read: the input
    here is not even an image."""
    frame = tmp_path / "frame.tif"
    frame.write_bytes(b"not read")
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    make, message = MODEL_CASES[case]
    model = make(model_dir)
    done = run_cli("ernet-infer", frame, "--model", model, "--provider", "cpu", "-q")
    assert_one_error_line(done, str(model), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.tif", "models"]


def test_outputs_are_never_overwritten_without_asking(tiny_onnx: Path, tmp_path: Path) -> None:
    frame = tmp_path / "cell.tif"
    tifffile.imwrite(frame, np.zeros((32, 32), np.uint8))
    existing = tmp_path / "cell_mask.tif"
    existing.write_bytes(b"earlier result")
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "--provider", "cpu", "-q")
    assert_one_error_line(done, str(existing), "--overwrite")
    assert existing.read_bytes() == b"earlier result"
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "--provider", "cpu", "-q", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert tifffile.imread(existing).shape == (32, 32)


def test_an_input_is_never_an_output(tiny_onnx: Path, tmp_path: Path) -> None:
    a, a_mask = tmp_path / "a.tif", tmp_path / "a_mask.tif"
    tifffile.imwrite(a, np.zeros((16, 16), np.uint8))
    tifffile.imwrite(a_mask, np.ones((16, 16), np.uint8))
    before = _snapshot(tmp_path)
    done = run_cli("ernet-infer", a, a_mask, "--model", tiny_onnx, "--provider", "cpu", "-q", "--overwrite")
    assert_one_error_line(done, "would overwrite an input")
    assert _snapshot(tmp_path) == before


def test_unavailable_provider_is_refused_not_faked(tiny_onnx: Path, tmp_path: Path) -> None:
    from ernet.runtime import RunSpec
    from ernet.runtime.backends import OnnxRuntimeBackend

    try:
        OnnxRuntimeBackend(RunSpec(tiny_onnx, "cuda"))
    except Exception:
        pass
    else:
        pytest.skip("CUDA really runs here")
    frame = tmp_path / "f.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint8))
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "--provider", "cuda", "-q")
    assert_one_error_line(done, "provider 'cuda' cannot run here")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.tif"]


def test_output_folder_that_is_a_file_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    frame = tmp_path / "f.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint8))
    (tmp_path / "taken").write_text("a file")
    before = _snapshot(tmp_path)
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "-o", tmp_path / "taken", "-q")
    assert_one_error_line(done, "taken", "not a directory")
    assert _snapshot(tmp_path) == before


def test_unwritable_output_folder(tiny_onnx: Path, tmp_path: Path) -> None:
    frame = tmp_path / "f.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint8))
    (tmp_path / "file").write_text("x")
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "-o", tmp_path / "file" / "sub", "-q")
    assert_one_error_line(done, str(tmp_path / "file" / "sub"), "cannot write here")


def test_disk_full_while_writing_leaves_nothing(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from typer.testing import CliRunner

    from ernet.runtime.cli import infer

    stack = tmp_path / "s.tif"
    tifffile.imwrite(stack, np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    real_imwrite = tifffile.imwrite

    def fills_the_disk(path, data=None, **kwargs):  # noqa: ANN001, ANN003, ANN202
        with open(path, "wb") as f:
            f.write(b"partial")
        next(iter(data))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", fills_the_disk)
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(infer.app, [str(stack), "--model", str(tiny_onnx), "--provider", "cpu", "-q"])
    monkeypatch.setattr(tifffile, "imwrite", real_imwrite)
    assert result.exit_code == 1
    assert "s_mask.tif: cannot write (No space left on device)" in result.output
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("sent", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_leaves_no_half_written_output(sent: str, tiny_onnx: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    stack = tmp_path / "long.tif"
    tifffile.imwrite(stack, np.zeros((4000, 96, 96), np.uint8), imagej=True, metadata={"axes": "TYX"})
    before = _snapshot(tmp_path)
    command = Path(sys.executable).parent / "ernet-infer"
    args = [str(command), str(stack), "--model", str(tiny_onnx), "--batch", "1", "--threads", "1", "-q"]
    # A run started in the background (nohup, `&` without job control) inherits an ignored
    # SIGINT, and Python then installs no KeyboardInterrupt handler: give the child Ctrl-C back.
    proc = subprocess.Popen(
        args,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".long_mask.tif.*.part")):  # it is writing
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(getattr(signal, sent))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert err.strip().splitlines() == [f"error: {stack}: interrupted; its outputs were not written"]
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("entry", ["infer", "train"])
def test_ctrl_c_while_a_command_starts_is_one_line(entry: str, tmp_path: Path) -> None:
    """Ctrl-C as the command's libraries load (here: raised by the import of the command's
    module, exactly where the signal lands on a cold start) is one line and exit 130."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Interrupting:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.endswith('.cli.infer') or name.endswith('training.cli'):\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupting())\n"
        f"from ernet.runtime.cli.launch import {entry}\n"
        f"{entry}()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert (done.returncode, done.stderr, done.stdout) == (130, "error: interrupted\n", "")


def test_commands_start_without_loading_their_libraries() -> None:
    """The window in which Ctrl-C could precede the launcher is the interpreter's own start."""
    import subprocess
    import sys

    code = (
        "import sys, ernet.runtime.cli.launch, ernet.runtime\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'onnxruntime', 'typer', 'torch'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_console_scripts_go_through_the_launcher() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    scripts = pyproject["project"]["scripts"]
    assert sorted(scripts) == sorted(COMMANDS)
    assert all(target.startswith("ernet.runtime.cli.launch:") for target in scripts.values())


COMMANDS = [
    "ernet-infer",
    "ernet-analyze",
    "ernet-validate",
    "ernet-train",
    "ernet-simulate",
    "ernet-export",
    "ernet-bench",
    "ernet-live",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_option_is_one_usage_line(command: str, tmp_path: Path) -> None:
    done = run_cli(command, "--no-such-option", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert_one_error_line(done, "No such option: --no-such-option", f"(see {command} --help)")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_zero(command: str, tmp_path: Path) -> None:
    done = run_cli(command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout and done.stderr == ""


def test_bad_option_value_is_one_usage_line(tmp_path: Path) -> None:
    done = run_cli("ernet-infer", "--tile", "abc", "x.tif", cwd=tmp_path)
    assert done.returncode == 2
    assert_one_error_line(done, "'--tile'", "(see ernet-infer --help)")


def test_missing_argument_is_one_usage_line(tmp_path: Path) -> None:
    done = run_cli("ernet-infer", cwd=tmp_path)
    assert done.returncode == 2
    assert_one_error_line(done, "Missing argument", "(see ernet-infer --help)")


MISSING_EXTRAS = [
    ("ernet.training.cli", "train_main", "ernet-train", "torch", "train", ["data"]),
    ("ernet.export.cli", "main", "ernet-export", "onnx", "export", ["model.pt"]),
    ("ernet.runtime.cli.analyze", "main", "ernet-analyze", "skan", "analysis", ["a_mask.tif"]),
    ("ernet.runtime.cli.live", "main", "ernet-live", "pymmcore_plus", "acquisition", ["--frames", "1"]),
]


@pytest.mark.parametrize(("module", "entry", "program", "missing", "extra", "args"), MISSING_EXTRAS)
def test_a_missing_extra_is_named_in_one_line(
    module: str, entry: str, program: str, missing: str, extra: str, args: list[str], tmp_path: Path
) -> None:
    import subprocess
    import sys

    (tmp_path / "data").mkdir()
    (tmp_path / "pairs").mkdir()
    tifffile.imwrite(tmp_path / "pairs" / "a_image.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    tifffile.imwrite(tmp_path / "pairs" / "a_mask.tif", np.eye(64, dtype=np.uint8))
    tifffile.imwrite(tmp_path / "a_mask.tif", np.eye(64, dtype=np.uint8))
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        f"from {module} import {entry}\n"
        f"sys.argv = [{program!r}, *sys.argv[1:]]; {entry}()"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    install = f"pip install 'ernet[{extra}]'"
    assert done.stderr.splitlines() == [
        f"error: {program} needs the '{extra}' extra ({missing} is not installed): {install}"
    ]


def test_analyze_refuses_an_intensity_image(tmp_path: Path) -> None:
    image = tmp_path / "cell.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 4000, (64, 64), np.uint16))
    before = _snapshot(tmp_path)
    done = run_cli("ernet-analyze", image)
    assert_one_error_line(done, str(image), "distinct values, not class ids: an intensity image?")
    assert _snapshot(tmp_path) == before


APPS = {
    "ernet-infer": "ernet.runtime.cli.infer:app",
    "ernet-analyze": "ernet.runtime.cli.analyze:app",
    "ernet-validate": "ernet.runtime.cli.validate:app",
    "ernet-train": "ernet.training.cli:train_app",
    "ernet-simulate": "ernet.training.cli:simulate_app",
    "ernet-export": "ernet.export.cli:app",
    "ernet-bench": "ernet.benchmarks.cli:app",
    "ernet-live": "ernet.runtime.cli.live:app",
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_says_what_it_does(command: str) -> None:
    import importlib

    import typer

    module, name = APPS[command].split(":")
    click_command = typer.main.get_command(getattr(importlib.import_module(module), name))
    silent = [p.name for p in click_command.params if not getattr(p, "help", None)]
    assert silent == [], f"{command}: options without help: {silent}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_uncut(command: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    script = Path(sys.executable).parent / command
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout and "<bool>" not in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80


def test_index_cannot_cut_the_frame(tiny_onnx: Path, tmp_path: Path) -> None:
    stack = tmp_path / "s.tif"
    tifffile.imwrite(stack, np.zeros((3, 16, 16), np.uint8), imagej=True, metadata={"axes": "TYX"})
    done = run_cli("ernet-infer", stack, "--model", tiny_onnx, "--index", "Y=0", "-q")
    assert_one_error_line(done, f"{stack}: --index Y=... would cut the frame: only leading axes can be fixed")


def test_the_index_suggested_for_unnamed_axes_works(tiny_onnx: Path, tmp_path: Path) -> None:
    """tifffile calls every unknown axis Q; repeated ones are renamed so each can be named."""
    deep = tmp_path / "deep.tif"
    data = np.random.default_rng(0).integers(0, 255, (2, 3, 2, 16, 16), np.uint8)
    tifffile.imwrite(deep, data)
    refused = run_cli("ernet-infer", deep, "--model", tiny_onnx, "--provider", "cpu", "-q")
    assert_one_error_line(refused, "axes 'QBDYX'", "--index Q=0")
    done = run_cli("ernet-infer", deep, "--model", tiny_onnx, "--provider", "cpu", "-q", "--index", "Q=1")
    assert done.returncode == 0, done.stderr
    with tifffile.TiffFile(tmp_path / "deep_mask.tif") as tif:
        assert (tif.series[0].axes, tif.series[0].shape) == ("BDYX", (3, 2, 16, 16))
        mask = tif.asarray()
    from ernet.runtime import Segmenter

    with Segmenter(tiny_onnx, provider="cpu") as seg:
        assert np.array_equal(mask[2, 1], seg.segment(data[1, 2, 1]))


def test_a_library_warning_is_one_note_naming_the_file(tiny_onnx: Path, tmp_path: Path) -> None:
    """tifffile warns when the file is described and again on every pass over its pages."""
    stack = tmp_path / "ij.tif"
    frames = np.random.default_rng(0).integers(0, 255, (3, 16, 16), dtype=np.uint8)
    tifffile.imwrite(stack, frames, imagej=True, metadata={"axes": "TYX"})
    stack.write_bytes(stack.read_bytes().replace(b"frames=3", b"frames=0"))  # invalid: read as plain pages
    done = run_cli("ernet-infer", stack, "--model", tiny_onnx, "--provider", "cpu", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"note: {stack}: ImageJ series metadata invalid or corrupted file"]
    assert tifffile.imread(tmp_path / "ij_mask.tif").shape == (3, 16, 16)


def test_a_long_name_whose_output_fits_is_segmented(tiny_onnx: Path, tmp_path: Path) -> None:
    """The temporary file an output is written as has a shorter name than the output."""
    frame = tmp_path / f"{'n' * 240}.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint8))
    done = run_cli("ernet-infer", frame, "--model", tiny_onnx, "--provider", "cpu", "-q")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"{'n' * 240}_mask.tif").is_file()


def test_bad_inputs_are_refused_before_the_model_is_loaded(tmp_path: Path) -> None:
    done = run_cli("ernet-infer", tmp_path / "absent.tif", "--model", tmp_path / "absent.onnx")
    assert_one_error_line(done, "absent.tif: file not found")  # not the model's error


@pytest.mark.parametrize(
    ("option", "value"), [("--tile", "0"), ("--overlap", "-1"), ("--batch", "0"), ("--threads", "-1")]
)
def test_out_of_range_numbers_are_usage_errors_naming_the_option(
    option: str, value: str, tmp_path: Path
) -> None:
    done = run_cli("ernet-infer", "x.tif", option, value, cwd=tmp_path)
    assert done.returncode == 2
    assert_one_error_line(done, f"Invalid value for '{option}'", "(see ernet-infer --help)")


BASE_DEPENDENCIES = [
    ("ernet.runtime.cli.infer", "main", "ernet-infer", "onnxruntime", ["f.tif"]),
    ("ernet.training.cli", "simulate_main", "ernet-simulate", "scipy", ["out"]),
    ("ernet.runtime.cli.validate", "main", "ernet-validate", "scipy", ["pairs"]),
]


@pytest.mark.parametrize(("module", "entry", "program", "missing", "args"), BASE_DEPENDENCIES)
def test_a_missing_base_dependency_is_not_blamed_on_an_extra(
    module: str, entry: str, program: str, missing: str, args: list[str], tmp_path: Path
) -> None:
    import subprocess
    import sys

    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        f"from {module} import {entry}\n"
        f"sys.argv = [{program!r}, *sys.argv[1:]]; {entry}()"
    )
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((16, 16), np.uint8))
    (tmp_path / "pairs").mkdir()
    tifffile.imwrite(tmp_path / "pairs" / "a_image.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    tifffile.imwrite(tmp_path / "pairs" / "a_mask.tif", np.eye(64, dtype=np.uint8))
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    message = f"error: {missing} is not installed, though ernet needs it: reinstall ernet"
    assert done.stderr.splitlines() == [message]


def test_the_extras_named_are_the_package_s() -> None:
    import tomllib

    from ernet.runtime.cli.policy import EXTRAS

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    distributions = {
        "skimage": "scikit-image",
        "pymmcore_plus": "pymmcore-plus",
        "useq": "useq-schema",
        "ome_zarr": "ome-zarr",
        "ome_zarr_models": "ome-zarr-models",
    }
    for extra, modules in EXTRAS.items():
        named = " ".join(extras[extra])
        assert all(distributions.get(m, m) in named for m in modules), extra
