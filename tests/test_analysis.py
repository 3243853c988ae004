"""ER network metrics: exact on hand-built masks, close to the generator's known network,
and written per frame with units by ernet-analyze and ernet-infer --metrics."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

pytest.importorskip("skan")
pytest.importorskip("networkx")

from ernet.runtime.analysis import AnalysisOptions, frame_metrics  # noqa: E402

from conftest import run_cli  # noqa: E402


def _line() -> np.ndarray:
    m = np.zeros((60, 80), np.uint8)
    m[29:32, 10:70] = 1  # 3 px thick: skeletonised to one line
    return m


def _cross() -> np.ndarray:
    m = np.zeros((81, 81), np.uint8)
    m[40, 10:71] = 1
    m[10:71, 40] = 1
    return m


def _ring() -> np.ndarray:
    from skimage.draw import circle_perimeter

    m = np.zeros((80, 80), np.uint8)
    rr, cc = circle_perimeter(40, 40, 25)
    m[rr, cc] = 1
    return m


def _grid() -> np.ndarray:
    m = np.zeros((100, 100), np.uint8)
    for k in (20, 50, 80):
        m[k, 10:91] = 1
        m[10:91, k] = 1
    return m


EXACT = {
    # shape: (nodes, edges, junctions, free ends, degree histogram 1..4, total length px, polygons)
    "line": (_line, 2, 1, 0, 2, (2, 0, 0, 0), 58.41, 0),
    "cross": (_cross, 5, 4, 1, 4, (4, 0, 0, 1), 120.0, 0),
    "ring": (_ring, 1, 1, 0, 0, (0, 1, 0, 0), 164.85, 1),
    "grid": (_grid, 21, 24, 9, 12, (12, 0, 0, 9), 480.0, 4),
}


@pytest.mark.parametrize("case", list(EXACT))
def test_hand_built_masks_exactly(case: str) -> None:
    make, nodes, edges, junctions, ends, histogram, length, polygons = EXACT[case]
    row = frame_metrics(make())
    assert (row["nodes"], row["edges"], row["junctions"], row["free_ends"]) == (nodes, edges, junctions, ends)
    assert tuple(row[f"degree_{k}"] for k in range(1, 5)) == histogram
    assert row["degree_5"] == row["degree_6"] == row["degree_7_plus"] == 0
    assert row["total_length"] == pytest.approx(length, abs=0.01)
    assert row["polygons"] == polygons
    assert row["connected_components"] == 1 and row["largest_component_node_share"] == 1.0


def test_grid_polygons_and_graph_statistics() -> None:
    row = frame_metrics(_grid())
    assert row["polygon_mean_area"] == row["polygon_median_area"] == 29 * 29  # faces inside the lines
    assert row["average_clustering"] == 0.0  # no triangles in a grid
    assert row["degree_assortativity"] == pytest.approx(-1 / 3, abs=1e-6)
    assert row["mean_edge_length"] == pytest.approx(480 / 24)


def test_ring_is_one_node_with_a_self_loop_enclosing_its_disc() -> None:
    row = frame_metrics(_ring())
    assert row["polygon_mean_area"] == pytest.approx(np.pi * 24.5**2, rel=0.01)


def test_empty_frame_gives_zeros_and_nans() -> None:
    row = frame_metrics(np.zeros((50, 60), np.uint8))
    assert row["nodes"] == row["edges"] == row["polygons"] == row["total_length"] == 0
    assert row["er_area_fraction"] == 0.0
    for key in (
        "mean_edge_length",
        "degree_assortativity",
        "average_clustering",
        "polygon_mean_area",
        "junction_density",
        "largest_component_node_share",
    ):
        assert math.isnan(row[key]), key


def test_spurs_and_specks_are_removed_by_option() -> None:
    m = np.zeros((60, 80), np.uint8)
    m[30, 10:70] = 1
    m[26:30, 40] = 1  # a 4 px spur
    m[5, 5:8] = m[50, 70:73] = 1  # 3-pixel specks
    pruned = frame_metrics(m)
    assert (pruned["nodes"], pruned["edges"], pruned["connected_components"]) == (2, 1, 1)
    kept = frame_metrics(m, options=AnalysisOptions(min_spur_length=0, min_object_size=0))
    assert (kept["nodes"], kept["edges"], kept["junctions"], kept["connected_components"]) == (8, 5, 1, 3)


def test_pixel_size_scales_lengths_and_areas() -> None:
    px = frame_metrics(_grid())
    um = frame_metrics(_grid(), options=AnalysisOptions(pixel_size=0.1))
    assert um["total_length"] == pytest.approx(px["total_length"] * 0.1)
    assert um["polygon_mean_area"] == pytest.approx(px["polygon_mean_area"] * 0.01)
    assert um["junction_density"] == pytest.approx(px["junction_density"] * 100)
    assert um["nodes"] == px["nodes"]


def test_classes_choose_the_network_and_report_fractions() -> None:
    labels = _cross()
    labels[40, 10:40] = 2  # the left arm is another class (e.g. sheet)
    names = ("background", "tubule", "sheet")
    both = frame_metrics(labels, names)
    assert both["fraction_tubule"] + both["fraction_sheet"] == pytest.approx(1.0)
    assert both["fraction_sheet"] == pytest.approx(30 / (labels > 0).sum())
    tubules = frame_metrics(labels, names, AnalysisOptions(classes=(1,)))
    assert tubules["junctions"] == 1 and tubules["free_ends"] == 3  # a T once the sheet arm is gone


def test_classes_apart_from_the_network_are_counted_and_measured() -> None:
    labels = _cross()  # tubules: the network
    labels[2:12, 50:70] = 2  # a 10 x 20 sheet
    labels[60:66, 60:66] = 2  # a 6 x 6 sheet
    labels[75, 5:8] = 2  # 3 px: a speck, under the minimum object size
    labels[50:54, 10:14] = 3  # SBT, 16 px
    names = ("background", "tubule", "sheet", "SBT")
    row = frame_metrics(labels, names, AnalysisOptions(classes=(1,), pixel_size=0.5))
    assert (row["count_sheet"], row["area_sheet"], row["mean_area_sheet"]) == (2, 236 * 0.25, 118 * 0.25)
    assert (row["count_SBT"], row["area_SBT"]) == (1, 16 * 0.25)
    assert "count_tubule" not in row and "area_tubule" not in row
    foreground = (labels > 0).sum()
    assert row["fraction_sheet"] == pytest.approx(239 / foreground)
    assert row["fraction_tubule"] + row["fraction_sheet"] + row["fraction_SBT"] == pytest.approx(1.0)
    empty = frame_metrics(np.zeros_like(labels), names, AnalysisOptions(classes=(1,)))
    assert (empty["count_sheet"], empty["area_sheet"]) == (0, 0.0) and np.isnan(empty["mean_area_sheet"])
    assert np.isnan(empty["fraction_sheet"])


def test_ernet_v2_fractions_csv_from_masks(tmp_path: Path) -> None:
    labels = np.zeros((2, 40, 40), np.uint8)
    labels[0, :10] = 1  # 400 tubule
    labels[0, 10:15] = 2  # 200 sheet
    labels[0, 15:20] = 3  # 200 SBT
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, labels, imagej=True, metadata={"axes": "TYX"})
    done = run_cli("ernet-analyze", path, "--classes", "1", "--fractions-csv", tmp_path / "f.csv", "-q")
    assert done.returncode == 1  # a mask that does not name ERnet-v2's classes
    assert done.stderr.splitlines() == [
        f"error: {path}: ERnet-v2's fractions need classes tubule, sheet, SBT; "
        "its classes are background, ER",
        f"error: {tmp_path / 'f.csv'}: not written, 1 input(s) failed",
    ]
    assert not (tmp_path / "f.csv").exists()
    from ernet.runtime.io import write_tiff  # as ernet-infer writes masks: classes recorded

    description = {"source": "cells.tif", "class_names": ["background", "tubule", "sheet", "SBT"]}
    write_tiff(tmp_path / "cells_mask.tif", labels, "TYX", description=description)
    done = run_cli("ernet-analyze", tmp_path / "cells_mask.tif", "--fractions-csv", tmp_path / "f.csv", "-q")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "f.csv").read_text().splitlines() == [
        "Filename,Tubule fraction,Sheet fraction,SBT fraction",
        "cells.tif [T=0],0.5,0.25,0.25",
        "cells.tif [T=1],,,",
    ]


def _generator_bounds(graph: object, labelled_above: float) -> tuple[int, int, int]:
    """(nodes, junctions, independent loops) of the generator's network, keeping edges
    labelled above the given fraction; pass-through (degree-2) nodes are not nodes."""
    import networkx as nx

    drawn = nx.MultiGraph()
    for (a, b), fraction in zip(graph.edges, graph.labelled, strict=True):  # type: ignore[attr-defined]
        if fraction > labelled_above:
            drawn.add_edge(int(a), int(b))
    degrees = np.array([d for _, d in drawn.degree()])
    loops = drawn.number_of_edges() - drawn.number_of_nodes() + nx.number_connected_components(drawn)
    return int((degrees != 2).sum()), int((degrees >= 3).sum()), loops


def test_generated_network_matches_the_generator() -> None:
    """Resolvable networks (no perinuclear zone; tubules 24-40 px apart, labels 3-4 px wide).

    The skeleton's length matches the generator's labelled centre lines within 5 % per
    frame (measured: +0.4 to +2.9 %). Edges cut by the cell's outline are partly
    labelled, so the generator brackets what a mask can show: at least the fully
    labelled edges, at most every edge with any labelled part. Over six frames the node,
    junction and loop counts lie in that bracket widened by 10 % (measured: nodes 497 in
    [330, 510], junctions 289 in [208, 324], loops 106 in [76, 101]; single frames stray
    further), and nearly all junctions have degree 3,
    as in the generator's Voronoi network (merging skeleton junctions closer than 5 px
    makes a few of degree 4)."""
    from ernet.training.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(
        height=512,
        width=512,
        nucleus_radius=(0.0, 0.0),
        spacing_centre=(24.0, 30.0),
        spacing_edge=(30.0, 40.0),
        label_width=(3.0, 4.0),
    )
    totals = np.zeros(9)  # nodes, junctions, loops: each measured, low, high
    degree_3 = 0
    for seed in range(6):
        frame = generate(seed, config)
        row = frame_metrics(frame.mask)
        truth_length = float((frame.graph.lengths * frame.graph.labelled).sum())
        assert row["total_length"] == pytest.approx(truth_length, rel=0.05)
        (n_low, j_low, l_low), (n_high, j_high, l_high) = (
            _generator_bounds(frame.graph, 0.99),
            _generator_bounds(frame.graph, 0),
        )
        totals += (
            row["nodes"],
            n_low,
            n_high,
            row["junctions"],
            j_low,
            j_high,
            row["polygons"],
            l_low,
            l_high,
        )
        degree_3 += row["degree_3"]
    nodes, n_low, n_high, junctions, j_low, j_high, loops, l_low, l_high = totals
    assert 0.9 * n_low <= nodes <= 1.1 * n_high
    assert 0.9 * j_low <= junctions <= 1.1 * j_high
    assert 0.9 * l_low <= loops <= 1.1 * l_high
    assert degree_3 >= 0.85 * junctions


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_ernet_analyze_writes_a_row_per_frame_with_units(tmp_path: Path) -> None:
    stack = np.stack([_grid(), np.zeros((100, 100), np.uint8), _grid()])
    path = tmp_path / "cells_mask.tif"
    tifffile.imwrite(
        path, stack, imagej=True, resolution=(10.0, 10.0), metadata={"axes": "TYX", "unit": "micron"}
    )
    done = run_cli("ernet-analyze", path)
    assert done.returncode == 0, done.stderr
    header, rows = _read_csv(tmp_path / "cells_mask_metrics.csv")
    assert (
        header[:2] == ["frame", "T"] and "total_length [um]" in header and "polygon_mean_area [um2]" in header
    )
    assert [r[0] for r in rows] == ["0", "1", "2"]
    length = header.index("total_length [um]")
    assert float(rows[0][length]) == pytest.approx(48.0) and float(rows[1][length]) == 0
    assert rows[1][header.index("mean_edge_length [um]")] == ""  # NaN: no network
    done = run_cli("ernet-analyze", path, "--pixel-size", "0.5", "--overwrite", "-q")
    header, rows = _read_csv(tmp_path / "cells_mask_metrics.csv")
    assert float(rows[0][header.index("total_length [um]")]) == pytest.approx(240.0)


def test_successor_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, _grid())
    done = run_cli("ernet-analyze", path, "--successor-columns", "-q")
    assert done.returncode == 0, done.stderr
    header, rows = _read_csv(tmp_path / "m_metrics.csv")
    assert header[:3] == ["frame", "nodes", "edges"] and header[-1] == "degree_7_plus"
    assert "degree_6" in header and "total_length [px]" not in header  # not in the successor's set
    assert rows[0][header.index("degree_4")] == "9"


def test_figures_per_frame_and_over_time(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, np.stack([_grid(), _grid().T]), imagej=True, metadata={"axes": "TYX"})
    done = run_cli("ernet-analyze", path, "--figures", "-q")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["m.tif", "m_graph_0000.png", "m_graph_0001.png", "m_metrics.csv", "m_metrics.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in tmp_path.glob("*.png"))


def _saved_figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The figures the analysis saves from now on, by file name (still written)."""
    from ernet.runtime import figures

    saved: dict[str, Any] = {}
    save = figures._save

    def keep(fig: Any, path: Path, replace: bool = True) -> None:
        saved[path.name] = fig
        save(fig, path, replace)

    monkeypatch.setattr(figures, "_save", keep)
    return saved


