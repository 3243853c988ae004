"""Segmentation on a real Dask cluster (a LocalCluster of 2 worker processes on
127.0.0.1): labels equal one process's bit for bit, a killed worker's frames are
recomputed, interrupted runs resume, and problems are one line."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.arrays import segment_array
from ernet.runtime.errors import OutputError
from ernet.runtime.io import open_image
from ernet.runtime.pipeline import Outputs
from ernet.training.synthetic import generate_stack
from ernet.training.synthetic.stack import SyntheticConfig

from conftest import run_cli

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")
from ome_zarr.format import FormatV04, FormatV05  # noqa: E402
from ome_zarr.writer import write_image  # noqa: E402
from ome_zarr_models.v04.image import Image as Image04  # noqa: E402
from ome_zarr_models.v05.image import Image as Image05  # noqa: E402
from ome_zarr_models.v05.image_label import ImageLabel  # noqa: E402

from ernet.runtime.cluster import SourceRef, segment_dask, segment_on_cluster  # noqa: E402
from ernet.runtime.cluster.pipeline import region_side  # noqa: E402
from ernet.runtime.cluster.sessions import ModelRef, held  # noqa: E402

#: The embedded default model: real labels, both classes in every frame.
MODEL = "default"
FRAMES, HEIGHT, WIDTH = 12, 192, 224


@pytest.fixture(scope="module")
def client() -> Any:
    """A client of 2 worker processes (one thread each) on 127.0.0.1."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    """A 16-bit time-lapse of generated ER."""
    frames = generate_stack(FRAMES, 5, SyntheticConfig(height=HEIGHT, width=WIDTH, bit_depth=16))
    return np.stack([f.image for f in frames])


@pytest.fixture(scope="module")
def stack_tif(stack: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster") / "cells.tif"
    tifffile.imwrite(
        path, stack, imagej=True, resolution=(1 / 0.065, 1 / 0.065), metadata={"axes": "TYX", "unit": "um"}
    )
    return path


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter(MODEL, warmup=False)


def _labels(path: Path) -> np.ndarray:
    return open_image(path).data


@pytest.mark.parametrize("normalize", ["frame", "stack"])
def test_a_tiff_stack_on_two_workers_equals_one_process(
    client: Any, stack_tif: Path, tmp_path: Path, normalize: str
) -> None:
    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    one = run_cli("ernet-infer", stack_tif, "--out", tmp_path / "one", "--normalize", normalize, "-q")
    assert one.returncode == 0, one.stderr
    # relative paths, from a folder that is not the workers' own
    out = os.path.relpath(tmp_path / "two", stack_tif.parent)
    two = run_cli(
        "ernet-infer", stack_tif.name, "--dask", address, "--out", out, "--normalize", normalize,
        cwd=stack_tif.parent,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr
    single, distributed_labels = (
        _labels(tmp_path / "one" / "cells_mask.tif"),
        _labels(tmp_path / "two" / "cells_mask.ome.zarr"),
    )
    assert set(np.unique(single)) == {0, 1}
    np.testing.assert_array_equal(distributed_labels, single)
    assert f"{FRAMES}/{FRAMES} frames" in two.stderr  # progress from the futures
    assert "frames/s" in two.stdout


def _ngff_input(path: Path, data: np.ndarray, version: str) -> Path:
    """``data`` (T x Z x Y x X) as an NGFF image with a scale and units per axis."""
    fmt = FormatV04() if version == "0.4" else FormatV05()
    group = zarr.open_group(path, mode="w", zarr_format=fmt.zarr_format)
    write_image(
        data,
        group,
        axes="tzyx",
        fmt=fmt,
        scale_factors=[2],
        scale={"t": 2.5, "z": 0.3, "y": 0.065, "x": 0.065},
        axes_units={"t": "second", "z": "micrometer", "y": "micrometer", "x": "micrometer"},
    )
    return path


def _multiscale(path: Path, version: str) -> Any:
    """The first multiscale of the image at ``path``, as ome-zarr-models reads it."""
    model = Image04 if version == "0.4" else Image05
    return model.from_zarr(zarr.open_group(path, mode="r")).ome_attributes.multiscales[0]


def test_an_ome_zarr_input_on_a_local_cluster(stack: np.ndarray, tmp_path: Path) -> None:
    """NGFF 0.4 in, ``--dask local:2`` (its own cluster): the labels of one process, and
    an OME-Zarr image-label whose axes and scale the NGFF library reads as the input's."""
    source = _ngff_input(tmp_path / "cells.ome.zarr", stack[:8].reshape(4, 2, HEIGHT, WIDTH), "0.4")
    one = run_cli("ernet-infer", source, "--out", tmp_path / "one", "--normalize", "stack", "-q")
    assert one.returncode == 0, one.stderr
    two = run_cli(
        "ernet-infer", source, "--dask", "local:2", "--out", tmp_path / "two", "--normalize", "stack", "-q"
    )
    assert two.returncode == 0, two.stderr
    mask = tmp_path / "two" / "cells_mask.ome.zarr"
    np.testing.assert_array_equal(_labels(mask), _labels(tmp_path / "one" / "cells_mask.ome.zarr"))
    written, given = _multiscale(mask, "0.5"), _multiscale(source, "0.4")
    assert [a.name for a in written.axes] == [a.name for a in given.axes] == ["t", "z", "y", "x"]
    assert [a.unit for a in written.axes] == [a.unit for a in given.axes]
    assert (
        written.datasets[0].coordinateTransformations[0].scale
        == given.datasets[0].coordinateTransformations[0].scale
    )
    label = ImageLabel.from_zarr(zarr.open_group(mask, mode="r")).ome_attributes.image_label
    assert [c.label_value for c in label.colors] == [0, 1]


