"""The tubular network: a Voronoi diagram of seeds, its edges bent into smooth curves.

Each edge (tubule) has its own brightness, width factor and, along its length, a
brightness that varies smoothly; edges between two seeds of a dense patch are SBT
(sheet-based tubules) rather than plain tubules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import Voronoi

from .fields import smooth_at


@dataclass
class NetworkGraph:
    """The network as drawn: ``nodes`` (N x 2, y and x in px), ``edges`` (E x 2 node
    indices; parallel edges are possible), each edge's centre-line ``lengths`` in px, and
    the fraction of each edge's centre line that is ``labelled`` network (0 for edges
    hidden outside the cell, in the perinuclear zone or outside the frame)."""

    nodes: np.ndarray
    edges: np.ndarray
    lengths: np.ndarray
    labelled: np.ndarray


@dataclass
class NetworkStyle:
    """What a cell's network looks like, fixed over a time-lapse."""

    keep: float  # fraction of edges kept
    bend: float  # midpoint displacement / edge length
    hash_seed: int  # per-edge choices, stable across frames
    width_spread: float  # log-normal sigma of the per-tubule width factor
    along_variation: float  # relative amplitude of brightness changes along a tubule
    along_knots: np.ndarray  # random knots of that variation
    along_spacing: float  # px between knots


@dataclass
class RenderedNetwork:
    """Centre-line images (0 off the network) and the drawn edges."""

    brightness: np.ndarray  # H x W float32
    width: np.ndarray  # H x W float32 width factor (1 = the cell's tubule width)
    sbt: np.ndarray  # H x W bool: centre line of an SBT edge
    junctions: np.ndarray  # H x W float32 impulses at vertices of degree >= 3
    drawn: _Drawn


