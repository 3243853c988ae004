"""ER network metrics from label masks: skeleton, graph, per-frame measurements.

The ER mask (all non-background classes, or the classes chosen) is cleaned of
specks, skeletonised (scikit-image) and traced into branches (skan, lengths along the
pixel path). Each cluster of touching junction pixels becomes one node, and branches
become the edges of a networkx multigraph: parallel edges are kept, and a loop with no
junction (a ring) is one node of degree 2 with a self-loop. Free-end branches
shorter than ``min_spur_length`` are pruned and the junctions they leave with degree 2
are merged away, as are junctions closer than ``merge_junctions_within``. Needs
the ``analysis`` extra (scikit-image, skan, networkx; matplotlib for figures).
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    import networkx as nx

    from .io import AxisScale

#: Node degrees given their own column; higher degrees are counted together.
MAX_DEGREE_COLUMN = 6


@dataclass(frozen=True)
class AnalysisOptions:
    """How a mask becomes a graph. Lengths are in pixels unless ``pixel_size`` is set."""

    #: Class ids that form the network; None: every class but background (0).
    classes: tuple[int, ...] | None = None
    #: ER pieces (8-connected) smaller than this many pixels are removed first.
    min_object_size: int = 16
    #: Free-end branches shorter than this (pixels) are pruned as skeleton spurs.
    min_spur_length: float = 6.0
    #: Junctions joined by a branch shorter than this (pixels) are one junction: thick
    #: tubules meeting skeletonise into a few junction points a couple of pixels apart.
    merge_junctions_within: float = 5.0
    #: Enclosed background regions smaller than this (pixels) are not counted as polygons.
    min_polygon_area: int = 4
    #: Pixel side in micrometres (None: report pixels).
    pixel_size: float | None = None


def require_analysis_libraries(figures: bool = False) -> None:
    """Import what the ``analysis`` extra brings (and, for ``figures``, matplotlib) before
    any work: a missing one raises ModuleNotFoundError, which the commands report as the
    extra to install."""
    for name in ("networkx", "skan", "skimage", *(("matplotlib",) if figures else ())):
        importlib.import_module(name)


#: More distinct values than this in a frame: an intensity image, not class ids.
MAX_CLASS_IDS = 16


def require_label_frame(labels: np.ndarray, source: Path | str, index: int) -> None:
    """InputError unless ``labels`` looks like class ids (at most MAX_CLASS_IDS values)."""
    values = np.unique(labels).size
    if values > MAX_CLASS_IDS:
        raise InputError(
            f"{source}: frame {index} holds {values} distinct values, not class ids: an intensity "
            "image? segment it first (ernet-infer --metrics, or ernet-analyze on its _mask.tif)"
        )


def er_mask(labels: np.ndarray, classes: Sequence[int] | None = None) -> np.ndarray:
    """Boolean mask of the classes forming the network (default: all but 0)."""
    if classes is None:
        return np.asarray(labels) > 0
    return np.isin(labels, list(classes))


def network_skeleton(mask: np.ndarray, options: AnalysisOptions = AnalysisOptions()) -> np.ndarray:
    """The one-pixel-wide skeleton of a boolean mask, after removing specks."""
    from skimage.morphology import remove_small_objects, skeletonize

    mask = np.asarray(mask, bool)
    if options.min_object_size > 1:
        mask = remove_small_objects(mask, max_size=options.min_object_size - 1, connectivity=2)
    return skeletonize(mask)


def skeleton_graph(
    skeleton: np.ndarray, min_spur_length: float = 0.0, merge_junctions_within: float = 0.0
) -> nx.MultiGraph:
    """The network of a skeleton: nodes with ``pos`` (y, x px), edges with ``length`` (px)."""
    import networkx as nx
    import skan
    from scipy import ndimage

    graph = nx.MultiGraph()
    if not skeleton.any():
        return graph
    traced = skan.Skeleton(skeleton)
    lengths = traced.path_lengths()
    junctions = traced.degrees >= 3
    junction_image = np.zeros(skeleton.shape, bool)
    junction_image[tuple(traced.coordinates[junctions].T)] = True
    clusters, n_clusters = ndimage.label(junction_image, structure=np.ones((3, 3)))
    ys, xs = np.nonzero(clusters)
    counts = np.maximum(np.bincount(clusters[ys, xs], minlength=n_clusters + 1), 1)
    centres = np.stack(
        [np.bincount(clusters[ys, xs], weights=c, minlength=n_clusters + 1) / counts for c in (ys, xs)],
        axis=1,
    )

    def node_of(pixel: int) -> Any:
        cluster = clusters[tuple(traced.coordinates[pixel])]
        return ("junction", int(cluster)) if cluster else ("end", int(pixel))

    for i in range(traced.n_paths):
        path = traced.path(i)
        u, v = node_of(path[0]), node_of(path[-1])
        if u == v and u[0] == "junction" and all(node_of(p) == u for p in path):
            continue  # a step between pixels of one junction cluster, not a branch
        for node, pixel in ((u, path[0]), (v, path[-1])):
            if node not in graph:
                where = centres[node[1]] if node[0] == "junction" else traced.coordinates[pixel]
                graph.add_node(node, pos=(float(where[0]), float(where[1])))
        graph.add_edge(u, v, length=float(lengths[i]))
    _prune_spurs(graph, min_spur_length)
    _merge_close_junctions(graph, merge_junctions_within)
    return graph


def _prune_spurs(graph: nx.MultiGraph, min_length: float) -> None:
    """Remove free-end branches shorter than ``min_length`` that hang off a junction,
    then merge the degree-2 nodes this leaves into single edges."""
    if min_length <= 0:
        return
    spurs = [(end, next(iter(graph.neighbors(end)))) for end in list(graph.nodes) if graph.degree(end) == 1]
    touched = set()
    for end, hub in spurs:
        if end not in graph or hub not in graph or graph.degree(hub) < 3:
            continue
        (length,) = (d["length"] for _, _, d in graph.edges(end, data=True))
        if length < min_length:
            graph.remove_node(end)
            touched.add(hub)
    for node in touched:
        edges = list(graph.edges(node, data=True))
        if graph.degree(node) == 2 and len(edges) == 2 and all(a != b for a, b, _ in edges):
            (_, a, da), (_, b, db) = edges
            graph.remove_node(node)
            graph.add_edge(a, b, length=da["length"] + db["length"])


def _merge_close_junctions(graph: nx.MultiGraph, within: float) -> None:
    """Contract each branch shorter than ``within`` between two junctions into one node."""
    while within > 0:
        short = next(
            (
                (u, v, k)
                for u, v, k, d in graph.edges(keys=True, data=True)
                if u != v and d["length"] < within and graph.degree(u) >= 3 and graph.degree(v) >= 3
            ),
            None,
        )
        if short is None:
            return
        u, v, key = short
        graph.remove_edge(u, v, key=key)
        for _, w, data in list(graph.edges(v, data=True)):
            graph.add_edge(u, u if w == v else w, **data)  # longer u-v branches become loops
        (uy, ux), (vy, vx) = graph.nodes[u]["pos"], graph.nodes[v]["pos"]
        graph.nodes[u]["pos"] = ((uy + vy) / 2, (ux + vx) / 2)
        graph.remove_node(v)


def polygon_areas(skeleton: np.ndarray, min_area: int = 1) -> np.ndarray:
    """Areas (pixels) of the background regions a skeleton encloses: the loops' faces."""
    from scipy import ndimage

    regions, n = ndimage.label(~skeleton)  # 4-connected: an 8-connected skeleton line closes a face
    if n == 0:
        return np.zeros(0)
    border = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    areas = np.bincount(regions.ravel(), minlength=n + 1).astype(float)
    areas = areas[np.setdiff1d(np.arange(1, n + 1), border)]
    return areas[areas >= min_area]