@pytest.mark.parametrize(("version", "on_cluster"), [("0.4", True), ("0.5", False)])
def test_labels_into_the_input_image(
    client: Any, stack: np.ndarray, tmp_path: Path, version: str, on_cluster: bool
) -> None:
    """--labels-into-input adds labels/ernet the NGFF way (on a cluster and in one
    process) and changes nothing else."""
    source = _ngff_input(tmp_path / "cells.zarr", stack[:4].reshape(2, 2, HEIGHT, WIDTH), version)
    before = _hashes(source)
    cluster = ["--dask", client.scheduler.address] if on_cluster else []
    done = run_cli("ernet-infer", source, "--labels-into-input", *cluster, "-q")
    assert done.returncode == 0, done.stderr
    after = _hashes(source)
    assert {p: after.get(p) for p in before} == before  # every file there before, unchanged
    assert all(p.startswith("labels/") for p in set(after) - set(before))
    model = Image04 if version == "0.4" else Image05
    image = model.from_zarr(zarr.open_group(source, mode="r"))
    assert image.labels is not None and image.labels.ome_attributes.labels == ["ernet"]
    labels = open_image(source / "labels" / "ernet")
    one = run_cli("ernet-infer", source, "--out", tmp_path / "one", "-q")
    np.testing.assert_array_equal(labels.data, _labels(tmp_path / "one" / "cells_mask.ome.zarr"))
    assert not any(p.name.endswith(".partial") for p in source.rglob("*")), "temporary store left behind"
    again = run_cli("ernet-infer", source, "--labels-into-input", "-q")
    assert again.returncode == 1 and "exists" in again.stderr and one.returncode == 0


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def _reference(segmenter: Segmenter, stack: np.ndarray) -> np.ndarray:
    return segment_array(segmenter, stack, "TYX").labels


def test_a_killed_worker_s_frames_are_recomputed(
    client: Any, segmenter: Segmenter, stack: np.ndarray, stack_tif: Path, tmp_path: Path
) -> None:
    image = open_image(stack_tif)
    killed: list[int] = []

    def kill_a_busy_worker(n: int) -> None:
        if killed or n == 0:
            return
        pids = client.run(os.getpid)
        busy = max(client.processing().items(), key=lambda item: len(item[1]))
        assert busy[1], "no frame left in progress to recompute"
        killed.append(len(busy[1]))
        os.kill(pids[busy[0]], signal.SIGKILL)

    outputs = Outputs(tmp_path / "cells_mask.ome.zarr")
    segment_on_cluster(client, segmenter, image, SourceRef(stack_tif), outputs, advance=kill_a_busy_worker)
    assert killed
    np.testing.assert_array_equal(_labels(outputs.mask), _reference(segmenter, stack))
    client.wait_for_workers(2, timeout=60)


