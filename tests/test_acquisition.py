"""Live segmentation inside real pymmcore-plus acquisitions (UniMMCore, pure-Python devices)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pymmcore_plus")
tifffile = pytest.importorskip("tifffile")
useq = pytest.importorskip("useq")

from pymmcore_plus.experimental.unicore import UniMMCore  # noqa: E402

from ernet.runtime import Segmenter  # noqa: E402
from ernet.runtime.acquisition import AcquisitionPlan, LiveSegmentation, attach, frame_index  # noqa: E402
from ernet.runtime.acquisition.demo import demo_core, er_frames  # noqa: E402
from ernet.runtime.acquisition.pycromanager import image_process_fn  # noqa: E402

from conftest import run_cli  # noqa: E402

SIDE = 96
#: ER-like frames the camera cycles through (a drifting synthetic cell, 16-bit).
FRAMES = er_frames(6, SIDE, SIDE, seed=3)


@pytest.fixture
def core() -> UniMMCore:
    """A real acquisition engine on pure-Python devices."""
    return demo_core(FRAMES)


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter(provider="cpu")


def acquired_frames(core: UniMMCore) -> dict[tuple[tuple[str, int], ...], np.ndarray]:
    """Every frame the MDA delivers, keyed by index, captured beside the segmentation."""
    frames: dict[tuple[tuple[str, int], ...], np.ndarray] = {}

    def keep(img: np.ndarray, event: Any, meta: Any) -> None:
        frames[frame_index(event.index)] = img.copy()

    core.mda.events.frameReady.connect(keep)
    return frames


TZP = useq.MDASequence(
    time_plan={"interval": 0.01, "loops": 3},
    z_plan={"range": 2, "step": 1},
    stage_positions=[(0, 0, 0), (50, 50, 0)],
    axis_order="tpz",
)


def test_every_frame_of_a_real_mda_is_segmented_and_stored(
    core: UniMMCore, segmenter: Segmenter, tmp_path: Path
) -> None:
    core.definePixelSizeConfig("100x")
    core.setPixelSizeUm("100x", 0.065)
    core.setPixelSizeConfig("100x")
    frames = acquired_frames(core)
    results: list[Any] = []
    live = attach(core, segmenter, out=tmp_path, when_full="block", on_result=results.append)
    core.mda.run(TZP)
    summary = live.wait(timeout=60)
    live.detach()
    assert summary is not None and summary.complete, summary
    assert len(frames) == 18 and summary.stats.received == 18 and summary.stats.segmented == 18
    assert sorted(tuple(sorted(r.index.items())) for r in results) == sorted(frames)
    assert np.isfinite(summary.stats.latency_p99_s)
    for p in (0, 1):
        with tifffile.TiffFile(tmp_path / f"mda_p{p}_labels.tif") as tif:
            assert tif.series[0].axes == "TZYX"
            ij = tif.imagej_metadata
            assert (ij["spacing"], ij["finterval"], ij["unit"]) == (1.0, 0.01, "micron")
            x_resolution = tif.pages[0].tags["XResolution"].value
            assert x_resolution[0] / x_resolution[1] == pytest.approx(1 / 0.065)
            stored = tif.asarray()
        assert stored.shape == (3, 3, SIDE, SIDE) and stored.dtype == np.uint8
        for t in range(3):
            for z in range(3):
                expected = segmenter.segment(frames[(("p", p), ("t", t), ("z", z))])
                np.testing.assert_array_equal(stored[t, z], expected)
        assert stored.any()  # ER found: the comparison is not between empty masks
    assert (tmp_path / "mda_summary.json").is_file()
    assert not list(tmp_path.glob(".*.part"))


def test_an_overloaded_stream_drops_the_oldest_frames_and_counts_them_exactly(
    core: UniMMCore, segmenter: Segmenter, tmp_path: Path
) -> None:
    depth: list[int] = []

    def slow(result: Any) -> None:  # the model is slower than the camera
        depth.append(live.stats().queued)
        time.sleep(0.05)

    live = attach(core, segmenter, out=tmp_path, maxsize=2, when_full="drop_oldest", on_result=slow)
    core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 40}))
    summary = live.wait(timeout=60)
    live.detach()
    assert summary is not None
    s = summary.stats
    assert s.received == 40 and s.failed == 0 and s.dropped > 0
    assert s.segmented + s.dropped == 40 and max(depth) <= 2
    (output,) = summary.outputs
    assert output["segmented"] == s.segmented and len(output["missing"]) == s.dropped
    assert not summary.complete
    stored = tifffile.imread(tmp_path / "mda_p0_labels.tif")
    assert stored.shape == (40, SIDE, SIDE)
    for index in output["missing"]:  # a dropped frame is background, and said to be missing
        assert not stored[index["t"]].any()


def test_a_segmentation_error_mid_run_does_not_stop_the_mda(
    core: UniMMCore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    segmenter = Segmenter(provider="cpu")
    calls = {"n": 0}
    segment = segmenter.segment

    def sometimes_failing(frame: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("model failed on this frame")
        return segment(frame)

    monkeypatch.setattr(segmenter, "segment", sometimes_failing)
    frames = acquired_frames(core)
    live = attach(core, segmenter, out=tmp_path, when_full="block")
    core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 6}))
    summary = live.wait(timeout=60)
    live.detach()
    assert len(frames) == 6  # the acquisition ran to its end
    assert summary is not None and summary.stats.failed == 1 and summary.stats.segmented == 5
    assert "model failed" in (summary.stats.last_error or "")
    assert summary.outputs[0]["missing"] == [{"t": 2}] and not summary.complete


def test_cancelling_the_mda_leaves_complete_readable_files(core: UniMMCore, tmp_path: Path) -> None:
    segmenter = Segmenter(provider="cpu")
    seen = threading.Event()

    def cancel_after_five(img: np.ndarray, event: Any, meta: Any) -> None:
        if event.index["t"] == 4:
            core.mda.cancel()
            seen.set()

    core.mda.events.frameReady.connect(cancel_after_five)
    live = attach(core, segmenter, out=tmp_path, when_full="block")
    core.mda.run(useq.MDASequence(time_plan={"interval": 0.01, "loops": 50}))
    summary = live.wait(timeout=60)
    live.detach()
    assert seen.is_set() and summary is not None and summary.cancelled
    (output,) = summary.outputs
    assert 5 <= output["segmented"] < 50 and output["segmented"] + len(output["missing"]) == 50
    stored = tifffile.imread(tmp_path / "mda_p0_labels.tif")
    assert stored.shape == (50, SIDE, SIDE) and stored[:5].any()


def test_one_channel_is_segmented_and_its_file_has_no_channel_axis() -> None:
    sequence = useq.MDASequence(
        channels=["DAPI", "FITC"], time_plan={"interval": 0, "loops": 2}, z_plan={"range": 1, "step": 1}
    )
    (plan,) = AcquisitionPlan.of(sequence).positions
    assert plan.axes == "TCZ" and plan.shape == (2, 2, 2)
    (fitc,) = AcquisitionPlan.of(sequence, channel="FITC").positions
    assert fitc.axes == "TZ" and fitc.shape == (2, 2) and all(dict(i)["c"] == 1 for i in fitc.frames)
    uneven = useq.MDASequence(  # DAPI without a z stack: the frames fill no T x C x Z grid
        channels=[useq.Channel(config="DAPI", do_stack=False), "FITC"], z_plan={"range": 2, "step": 1}
    )
    (flat,) = AcquisitionPlan.of(uneven).positions
    assert (flat.axes, flat.shape) == ("I", (4,))
    with pytest.raises(ValueError, match="no channel 'GFP'.*DAPI, FITC"):
        AcquisitionPlan.of(sequence, channel="GFP")
    live = LiveSegmentation(Segmenter(provider="cpu"), channel="FITC")
    live.start(AcquisitionPlan.of(sequence, channel="FITC"), (SIDE, SIDE))
    assert not live.receive(FRAMES[0], (("c", 0), ("t", 0), ("z", 0)), channel="DAPI")
    assert live.receive(FRAMES[0], (("c", 1), ("t", 0), ("z", 0)), channel="FITC")
    stats = live.finish().stats
    assert (stats.received, stats.skipped, stats.segmented) == (2, 1, 1)


def test_the_pycromanager_hook_queues_and_passes_the_image_on_unchanged(segmenter: Segmenter) -> None:
    results: list[Any] = []
    live = LiveSegmentation(segmenter, on_result=results.append, when_full="block")
    live.start(AcquisitionPlan.single(2), (SIDE, SIDE))
    hook = image_process_fn(live, channels=["DAPI", "FITC"])
    for t, image in enumerate(FRAMES[:2]):
        metadata = {"Axes": {"time": t, "channel": "FITC"}, "Camera": "Camera"}
        out_image, out_metadata = hook(image, metadata)
        assert out_image is image and out_metadata is metadata
    hook(FRAMES[0], {"Axes": {"time": "not a number"}})  # never raises into pycromanager
    summary = live.finish()
    assert summary.stats.segmented == 3
    assert [r.index for r in results[:2]] == [{"c": 1, "t": 0}, {"c": 1, "t": 1}]
    np.testing.assert_array_equal(results[1].labels, segmenter.segment(FRAMES[1]))


def test_ernet_live_runs_a_sequence_file_on_the_demo_microscope(tmp_path: Path) -> None:
    sequence = tmp_path / "mda.yaml"
    sequence.write_text(
        "time_plan: {interval: 0, loops: 2}\n"
        "z_plan: {range: 1, step: 1}\n"
        "stage_positions: [{x: 0, y: 0, z: 0}, {x: 100, y: 0, z: 0}]\n"
        "axis_order: tpz\n"
    )
    done = run_cli(
        "ernet-live", sequence, "--out", tmp_path / "out", "--size", "64x80", "--when-full", "block"
    )
    assert done.returncode == 0, done.stderr
    assert "8 frames received, 8 segmented, 0 dropped, 0 failed" in done.stderr
    for p in (0, 1):
        with tifffile.TiffFile(tmp_path / "out" / f"mda_p{p}_labels.tif") as tif:
            assert tif.series[0].axes == "TZYX" and tif.series[0].shape == (2, 2, 64, 80)
    summary = json.loads((tmp_path / "out" / "mda_summary.json").read_text())
    assert summary["stats"]["segmented"] == 8 and not summary["cancelled"]


def test_ernet_live_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("time_plan: {loops: -3}\n")
    done = run_cli("ernet-live", bad, "--out", tmp_path / "out")
    assert done.returncode == 1 and done.stderr.count("error:") == 1
    assert done.stderr.startswith(f"error: {bad}: not a useq MDA sequence"), done.stderr
    done = run_cli("ernet-live", "--channel", "FITC", "--out", tmp_path / "out")
    assert done.returncode == 1 and "the sequence has no channel 'FITC' (its channels: none)" in done.stderr
    done = run_cli("ernet-live", "--config", tmp_path / "missing.cfg", "--out", tmp_path / "out")
    assert done.returncode == 1 and "missing.cfg: no such Micro-Manager configuration file" in done.stderr
    assert not (tmp_path / "out").exists()


def test_ernet_live_stopped_midway_cancels_the_mda_and_leaves_complete_files(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    script = Path(sys.executable).parent / "ernet-live"
    out = tmp_path / "out"
    args = [str(script), "--out", str(out), "--frames", "400", "--interval", "0.02", "--size", "64x64"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob(".mda_p0_labels.tif.*.part")) and time.monotonic() < deadline:
        time.sleep(0.1)  # until the MDA has started: its label file is being written
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)  # what a job scheduler sends; Ctrl-C is handled alike
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; the MDA was cancelled" in stderr
    summary = json.loads((out / "mda_summary.json").read_text())
    (output,) = summary["outputs"]
    assert summary["cancelled"] and 0 < output["segmented"] < 400
    assert output["segmented"] + len(output["missing"]) == 400
    assert tifffile.imread(out / "mda_p0_labels.tif").shape == (400, 64, 64)
    assert f"(TYX, {output['segmented']}/400 frames)" in stdout
