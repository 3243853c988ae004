"""Synthetic ER images with exact labels and their network graph (numpy/scipy only).

A cell is a nucleus (rendered far above saturation, as the perinuclear ER is in
widefield frames, and labelled background like in the human labels) inside an
irregular outline. Seeds are drawn denser near the nucleus; their Voronoi diagram
gives a polygonal network whose edges are bent into smooth curves, some removed
(free ends). Tubules get their own brightness, junctions are brighter; a Gaussian
PSF, haze, perinuclear glow, a field gradient, shot noise, read noise and offset
follow, quantised to 8 or 16 bits. Everything is vectorised and seeded.

A share of stacks (``empty_fields``) shows no cell at all: background, field gradient,
dim out-of-focus cells and noise, labelled background throughout, so that a model
learns that noise is not ER.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import Voronoi

Range = tuple[float, float]


@dataclass(frozen=True)
class SyntheticConfig:
    """Ranges (low, high) from which each stack draws its parameters."""

    height: int = 512
    width: int = 512
    nucleus_radius: Range = (0.06, 0.22)  # fraction of the frame's shorter side; 0 = no nucleus
    cell_extent: Range = (1.8, 3.5)  # cell radius / nucleus radius
    spacing_centre: Range = (8.0, 14.0)  # seed spacing next to the nucleus, px
    spacing_edge: Range = (16.0, 36.0)  # seed spacing at the cell's edge, px
    keep_edges: Range = (0.6, 0.95)  # fraction of network edges kept
    bend: Range = (0.0, 0.25)  # midpoint displacement / edge length
    tubule_width: Range = (2.5, 4.5)  # imaged tubule FWHM before the PSF, px
    # The human labels draw tubules much thicker than they image (their mean distance to
    # the label edge matches a 7-9 px line): labels follow the labels' convention.
    label_width: Range = (6.5, 9.0)
    psf_sigma: Range = (0.9, 2.0)  # px
    signal: Range = (12.0, 140.0)  # counts at a tubule's centre
    junction_gain: Range = (0.2, 0.8)  # extra brightness at junctions
    haze: Range = (5.0, 110.0)  # diffuse counts inside the cell (blotchy)
    glow: Range = (0.1, 0.9)  # perinuclear glow as a fraction of full scale
    glow_decay: Range = (0.15, 0.6)  # glow decay length / nucleus radius
    bright_label_cut: Range = (0.3, 0.7)  # labels call background where haze + glow exceed this x full scale
    distractors: Range = (0.0, 3.0)  # dim out-of-focus cells without a resolvable network
    background: Range = (5.0, 45.0)  # counts outside cells
    gain: Range = (0.5, 3.0)  # counts per photon (shot noise)
    read_noise: Range = (1.0, 5.0)  # counts
    bit_depth: int = 8
    empty_fields: float = 0.0  # probability that a stack has no cell in view (all background)


@dataclass
class NetworkGraph:
    """The network as drawn: ``nodes`` (N x 2, y and x in px), ``edges`` (E x 2 node
    indices; parallel edges are possible), each edge's centre-line ``lengths`` in px, and
    the fraction of each edge's centre line that is ``labelled`` ER (0 for edges hidden
    outside the cell, in the perinuclear zone or outside the frame)."""

    nodes: np.ndarray
    edges: np.ndarray
    lengths: np.ndarray
    labelled: np.ndarray


@dataclass
class SyntheticFrame:
    image: np.ndarray  # uint8 or uint16
    mask: np.ndarray  # uint8 class ids, 1 = ER
    graph: NetworkGraph


def _draw(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(*bounds))


def _edge_hash(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic number in [0, 1) per unordered seed pair (stable across frames)."""
    lo, hi = np.minimum(a, b).astype(np.uint64), np.maximum(a, b).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = lo * np.uint64(0x9E3779B97F4A7C15) ^ hi * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x165667B19E3779F9)
        h ^= h >> np.uint64(29)
    return (h % np.uint64(1 << 24)).astype(np.float64) / float(1 << 24)