def test_figures_are_titled_with_the_input_and_timed_by_its_frame_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    from ernet.runtime.analysis import MetricsRecorder
    from ernet.runtime.io import AxisScale

    saved = _saved_figures(monkeypatch)
    recorder = MetricsRecorder(
        tmp_path / "out_metrics.csv",
        "TYX",
        (3, 100, 100),
        figures=True,
        name="sample_image",
        frame_interval=AxisScale(1.5, "s"),
    )
    for frame in (_grid(), _grid().T, _grid()):
        recorder.add(frame)
    recorder.finish()
    titles = [saved[f"out_graph_{i:04d}.png"].axes[0].get_title() for i in range(3)]
    assert titles == [f"sample_image — t = {t} s (frame {i + 1}/3)" for i, t in enumerate(("0", "1.5", "3"))]
    series = saved["out_metrics.png"]
    assert series.axes[-1].get_xlabel() == "time (s)"
    assert list(series.axes[0].lines[0].get_xdata()) == [0.0, 1.5, 3.0]
    assert (tmp_path / "out_metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_untimed_figures_count_frames_in_whole_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    from ernet.runtime.analysis import MetricsRecorder
    from ernet.runtime.io import AxisScale

    saved = _saved_figures(monkeypatch)
    # A ZYX stack: its frames are not in time, whatever the file says of T.
    recorder = MetricsRecorder(
        tmp_path / "cells_metrics.csv", "ZYX", (2, 100, 100), figures=True, frame_interval=AxisScale(2.0, "s")
    )
    recorder.add(_grid())
    recorder.add(_grid().T)
    recorder.finish()
    assert saved["cells_graph_0001.png"].axes[0].get_title() == "cells — frame 2/2"
    axis = saved["cells_metrics.png"].axes[-1]
    assert axis.get_xlabel() == "frame"
    assert all(float(t).is_integer() for t in axis.get_xticks())  # not 0, 0.5, 1 ...
    single = MetricsRecorder(tmp_path / "one_metrics.csv", "YX", (100, 100), name="one_image")
    assert single.frame_title(0) == "one_image"


def test_ernet_infer_metrics(tiny_onnx: Path, tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (2, 80, 90), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", frames, imagej=True, metadata={"axes": "TYX"})
    done = run_cli("ernet-infer", tmp_path / "s.tif", "--model", tiny_onnx, "--metrics", "-q")
    assert done.returncode == 0, done.stderr
    header, rows = _read_csv(tmp_path / "s_metrics.csv")
    assert "total_length [px]" in header and len(rows) == 2
    masks = tifffile.imread(tmp_path / "s_mask.tif")
    expected = frame_metrics(masks[1])
    assert int(rows[1][header.index("nodes")]) == expected["nodes"]


def test_ernet_analyze_bad_inputs_fail_in_one_line(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((8, 8), np.float32))
    for path, problem in (
        (tmp_path / "absent.tif", "file not found"),
        (tmp_path / "float.tif", "a label mask holds integer class ids, not float32"),
    ):
        done = run_cli("ernet-analyze", path, "-q")
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [f"error: {path}: {problem}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.tif"]


def test_a_metrics_csv_written_meanwhile_by_another_run_is_kept(tmp_path: Path) -> None:
    from ernet.runtime.analysis import MetricsRecorder
    from ernet.runtime.errors import OutputError

    csv = tmp_path / "cells_metrics.csv"
    recorder = MetricsRecorder(csv, "YX", (100, 100), overwrite=False)
    recorder.add(_grid())
    csv.write_text("the other run's metrics")
    with pytest.raises(
        OutputError, match="cells_metrics.csv: output exists, written meanwhile by another run"
    ):
        recorder.finish()
    assert csv.read_text() == "the other run's metrics"