def edge_hash(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic number in [0, 1) per unordered seed pair (stable across frames)."""
    lo, hi = np.minimum(a, b).astype(np.uint64), np.maximum(a, b).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = lo * np.uint64(0x9E3779B97F4A7C15) ^ hi * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x165667B19E3779F9)
        h ^= h >> np.uint64(29)
    return (h % np.uint64(1 << 24)).astype(np.float64) / float(1 << 24)


def curve_points(
    p0: np.ndarray, mid: np.ndarray, p1: np.ndarray, step: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Samples every ``step`` px along quadratic curves through p0, mid, p1 (E x 2 each),
    and the index of the curve of each sample."""
    control = 2 * mid - (p0 + p1) / 2  # the Bezier control point that puts mid on the curve
    length = np.linalg.norm(mid - p0, axis=1) + np.linalg.norm(p1 - mid, axis=1)
    counts = np.ceil(length / step).astype(np.int64) + 1
    edge = np.repeat(np.arange(len(p0)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    t = ((np.arange(counts.sum()) - first) / np.maximum(counts[edge] - 1, 1))[:, None]
    pts = (1 - t) ** 2 * p0[edge] + 2 * (1 - t) * t * control[edge] + t**2 * p1[edge]
    return pts, edge


@dataclass
class _Drawn:
    """Centre-line samples of the drawn edges, to measure the graph against the labels."""

    vertices: np.ndarray
    edges: np.ndarray  # E x 2 indices into vertices
    samples: np.ndarray  # S x 2 positions along the curves, px
    sample_edge: np.ndarray  # S edge indices

    def graph(self, network: np.ndarray) -> NetworkGraph:
        """The graph, each edge measured against the ``network`` label (H x W bool)."""
        h, w = network.shape
        used, inverse = np.unique(self.edges, return_inverse=True)
        n_edges = len(self.edges)
        same = self.sample_edge[1:] == self.sample_edge[:-1]
        steps = np.linalg.norm(np.diff(self.samples, axis=0), axis=1)
        lengths = np.bincount(self.sample_edge[1:][same], weights=steps[same], minlength=n_edges)
        y, x = np.rint(self.samples).astype(np.int64).T
        seen = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        on_label = np.zeros(len(self.samples))
        on_label[seen] = network[y[seen], x[seen]]
        counts = np.bincount(self.sample_edge, minlength=n_edges)
        labelled = np.bincount(self.sample_edge, weights=on_label, minlength=n_edges) / np.maximum(counts, 1)
        return NetworkGraph(self.vertices[used], inverse.reshape(-1, 2), lengths, labelled)


def _width_factors(u: np.ndarray, spread: float) -> np.ndarray:
    """Log-normal width factors (median 1, clipped to [0.5, 2]) from uniform numbers."""
    from scipy.special import ndtri

    return np.clip(np.exp(spread * ndtri(np.clip(u, 1e-3, 1 - 1e-3))), 0.5, 2.0)


def render_network(
    points: np.ndarray,
    sbt_seed: np.ndarray,
    style: NetworkStyle,
    shape: tuple[int, int],
    rng: np.random.Generator,
) -> RenderedNetwork:
    """The Voronoi network of ``points`` (N x 2 px; ``sbt_seed`` marks the seeds of dense
    patches), drawn into centre-line images of ``shape``."""
    h, w = shape
    vor = Voronoi(points)
    ridges, pairs = np.asarray(vor.ridge_vertices), np.asarray(vor.ridge_points)
    # Edges with an end far outside the frame (Voronoi vertices of border seeds) are never seen.
    near = (vor.vertices > -16).all(axis=1) & (vor.vertices < np.array([h + 16, w + 16])).all(axis=1)
    kept = (ridges >= 0).all(axis=1) & near[ridges].all(axis=1)
    kept &= edge_hash(pairs[:, 0], pairs[:, 1], style.hash_seed) < style.keep
    ends = vor.vertices[ridges[kept]]
    p0, p1 = ends[:, 0], ends[:, 1]
    normal = (p1 - p0)[:, ::-1] * np.array([1.0, -1.0])
    displacement = rng.normal(0.0, style.bend, size=(len(p0), 1))
    pts, edge = curve_points(p0, (p0 + p1) / 2 + normal * displacement, p1)
    a, b = pairs[kept, 0], pairs[kept, 1]
    gains = 0.5 + edge_hash(a, b, style.hash_seed + 1)  # 0.5..1.5 per tubule
    brightness = gains[edge]
    if style.along_variation:
        along = 2 * smooth_at(style.along_knots, style.along_spacing, pts) - 1
        brightness = brightness * np.maximum(1 + style.along_variation * along, 0.15)
    widths = _width_factors(edge_hash(a, b, style.hash_seed + 2), style.width_spread)
    is_sbt = sbt_seed[a] & sbt_seed[b]
    ij = np.rint(pts).astype(np.int64)
    inside = (ij[:, 0] >= 0) & (ij[:, 0] < h) & (ij[:, 1] >= 0) & (ij[:, 1] < w)
    at = (ij[inside, 0], ij[inside, 1])
    centre = np.zeros(shape, np.float32)
    np.maximum.at(centre, at, brightness[inside].astype(np.float32))
    width = np.ones(shape, np.float32)
    width[at] = widths[edge[inside]]
    sbt = np.zeros(shape, bool)
    sbt[at] = is_sbt[edge[inside]]
    # Junctions: Voronoi vertices shared by 3 or more kept edges.
    vertex_ids, degree = np.unique(ridges[kept].ravel(), return_counts=True)
    junctions = np.rint(vor.vertices[vertex_ids[degree >= 3]]).astype(np.int64)
    ok = (junctions[:, 0] >= 0) & (junctions[:, 0] < h) & (junctions[:, 1] >= 0) & (junctions[:, 1] < w)
    spots = np.zeros(shape, np.float32)
    spots[junctions[ok, 0], junctions[ok, 1]] = 1.0
    return RenderedNetwork(centre, width, sbt, spots, _Drawn(vor.vertices, ridges[kept], pts, edge))