def _curve_points(
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


def _smooth_field(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Smooth random field in [0, 1] with features about ``scale`` px across."""
    coarse = rng.random((max(2, int(height / scale) + 2), max(2, int(width / scale) + 2)))
    field = ndimage.zoom(coarse, (height / (coarse.shape[0] - 1), width / (coarse.shape[1] - 1)), order=1)
    field = field[:height, :width]
    field -= field.min()
    return field / max(float(field.max()), 1e-9)


def _soft_inside(relative_radius: np.ndarray, softness: float = 0.08) -> np.ndarray:
    """1 inside (radius < 1), 0 outside, with a smooth edge: out-of-focus cell bodies."""
    with np.errstate(over="ignore"):  # far outside: exp overflows to inf, the value to 0
        return (1.0 / (1.0 + np.exp((relative_radius - 1.0) / softness))).astype(np.float32)


def _distractor_cells(
    rng: np.random.Generator, height: int, width: int, count: int, level: float
) -> np.ndarray:
    """Dim ellipses: out-of-focus cells whose ER is not resolved (labelled background)."""
    out = np.zeros((height, width), np.float32)
    yy, xx = np.ogrid[0:height, 0:width]
    for _ in range(count):  # a handful per frame: not a hot loop
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.05, 0.2, size=2) * min(height, width)
        out += (
            _soft_inside(np.sqrt((yy - cy) ** 2 / ry**2 + (xx - cx) ** 2 / rx**2), 0.25)
            * rng.uniform(0.3, 1.5)
            * level
        )
    return out


@dataclass
class _Cell:
    """What stays fixed over a time-lapse: geometry, seeds and imaging parameters."""

    centre: np.ndarray
    nucleus: float  # radius, px
    outline: np.ndarray  # H x W relative radius (distance / cell radius) with angular wobble
    points: np.ndarray
    keep: float
    bend: float
    width: float  # label thickness, px
    fwhm: float  # imaged tubule thickness, px
    edge_gain_seed: int


def _make_cell(rng: np.random.Generator, cfg: SyntheticConfig) -> _Cell:
    h, w = cfg.height, cfg.width
    short = min(h, w)
    nucleus = _draw(rng, cfg.nucleus_radius) * short
    extent = _draw(rng, cfg.cell_extent)
    cell_radius = max(nucleus * extent, 0.3 * short)
    centre = rng.uniform((0.15 * h, 0.15 * w), (0.85 * h, 0.85 * w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = np.arctan2(yy - centre[0], xx - centre[1])
    harmonics = rng.normal(0, 0.12, size=(2, 5))
    wobble = sum(
        harmonics[0, k] * np.cos((k + 1) * angle) + harmonics[1, k] * np.sin((k + 1) * angle)
        for k in range(5)
    )
    outline = np.hypot(yy - centre[0], xx - centre[1]) / (cell_radius * (1 + wobble))
    # Seeds: density falls from the nucleus to the cell edge (rejection sampling).
    s_in, s_out = _draw(rng, cfg.spacing_centre), _draw(rng, cfg.spacing_edge)
    margin = 2 * s_out
    area = (h + 2 * margin) * (w + 2 * margin)
    candidates = rng.uniform((-margin, -margin), (h + margin, w + margin), size=(int(area / s_in**2), 2))
    r = np.clip(
        (np.linalg.norm(candidates - centre, axis=1) - nucleus) / max(cell_radius - nucleus, 1.0), 0, 1
    )
    spacing = s_in + (s_out - s_in) * r
    points = candidates[rng.random(len(candidates)) < (s_in / spacing) ** 2]
    return _Cell(
        centre=centre,
        nucleus=nucleus,
        outline=outline,
        points=points,
        keep=_draw(rng, cfg.keep_edges),
        bend=_draw(rng, cfg.bend),
        width=_draw(rng, cfg.label_width),
        fwhm=_draw(rng, cfg.tubule_width),
        edge_gain_seed=int(rng.integers(1 << 30)),
    )


@dataclass
class _Drawn:
    """Centre-line samples of the drawn edges, to measure the graph against the labels."""

    vertices: np.ndarray
    edges: np.ndarray  # E x 2 indices into vertices
    samples: np.ndarray  # S x 2 positions along the curves, px
    sample_edge: np.ndarray  # S edge indices

    def graph(self, mask: np.ndarray) -> NetworkGraph:
        h, w = mask.shape
        used, inverse = np.unique(self.edges, return_inverse=True)
        n_edges = len(self.edges)
        same = self.sample_edge[1:] == self.sample_edge[:-1]
        steps = np.linalg.norm(np.diff(self.samples, axis=0), axis=1)
        lengths = np.bincount(self.sample_edge[1:][same], weights=steps[same], minlength=n_edges)
        y, x = np.rint(self.samples).astype(np.int64).T
        seen = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        on_label = np.zeros(len(self.samples))
        on_label[seen] = mask[y[seen], x[seen]]
        counts = np.bincount(self.sample_edge, minlength=n_edges)
        labelled = np.bincount(self.sample_edge, weights=on_label, minlength=n_edges) / np.maximum(counts, 1)
        return NetworkGraph(self.vertices[used], inverse.reshape(-1, 2), lengths, labelled)


def _render_network(
    cell: _Cell, cfg: SyntheticConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, _Drawn]:
    """Centre-line brightness image (0 off the network), junction impulse image, and
    the drawn edges."""
    h, w = cfg.height, cfg.width
    vor = Voronoi(cell.points)
    ridges, pairs = np.asarray(vor.ridge_vertices), np.asarray(vor.ridge_points)
    # Edges with an end far outside the frame (Voronoi vertices of border seeds) are never seen.
    near = (vor.vertices > -16).all(axis=1) & (vor.vertices < np.array([h + 16, w + 16])).all(axis=1)
    kept = (ridges >= 0).all(axis=1) & near[ridges].all(axis=1)
    kept &= _edge_hash(pairs[:, 0], pairs[:, 1], cell.edge_gain_seed) < cell.keep
    ends = vor.vertices[ridges[kept]]
    p0, p1 = ends[:, 0], ends[:, 1]
    normal = (p1 - p0)[:, ::-1] * np.array([1.0, -1.0])
    displacement = rng.normal(0.0, cell.bend, size=(len(p0), 1))
    pts, edge = _curve_points(p0, (p0 + p1) / 2 + normal * displacement, p1)
    gains = 0.5 + _edge_hash(pairs[kept, 0], pairs[kept, 1], cell.edge_gain_seed + 1)  # 0.5..1.5 per tubule
    ij = np.rint(pts).astype(np.int64)
    inside = (ij[:, 0] >= 0) & (ij[:, 0] < h) & (ij[:, 1] >= 0) & (ij[:, 1] < w)
    centre = np.zeros((h, w), np.float32)
    np.maximum.at(centre, (ij[inside, 0], ij[inside, 1]), gains[edge[inside]].astype(np.float32))
    # Junctions: Voronoi vertices shared by 3 or more kept edges.
    vertex_ids, degree = np.unique(ridges[kept].ravel(), return_counts=True)
    junctions = np.rint(vor.vertices[vertex_ids[degree >= 3]]).astype(np.int64)
    ok = (junctions[:, 0] >= 0) & (junctions[:, 0] < h) & (junctions[:, 1] >= 0) & (junctions[:, 1] < w)
    spots = np.zeros((h, w), np.float32)
    spots[junctions[ok, 0], junctions[ok, 1]] = 1.0
    return centre, spots, _Drawn(vor.vertices, ridges[kept], pts, edge)


def generate_stack(
    n_frames: int = 1, seed: int = 0, config: SyntheticConfig | None = None, drift: float = 0.6
) -> list[SyntheticFrame]:
    """``n_frames`` frames of one cell whose network moves by ``drift`` px per frame."""
    cfg = config or SyntheticConfig()
    # Its own stream decides emptiness, so stacks with a cell stay those of empty_fields=0.
    if np.random.default_rng((seed, 0xE)).random() < cfg.empty_fields:
        return _empty_stack(n_frames, np.random.default_rng(seed), cfg)
    rng = np.random.default_rng(seed)
    h, w = cfg.height, cfg.width
    cell = _make_cell(rng, cfg)
    full_scale = float((1 << cfg.bit_depth) - 1)
    counts_scale = full_scale / 255.0  # parameters are given in 8-bit counts
    psf, signal = _draw(rng, cfg.psf_sigma), _draw(rng, cfg.signal) * counts_scale
    junction_gain, haze_level = _draw(rng, cfg.junction_gain), _draw(rng, cfg.haze) * counts_scale
    background = _draw(rng, cfg.background) * counts_scale
    gain, read_noise = _draw(rng, cfg.gain) * counts_scale, _draw(rng, cfg.read_noise) * counts_scale
    inside = cell.outline <= 1.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    nucleus_distance = np.hypot(yy - cell.centre[0], xx - cell.centre[1]) - cell.nucleus
    nucleus = nucleus_distance <= 0
    decay = max(8.0, _draw(rng, cfg.glow_decay) * cell.nucleus)
    glow = _draw(rng, cfg.glow) * full_scale * np.exp(-np.maximum(nucleus_distance, 0) / decay)
    blotches = 0.4 + 0.6 * _smooth_field(rng, h, w, max(h, w) / 6)
    haze = _soft_inside(cell.outline) * haze_level * blotches
    haze += _distractor_cells(rng, h, w, int(_draw(rng, cfg.distractors)), haze_level + background)
    field = 0.6 + 0.8 * _smooth_field(rng, h, w, max(h, w) / 1.5)
    diffuse = (haze * field + background + glow).astype(np.float32)
    # Like the human labels, call the bright perinuclear zone background, not only its saturated core.
    bright_zone = ndimage.binary_opening(
        (diffuse >= _draw(rng, cfg.bright_label_cut) * full_scale) | nucleus, iterations=2
    )
    sigma_profile = cell.fwhm / 2.355
    frames = []
    for _ in range(n_frames):
        centre, spots, drawn = _render_network(cell, cfg, rng)
        centre *= inside
        distance, (iy, ix) = ndimage.distance_transform_edt(centre == 0, return_indices=True)
        tubules = centre[iy, ix] * np.exp(-(distance**2) / (2 * sigma_profile**2))
        tubules += (
            junction_gain
            * ndimage.gaussian_filter(spots * inside, cell.fwhm / 2)
            * (2 * np.pi * (cell.fwhm / 2) ** 2)
        )
        expected = ndimage.gaussian_filter(tubules, psf) * signal * field + diffuse
        expected += nucleus * 4 * full_scale  # the perinuclear region saturates
        image = _expose(expected, gain, read_noise, rng, cfg.bit_depth)
        saturated = ndimage.binary_opening(expected >= full_scale, iterations=2)
        mask = (distance <= cell.width / 2) & inside & ~saturated & ~bright_zone
        frames.append(SyntheticFrame(image, mask.astype(np.uint8), drawn.graph(mask)))
        cell.points = cell.points + rng.normal(0.0, drift, size=cell.points.shape)
    return frames


def _expose(
    expected: np.ndarray, gain: float, read_noise: float, rng: np.random.Generator, bit_depth: int
) -> np.ndarray:
    """The camera: shot noise at ``gain`` counts per photon, Gaussian read noise, quantisation."""
    photons = rng.poisson(np.maximum(expected, 0) / gain)
    counts = gain * photons + rng.normal(0, read_noise, size=expected.shape)
    image = np.clip(np.rint(counts), 0, float((1 << bit_depth) - 1))
    return image.astype(np.uint8 if bit_depth <= 8 else np.uint16)


def _empty_stack(n_frames: int, rng: np.random.Generator, cfg: SyntheticConfig) -> list[SyntheticFrame]:
    """Frames with no cell in view: background, field gradient, out-of-focus cells, noise."""
    h, w = cfg.height, cfg.width
    counts_scale = float((1 << cfg.bit_depth) - 1) / 255.0
    background = _draw(rng, cfg.background) * counts_scale
    haze_level = _draw(rng, cfg.haze) * counts_scale
    gain, read_noise = _draw(rng, cfg.gain) * counts_scale, _draw(rng, cfg.read_noise) * counts_scale
    field = 0.6 + 0.8 * _smooth_field(rng, h, w, max(h, w) / 1.5)
    distractors = _distractor_cells(rng, h, w, int(_draw(rng, cfg.distractors)), haze_level + background)
    expected = ((distractors + background) * field).astype(np.float32)
    empty = np.zeros((h, w), np.uint8)
    graph = NetworkGraph(np.zeros((0, 2)), np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0))
    return [
        SyntheticFrame(_expose(expected, gain, read_noise, rng, cfg.bit_depth), empty.copy(), graph)
        for _ in range(n_frames)
    ]


def generate(seed: int = 0, config: SyntheticConfig | None = None) -> SyntheticFrame:
    """One synthetic frame."""
    return generate_stack(1, seed, config)[0]