@dataclass(frozen=True)
class FrameAnalysis:
    """One frame's network: its metrics (column name -> value), graph, ER mask and skeleton."""

    metrics: dict[str, float]
    graph: nx.MultiGraph
    mask: np.ndarray
    skeleton: np.ndarray


def frame_metrics(
    labels: np.ndarray,
    class_names: Sequence[str] = ("background", "ER"),
    options: AnalysisOptions = AnalysisOptions(),
) -> dict[str, float]:
    """Every metric of one label frame, keyed by column name (see :func:`analyze_frame`)."""
    return analyze_frame(labels, class_names, options).metrics


def analyze_frame(
    labels: np.ndarray,
    class_names: Sequence[str] = ("background", "ER"),
    options: AnalysisOptions = AnalysisOptions(),
) -> FrameAnalysis:
    """The network of one label frame and its metrics (units: :func:`metric_units`).

    Counts are 0 and ratios, means and statistics NaN where the frame has no network.
    """
    import networkx as nx

    labels = np.asarray(labels)
    mask = er_mask(labels, options.classes)
    scale = options.pixel_size or 1.0
    skeleton = network_skeleton(mask, options)
    graph = skeleton_graph(skeleton, options.min_spur_length, options.merge_junctions_within)
    degrees = np.array([d for _, d in graph.degree()], int)
    lengths = np.array([d["length"] for _, _, d in graph.edges(data=True)]) * scale
    n_nodes, n_edges = graph.number_of_nodes(), graph.number_of_edges()
    components = list(nx.connected_components(graph))
    largest = max(components, key=len) if components else set()
    polygons = polygon_areas(skeleton, options.min_polygon_area) * scale**2
    bearing_area = float(_filled_area(mask)) * scale**2
    junctions = int((degrees >= 3).sum())
    row: dict[str, float] = {
        "er_area_fraction": float(mask.mean()) if mask.size else math.nan,
        "er_area": float(mask.sum()) * scale**2,
        "nodes": n_nodes,
        "edges": n_edges,
        "junctions": junctions,
        "free_ends": int((degrees == 1).sum()),
    }
    for k in range(1, MAX_DEGREE_COLUMN + 1):
        row[f"degree_{k}"] = int((degrees == k).sum())
    row[f"degree_{MAX_DEGREE_COLUMN + 1}_plus"] = int((degrees > MAX_DEGREE_COLUMN).sum())
    row.update(
        {
            "degree_assortativity": _assortativity(graph),
            "average_clustering": nx.average_clustering(nx.Graph(graph)) if n_nodes else math.nan,
            "connected_components": len(components),
            "largest_component_node_share": len(largest) / n_nodes if n_nodes else math.nan,
            "largest_component_edge_share": (
                graph.subgraph(largest).number_of_edges() / n_edges if n_edges else math.nan
            ),
            "total_length": float(lengths.sum()),
            "mean_edge_length": float(lengths.mean()) if n_edges else math.nan,
            "junction_density": junctions / bearing_area if bearing_area else math.nan,
            "polygons": len(polygons),
            "polygon_mean_area": float(polygons.mean()) if len(polygons) else math.nan,
            "polygon_median_area": float(np.median(polygons)) if len(polygons) else math.nan,
        }
    )
    if len(class_names) > 2:  # multi-class models: class shares, and the classes apart from the network
        row.update(class_fractions(labels, class_names))
        network = set(options.classes or range(1, len(class_names)))
        for k, name in enumerate(class_names[1:], start=1):
            if k not in network:
                areas = region_areas(labels == k, options.min_object_size) * scale**2
                row[f"count_{name}"] = len(areas)
                row[f"area_{name}"] = float(areas.sum())
                row[f"mean_area_{name}"] = float(areas.mean()) if len(areas) else math.nan
    return FrameAnalysis(row, graph, mask, skeleton)