def test_an_interrupted_run_resumes(
    client: Any,
    segmenter: Segmenter,
    stack: np.ndarray,
    stack_tif: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ernet.runtime.cluster import pipeline

    monkeypatch.setattr(pipeline, "FRAMES_PER_TASK", 1)  # frames left to do once the running ones finish
    image, source = open_image(stack_tif), SourceRef(stack_tif)
    outputs = Outputs(tmp_path / "cells_mask.ome.zarr", tmp_path / "cells_probabilities.ome.zarr")
    seen = []

    def interrupt(n: int) -> None:
        seen.append(n)
        if sum(seen) >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        segment_on_cluster(client, segmenter, image, source, outputs, advance=interrupt)
    assert not any(client.processing().values()), "cancelled tasks still running after the run stopped"
    assert not outputs.mask.exists(), "a partial result under the output's name"
    with pytest.raises(OutputError, match="different run"):
        segment_on_cluster(client, segmenter, image, source, outputs, normalize_over="stack", resume=True)
    counts: list[int] = []
    segment_on_cluster(client, segmenter, image, source, outputs, resume=True, advance=counts.append)
    assert 3 <= counts[0] < FRAMES, "the frames done before were not skipped"
    assert sum(counts) == FRAMES
    np.testing.assert_array_equal(_labels(outputs.mask), _reference(segmenter, stack))
    probabilities = open_image(outputs.probabilities, channel=1).data  # type: ignore[arg-type]
    expected = segment_array(segmenter, stack, "TYX", probabilities="uint8").probabilities
    np.testing.assert_array_equal(probabilities, expected[:, 1])


def test_segment_dask_is_lazy_and_equals_one_process(
    client: Any, segmenter: Segmenter, stack: np.ndarray
) -> None:
    lazy = segment_dask(da.from_array(stack, chunks=(2, HEIGHT, WIDTH)), "TYX", MODEL)
    assert isinstance(lazy, da.Array) and lazy.shape == stack.shape and lazy.dtype == np.uint8
    np.testing.assert_array_equal(lazy.compute(), _reference(segmenter, stack))
    plan = segmenter.plan.fitted(HEIGHT, WIDTH)  # the tiling the workers were sent
    key = ModelRef.of(RunSpec.of(MODEL, tile=plan.tile, overlap=plan.overlap)).key
    sessions = client.run(held)  # worker address -> {model key: ONNX Runtime threads}
    assert len(sessions) == 2 and all(keys.get(key) == 1 for keys in sessions.values())
    stacked = segment_dask(da.from_array(stack[:4], chunks=(1, HEIGHT, WIDTH)), "TYX", normalize="stack")
    expected = segment_array(segmenter, stack[:4], "TYX", normalize="stack").labels
    np.testing.assert_array_equal(stacked.compute(), expected)


def test_split_planes_join_without_seams(client: Any, segmenter: Segmenter, stack: np.ndarray) -> None:
    """Planes chunked in Y and X are segmented region by region with the tiling overlap
    as margin: the joins disagree with whole planes no more than elsewhere."""
    whole = _reference(segmenter, stack[:3])
    split = segment_dask(da.from_array(stack[:3], chunks=(1, HEIGHT // 2, WIDTH // 2)), "TYX").compute()
    assert (split == whole).mean() > 0.995
    seams = np.zeros((HEIGHT, WIDTH), bool)
    seams[HEIGHT // 2 - 2 : HEIGHT // 2 + 2] = seams[:, WIDTH // 2 - 2 : WIDTH // 2 + 2] = True
    differ = split != whole
    assert differ[:, seams].mean() <= max(0.01, 3 * differ[:, ~seams].mean())


def test_an_unreachable_scheduler_is_one_line(stack_tif: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    done = run_cli("ernet-infer", stack_tif, "--dask", "tcp://127.0.0.1:9", "--out", tmp_path)
    assert done.returncode == 1
    assert time.monotonic() - start < 60
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert "tcp://127.0.0.1:9" in line and "no Dask scheduler answers" in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--resume"], "add --dask"),
        (["--dask", "local:2", "--metrics"], "--metrics is made in one process"),
        (["--dask", "local:2", "--out-format", "tif"], "workers write OME-Zarr"),
        (["--dask", "local:x"], "expected local:N"),
    ],
)
def test_cluster_options_that_do_not_go_together(stack_tif: Path, options: list[str], message: str) -> None:
    done = run_cli("ernet-infer", stack_tif, *options)
    assert done.returncode in (1, 2) and message in done.stderr


def test_a_failed_frame_then_resume_from_the_command_line(
    client: Any, stack: np.ndarray, tmp_path: Path
) -> None:
    """A folder of TIFFs whose 7th file is damaged: one line naming it, the frames done
    kept; once mended, --resume completes the store as one process would; the cluster
    keeps no session of the finished runs."""
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = stack[:, :100, :120]
    for i, frame in enumerate(frames):
        tifffile.imwrite(folder / f"t{i}.tif", frame if i != 6 else frame[:90])
    sessions_before = client.run(held)
    address = client.scheduler.address
    failed = run_cli("ernet-infer", folder, "--dask", address, "--out", tmp_path / "out")
    assert failed.returncode == 1
    (line,) = [line for line in failed.stderr.splitlines() if line.startswith("error")]
    assert "t6.tif" in line and "rerun with --resume" in line, line
    assert not (tmp_path / "out" / "frames_mask.ome.zarr").exists()
    tifffile.imwrite(folder / "t6.tif", frames[6])
    resumed = run_cli("ernet-infer", folder, "--dask", address, "--out", tmp_path / "out", "--resume", "-q")
    assert resumed.returncode == 0, resumed.stderr
    one = run_cli("ernet-infer", folder, "--out", tmp_path / "one", "-q")
    assert one.returncode == 0, one.stderr
    np.testing.assert_array_equal(
        _labels(tmp_path / "out" / "frames_mask.ome.zarr"), _labels(tmp_path / "one" / "frames_mask.tif")
    )
    assert client.run(held) == sessions_before
    tifffile.imwrite(folder / "t12.tif", frames[0])  # the workers must not read what they opened before
    again = run_cli("ernet-infer", folder, "--dask", address, "--out", tmp_path / "out", "--overwrite", "-q")
    assert again.returncode == 0, again.stderr
    assert open_image(tmp_path / "out" / "frames_mask.ome.zarr").shape == (FRAMES + 1, 100, 120)


def test_planes_too_large_for_a_worker_are_split(
    client: Any, segmenter: Segmenter, stack: np.ndarray, stack_tif: Path, tmp_path: Path
) -> None:
    """Regions with a margin of the tiling overlap, written by separate tasks into chunks
    of their own: complete, and joined without seams."""
    image = open_image(stack_tif)
    outputs = Outputs(tmp_path / "m.ome.zarr", tmp_path / "p.ome.zarr")
    assert region_side(segmenter, image, outputs, budget=None) is None
    assert region_side(segmenter, image, outputs, budget=10**12) is None
    assert region_side(segmenter, image, outputs, budget=segmenter.frame_bytes(HEIGHT, WIDTH) - 1) == 256
    segment_on_cluster(client, segmenter, image, SourceRef(stack_tif), outputs, region=128)
    assert zarr.open_group(outputs.mask, mode="r")["0"].chunks == (1, 128, 128)
    whole, split = _reference(segmenter, stack), _labels(outputs.mask)
    assert (split == whole).mean() > 0.995
    seams = np.zeros((HEIGHT, WIDTH), bool)
    seams[126:130] = seams[:, 126:130] = True
    differ = split != whole
    assert differ[:, seams].mean() <= max(0.01, 3 * differ[:, ~seams].mean())
    stored = zarr.open_group(outputs.probabilities, mode="r")["0"][:]  # T C Y X
    assert np.abs(stored.astype(int).sum(axis=1) - 255).max() <= 2  # every region written


def test_a_scheduler_without_workers_is_one_line_not_a_hang() -> None:
    from ernet.runtime.cluster import connect
    from ernet.runtime.errors import ClusterError

    with distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None) as empty:
        start = time.monotonic()
        with (
            pytest.raises(ClusterError, match="the scheduler has no workers"),
            connect(empty.scheduler_address, 1),
        ):
            pass
        assert time.monotonic() - start < 10