def class_fractions(labels: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """``fraction_<class>``: each foreground class's share of the foreground pixels (NaN
    where a frame has none), as ERnet-v2 reports tubule, sheet and SBT fractions."""
    labels = np.asarray(labels)
    counts = np.bincount(labels.ravel(), minlength=len(class_names))
    foreground = int(counts[1:].sum())
    return {
        f"fraction_{name}": float(counts[k]) / foreground if foreground else math.nan
        for k, name in enumerate(class_names[1:], start=1)
    }


def region_areas(mask: np.ndarray, min_size: int = 1) -> np.ndarray:
    """Areas (pixels) of the 8-connected pieces of a boolean mask of at least ``min_size``
    pixels (e.g. the sheets of a frame)."""
    from scipy import ndimage

    from .postprocess import EIGHT_CONNECTED

    pieces, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    areas = np.bincount(pieces.ravel(), minlength=n + 1)[1:].astype(float)
    return areas[areas >= min_size]


def _filled_area(mask: np.ndarray) -> int:
    """ER-bearing area: the ER pixels and every region they enclose."""
    from scipy import ndimage

    return int(ndimage.binary_fill_holes(mask).sum())


def _assortativity(graph: nx.MultiGraph) -> float:
    import networkx as nx

    if graph.number_of_edges() < 2:
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        value = nx.degree_assortativity_coefficient(graph)
    return float(value) if np.isfinite(value) else math.nan


#: Prefixes of the per-class area columns (classes apart from the network).
CLASS_AREA_PREFIXES = ("area_", "mean_area_")


def metric_units(pixel_size: float | None, columns: Iterable[str] = ()) -> dict[str, str]:
    """Unit of each metric column that has one (and of the per-class areas among
    ``columns``): micrometres where the pixel size is known."""
    length, area = ("um", "um2") if pixel_size else ("px", "px2")
    units = {
        "er_area": area,
        "total_length": length,
        "mean_edge_length": length,
        "junction_density": f"1/{area}",
        "polygon_mean_area": area,
        "polygon_median_area": area,
    }
    units.update({name: area for name in columns if name.startswith(CLASS_AREA_PREFIXES)})
    return units


def column_header(name: str, units: dict[str, str]) -> str:
    """``name [unit]`` for CSV headers."""
    return f"{name} [{units[name]}]" if name in units else name


def frame_indices(axes: str, shape: tuple[int, ...]) -> list[dict[str, int]]:
    """Per frame, its index along each leading axis (e.g. ``{"T": 3, "Z": 0}``)."""
    lead_axes, lead_shape = axes[:-2], shape[:-2]
    return [dict(zip(lead_axes, index, strict=True)) for index in np.ndindex(*lead_shape)]


#: The successor's (ERnet-v2) per-frame metric set, in its order, under this package's
#: names and without its bugs: degree-0 nodes do not overwrite the degree-6 count
#: (isolated pixels make no node here), degrees above 6 are counted in their own last
#: column instead of dropped, and parallel edges are kept.
SUCCESSOR_COLUMNS = (
    "nodes",
    "edges",
    "degree_assortativity",
    "average_clustering",
    "connected_components",
    "largest_component_node_share",
    "largest_component_edge_share",
    *(f"degree_{k}" for k in range(1, MAX_DEGREE_COLUMN + 1)),
    "fraction_tubule",
    "fraction_sheet",
    "fraction_SBT",
    f"degree_{MAX_DEGREE_COLUMN + 1}_plus",
)


class MetricsRecorder:
    """Metrics of a stack's label frames, added one by one: a CSV row per frame (and with
    ``figures``, a graph PNG per frame and a time-series PNG), written by ``finish``;
    ``columns`` limits the CSV to those metrics (e.g. :data:`SUCCESSOR_COLUMNS`).
    Figures are titled with ``name`` (the input's stem; default: the CSV's, less
    ``_metrics``) and, with ``frame_interval`` (the input's ``T`` scale), timed.

    Holds only the rows, so a stack of any length is analysed in bounded memory.
    """

    def __init__(
        self,
        csv_path: Path,
        axes: str,
        shape: tuple[int, ...],
        class_names: Sequence[str] = ("background", "ER"),
        options: AnalysisOptions = AnalysisOptions(),
        figures: bool = False,
        columns: Sequence[str] | None = None,
        name: str | None = None,
        frame_interval: AxisScale | None = None,
        overwrite: bool = True,
    ) -> None:
        self.csv_path, self.class_names, self.options, self.figures = csv_path, class_names, options, figures
        self.columns = columns
        #: Replace files another run wrote meanwhile (else: OutputError, theirs kept).
        self.overwrite = overwrite
        self._stem = csv_path.stem.removesuffix("_metrics")
        self.name = name or self._stem
        self._indices = frame_indices(axes, shape)
        self.frame_interval = interval = frame_interval if "T" in axes[:-2] else None
        #: Each frame's time, in the interval's unit, where the interval is known.
        self.times = None if interval is None else [i["T"] * interval.step for i in self._indices]
        self.rows: list[dict[str, Any]] = []

    def figure_path(self, frame: int | None = None) -> Path:
        """``<stem>_graph_NNNN.png`` for a frame, ``<stem>_metrics.png`` for the time series."""
        name = f"{self._stem}_metrics.png" if frame is None else f"{self._stem}_graph_{frame:04d}.png"
        return self.csv_path.with_name(name)

    def frame_title(self, frame: int) -> str:
        """``name — frame 2/10``, or ``name — t = 1.5 s (frame 2/10)`` with the frame interval."""
        n = len(self._indices)
        if n == 1:
            return self.name
        where = f"frame {frame + 1}/{n}"
        if self.times is None or self.frame_interval is None:
            return f"{self.name} — {where}"
        unit = f" {self.frame_interval.unit}" if self.frame_interval.unit else ""
        return f"{self.name} — t = {self.times[frame]:g}{unit} ({where})"

    def add(self, labels: np.ndarray) -> dict[str, Any]:
        """Analyse the next frame; returns its row."""
        i = len(self.rows)
        analysis = analyze_frame(labels, self.class_names, self.options)
        row = {"frame": i, **self._indices[i], **analysis.metrics}
        self.rows.append(row)
        if self.figures:
            from .figures import graph_figure

            graph_figure(
                self.figure_path(i), analysis.mask, analysis.graph, self.frame_title(i), self.overwrite
            )
        return row

    def finish(self) -> None:
        """Write the CSV (and the time series of a stack)."""
        rows = self.rows
        if self.columns is not None:
            keep = ["frame", *self._indices[0], *self.columns] if self._indices else list(self.columns)
            rows = [{k: row[k] for k in keep if k in row} for row in rows]
        write_metrics_csv(self.csv_path, rows, self.options.pixel_size, self.overwrite)
        if self.figures and len(self.rows) > 1:
            from .figures import time_series_figure

            time_series_figure(
                self.figure_path(),
                self.rows,
                metric_units(self.options.pixel_size),
                times=self.times,
                time_unit=self.frame_interval.unit if self.frame_interval else None,
                title=self.name,
                replace=self.overwrite,
            )


#: ERnet-v2's statistics CSV: each fraction column's header and the class it is of.
ERNET_V2_FRACTIONS = {"Tubule fraction": "tubule", "Sheet fraction": "sheet", "SBT fraction": "SBT"}


class FractionsTable:
    """ERnet-v2's statistics as it writes them (``Filename,Tubule fraction,Sheet
    fraction,SBT fraction``): a row per frame of every input, each class's share of the
    frame's foreground pixels; written atomically by ``finish``. Frames of a stack are
    named by their index (``cells.tif [T=3]``)."""

    def __init__(self, path: Path, overwrite: bool = False) -> None:
        self.path, self.overwrite = path, overwrite
        self.rows: list[list[Any]] = []

    @staticmethod
    def check_classes(class_names: Sequence[str], subject: Path | str) -> None:
        """InputError unless ``class_names`` (a model's, or a mask's) has ERnet-v2's classes."""
        missing = [c for c in ERNET_V2_FRACTIONS.values() if c not in class_names]
        if missing:
            raise InputError(
                f"{subject}: ERnet-v2's fractions need classes {', '.join(ERNET_V2_FRACTIONS.values())}; "
                f"its classes are {', '.join(class_names)}"
            )

    def add(self, name: str, index: dict[str, int], labels: np.ndarray, class_names: Sequence[str]) -> None:
        """Count one frame of input ``name`` (at ``index`` along its leading axes)."""
        fractions = class_fractions(labels, class_names)
        where = ", ".join(f"{axis}={i}" for axis, i in index.items())
        row: list[Any] = [f"{name} [{where}]" if where else name]
        row += [_csv_value(fractions[f"fraction_{c}"]) for c in ERNET_V2_FRACTIONS.values()]
        self.rows.append(row)

    def finish(self) -> None:
        """Write the CSV."""
        import csv

        from .io import atomic_output

        with (
            atomic_output(self.path, self.overwrite) as tmp,
            tmp.open("w", newline="", encoding="utf-8") as f,
        ):
            writer = csv.writer(f)
            writer.writerow(["Filename", *ERNET_V2_FRACTIONS])
            writer.writerows(self.rows)


def write_metrics_csv(
    path: Path, rows: list[dict[str, Any]], pixel_size: float | None, replace: bool = True
) -> None:
    """One row per frame, one column per metric, units in the header; written atomically."""
    import csv

    from .io import atomic_output

    names = list(rows[0]) if rows else ["frame"]
    units = metric_units(pixel_size, names)
    with atomic_output(path, replace) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([column_header(n, units) for n in names])
        for row in rows:
            writer.writerow([_csv_value(row[n]) for n in names])


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value
