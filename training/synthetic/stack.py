"""Frames and time-lapses of one synthetic cell, with their labels and network graph.

A cell is a nucleus inside an irregular outline. Around the nucleus lie sheets
(``sheets``), beside them dense tubular matrices (SBT); elsewhere seeds drawn denser
near the nucleus give, by their Voronoi diagram, the tubular network, its edges bent
into smooth curves and some removed (free ends). Tubules differ in width and
brightness and vary in brightness along their length; junctions are brighter. A
Gaussian PSF, haze, perinuclear glow, a field gradient, shot noise, read noise and
offset follow, quantised to 8 or 16 bits. Everything is vectorised and seeded.

Labels follow one of two conventions (``classes``): ``binary``, the original ERNet's
human labels (ER is the resolvable tubular network, tubules and SBT; sheets, the
saturated perinuclear region and the bright zone around it are background), or
``four``, ERnet-v2's classes (background, tubule, sheet, SBT), where a saturated
perinuclear blob is sheet: inside it sheets, nucleus and glow cannot be told apart.

A share of stacks (``empty_fields``) shows no cell at all: background, field gradient,
dim out-of-focus cells and noise, labelled background throughout, so that a model
learns that noise is not ER. With ``sheet_extent`` (0, 0) the perinuclear region is a
saturated disc instead of sheets; with ``sbt_band``, ``width_spread`` and
``along_variation`` at (0, 0) as well, the generator draws the cells, networks and
imaging parameters it drew before these features existed (those draw from a stream of
their own); only the noise differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from ernet.runtime.contract import BINARY_CLASSES, FOUR_CLASSES

from .camera import expose
from .fields import distractor_cells, smooth_field, soft_inside, wobbly_radius
from .network import NetworkGraph, NetworkStyle, render_network
from .sheets import dense_seeds, sbt_zone, sheet_brightness, sheet_region

Range = tuple[float, float]
#: Label conventions: the original ERNet's (binary) or ERnet-v2's four classes.
Classes = Literal["binary", "four"]
CLASS_NAMES: dict[str, tuple[str, ...]] = {"binary": BINARY_CLASSES, "four": FOUR_CLASSES}
TUBULE, SHEET, SBT = (FOUR_CLASSES.index(c) for c in ("tubule", "sheet", "SBT"))


@dataclass(frozen=True)
class SyntheticConfig:
    """Ranges (low, high) from which each stack draws its parameters."""

    height: int = 512
    width: int = 512
    classes: Classes = "binary"
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
    width_spread: Range = (0.0, 0.35)  # log-normal sigma of each tubule's width factor
    along_variation: Range = (0.0, 0.7)  # relative brightness changes along a tubule
    psf_sigma: Range = (0.9, 2.0)  # px
    signal: Range = (12.0, 140.0)  # counts at a tubule's centre
    junction_gain: Range = (0.2, 0.8)  # extra brightness at junctions
    # Sheets reach out to nucleus radius x (1 + extent); (0, 0): a saturated disc instead.
    sheet_extent: Range = (0.3, 1.5)
    sheet_signal: Range = (0.8, 3.0)  # sheet brightness / tubule signal
    fenestrations: Range = (0.0, 0.01)  # holes per px² of sheet
    sbt_band: Range = (0.0, 35.0)  # px beyond the sheets where SBT patches may lie; (0, 0): none
    sbt_cover: Range = (0.2, 0.8)  # share of that band they cover
    sbt_spacing: Range = (4.0, 7.0)  # seed spacing of SBT, px
    haze: Range = (5.0, 110.0)  # diffuse counts inside the cell (blotchy)
    glow: Range = (0.1, 0.9)  # perinuclear glow as a fraction of full scale
    glow_decay: Range = (0.15, 0.6)  # glow decay length / nucleus radius
    bright_label_cut: Range = (
        0.3,
        0.7,
    )  # binary labels call background where haze + glow exceed this x full scale
    distractors: Range = (0.0, 3.0)  # dim out-of-focus cells without a resolvable network
    background: Range = (5.0, 45.0)  # counts outside cells
    gain: Range = (0.5, 3.0)  # counts per photon (shot noise)
    read_noise: Range = (1.0, 5.0)  # counts
    bit_depth: int = 8
    empty_fields: float = 0.0  # probability that a stack has no cell in view (all background)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the label ids, id 0 first."""
        return CLASS_NAMES[self.classes]


@dataclass
class SyntheticFrame:
    image: np.ndarray  # uint8 or uint16
    mask: np.ndarray  # uint8 class ids (config.class_names)
    graph: NetworkGraph


def _draw(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(*bounds))


@dataclass
class _Cell:
    """What stays fixed over a time-lapse: geometry, seeds and imaging parameters."""

    centre: np.ndarray
    nucleus: float  # radius, px
    outline: np.ndarray  # H x W relative radius (distance / cell radius) with angular wobble
    points: np.ndarray
    sbt_seed: np.ndarray  # which points are SBT seeds
    style: NetworkStyle
    width: float  # label thickness, px
    fwhm: float  # imaged tubule thickness, px
    sheets: np.ndarray  # H x W bool
    sheet_light: np.ndarray  # H x W float32, relative sheet brightness
    sbt_zone: np.ndarray  # H x W bool: where SBT may be labelled (its patches, widened by a tubule)


def _seeds(
    rng: np.random.Generator, cfg: SyntheticConfig, centre: np.ndarray, nucleus: float, cell_radius: float
) -> np.ndarray:
    """Seeds whose density falls from the nucleus to the cell edge (rejection sampling)."""
    h, w = cfg.height, cfg.width
    s_in, s_out = _draw(rng, cfg.spacing_centre), _draw(rng, cfg.spacing_edge)
    margin = 2 * s_out
    area = (h + 2 * margin) * (w + 2 * margin)
    candidates = rng.uniform((-margin, -margin), (h + margin, w + margin), size=(int(area / s_in**2), 2))
    r = np.clip(
        (np.linalg.norm(candidates - centre, axis=1) - nucleus) / max(cell_radius - nucleus, 1.0), 0, 1
    )
    spacing = s_in + (s_out - s_in) * r
    return candidates[rng.random(len(candidates)) < (s_in / spacing) ** 2]


def _make_cell(rng: np.random.Generator, seed: int, cfg: SyntheticConfig) -> _Cell:
    """A cell. What the generator gained later (sheets, fenestrations, SBT, tubule
    variety) draws from streams of its own, one per feature, so that ``rng`` draws what it
    drew before and switching one feature off leaves the others as they were."""
    sheet_rng, hole_rng, sbt_rng, variety_rng = (np.random.default_rng((seed, 0x5EE7, k)) for k in range(4))
    h, w = cfg.height, cfg.width
    short = min(h, w)
    nucleus = _draw(rng, cfg.nucleus_radius) * short
    extent = _draw(rng, cfg.cell_extent)
    cell_radius = max(nucleus * extent, 0.3 * short)
    centre = rng.uniform((0.15 * h, 0.15 * w), (0.85 * h, 0.85 * w))
    outline = wobbly_radius(rng, (h, w), centre, cell_radius, 0.12)
    points = _seeds(rng, cfg, centre, nucleus, cell_radius)
    keep, bend = _draw(rng, cfg.keep_edges), _draw(rng, cfg.bend)
    width, fwhm = _draw(rng, cfg.label_width), _draw(rng, cfg.tubule_width)
    hash_seed = int(rng.integers(1 << 30))

    sheet_extent = _draw(sheet_rng, cfg.sheet_extent)
    sheets = np.zeros((h, w), bool)
    if sheet_extent > 0 and nucleus > 0:
        sheets = sheet_region(sheet_rng, (h, w), centre, nucleus, sheet_extent) & (outline <= 1)
    sheet_light = sheet_brightness(
        hole_rng, sheets, _draw(hole_rng, cfg.fenestrations), hole_rng.uniform(0.7, 1.5)
    )
    zone = sbt_zone(sbt_rng, sheets, _draw(sbt_rng, cfg.sbt_band), _draw(sbt_rng, cfg.sbt_cover))
    zone &= outline <= 1
    dense = dense_seeds(sbt_rng, zone, _draw(sbt_rng, cfg.sbt_spacing))
    ij = np.clip(np.rint(points).astype(np.int64), 0, (h - 1, w - 1))
    points = points[~zone[ij[:, 0], ij[:, 1]]]  # SBT patches have only their own dense seeds
    along_spacing = variety_rng.uniform(8.0, 30.0)
    style = NetworkStyle(
        keep=keep,
        bend=bend,
        hash_seed=hash_seed,
        width_spread=_draw(variety_rng, cfg.width_spread),
        along_variation=_draw(variety_rng, cfg.along_variation),
        along_knots=variety_rng.random((int(h / along_spacing) + 3, int(w / along_spacing) + 3)),
        along_spacing=along_spacing,
    )
    return _Cell(
        centre=centre,
        nucleus=nucleus,
        outline=outline,
        points=np.concatenate([points, dense]),
        sbt_seed=np.r_[np.zeros(len(points), bool), np.ones(len(dense), bool)],
        style=style,
        width=width,
        fwhm=fwhm,
        sheets=sheets,
        sheet_light=sheet_light,
        sbt_zone=ndimage.binary_dilation(zone, iterations=int(np.ceil(width / 2))) if len(dense) else zone,
    )


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
    cell = _make_cell(rng, seed, cfg)
    full_scale = float((1 << cfg.bit_depth) - 1)
    counts_scale = full_scale / 255.0  # parameters are given in 8-bit counts
    psf, signal = _draw(rng, cfg.psf_sigma), _draw(rng, cfg.signal) * counts_scale
    junction_gain, haze_level = _draw(rng, cfg.junction_gain), _draw(rng, cfg.haze) * counts_scale
    background = _draw(rng, cfg.background) * counts_scale
    gain, read_noise = _draw(rng, cfg.gain) * counts_scale, _draw(rng, cfg.read_noise) * counts_scale
    inside = cell.outline <= 1.0
    yy, xx = np.ogrid[0:h, 0:w]
    nucleus_distance = np.sqrt((yy - cell.centre[0]) ** 2 + (xx - cell.centre[1]) ** 2) - cell.nucleus
    nucleus = nucleus_distance <= 0
    decay = max(8.0, _draw(rng, cfg.glow_decay) * cell.nucleus)
    glow = _draw(rng, cfg.glow) * full_scale * np.exp(-np.maximum(nucleus_distance, 0) / decay)
    blotches = 0.4 + 0.6 * smooth_field(rng, h, w, max(h, w) / 6)
    haze = soft_inside(cell.outline) * haze_level * blotches
    haze += distractor_cells(rng, h, w, int(_draw(rng, cfg.distractors)), haze_level + background)
    field = 0.6 + 0.8 * smooth_field(rng, h, w, max(h, w) / 1.5)
    diffuse = (haze * field + background + glow).astype(np.float32)
    # Like the human labels, call the bright perinuclear zone background, not only its saturated core.
    bright_zone = ndimage.binary_opening(
        (diffuse >= _draw(rng, cfg.bright_label_cut) * full_scale) | nucleus, iterations=2
    )
    if cell.sheets.any():  # sheets, and out-of-focus ER over the nucleus
        sheet_level = signal * np.random.default_rng((seed, 0x5E)).uniform(*cfg.sheet_signal)
        perinuclear = sheet_level * (cell.sheet_light + 0.35 * nucleus)
    else:  # the perinuclear region saturates
        perinuclear = nucleus * 4 * full_scale
    sigma_profile = cell.fwhm / 2.355
    network_area = inside & ~cell.sheets & ~nucleus
    frames = []
    for _ in range(n_frames):
        net = render_network(cell.points, cell.sbt_seed, cell.style, (h, w), rng)
        net.brightness *= network_area
        distance, (iy, ix) = ndimage.distance_transform_edt(net.brightness == 0, return_indices=True)
        width = net.width[iy, ix]
        tubules = net.brightness[iy, ix] * np.exp(-(distance**2) / (2 * (sigma_profile * width) ** 2))
        tubules += (
            junction_gain
            * ndimage.gaussian_filter(net.junctions * network_area, cell.fwhm / 2)
            * (2 * np.pi * (cell.fwhm / 2) ** 2)
        )
        expected = ndimage.gaussian_filter(tubules * signal + perinuclear, psf) * field + diffuse
        image = expose(expected, gain, read_noise, rng, cfg.bit_depth)
        saturated = ndimage.binary_opening(expected >= full_scale, iterations=2)
        drawn = (distance <= cell.width / 2 * np.sqrt(width)) & network_area & ~saturated
        sbt = drawn & net.sbt[iy, ix] & cell.sbt_zone  # an SBT edge leaving its patch is a tubule
        if sbt.any():  # a dense matrix is labelled as one region
            sbt = ndimage.binary_closing(sbt, iterations=2) & network_area & ~saturated & cell.sbt_zone
        mask = _labels(cfg.classes, drawn, sbt, cell.sheets | (saturated & inside), bright_zone)
        network = mask > 0 if cfg.classes == "binary" else (mask == TUBULE) | (mask == SBT)
        frames.append(SyntheticFrame(image, mask, net.drawn.graph(network)))
        cell.points = cell.points + rng.normal(0.0, drift, size=cell.points.shape)
    return frames


def _labels(
    classes: Classes, tubules: np.ndarray, sbt: np.ndarray, sheets: np.ndarray, bright_zone: np.ndarray
) -> np.ndarray:
    """uint8 class ids of one frame in the ``classes`` convention; ``sheets`` includes the
    saturated perinuclear blob (sheets, nucleus and glow beyond telling apart), which the
    four classes call sheet and ERNet's labels background."""
    if classes == "binary":
        return ((tubules | sbt) & ~bright_zone & ~sheets).astype(np.uint8)
    mask = np.zeros(tubules.shape, np.uint8)
    mask[tubules] = TUBULE
    mask[sbt] = SBT
    mask[sheets] = SHEET
    return mask


def _empty_stack(n_frames: int, rng: np.random.Generator, cfg: SyntheticConfig) -> list[SyntheticFrame]:
    """Frames with no cell in view: background, field gradient, out-of-focus cells, noise."""
    h, w = cfg.height, cfg.width
    counts_scale = float((1 << cfg.bit_depth) - 1) / 255.0
    background = _draw(rng, cfg.background) * counts_scale
    haze_level = _draw(rng, cfg.haze) * counts_scale
    gain, read_noise = _draw(rng, cfg.gain) * counts_scale, _draw(rng, cfg.read_noise) * counts_scale
    field = 0.6 + 0.8 * smooth_field(rng, h, w, max(h, w) / 1.5)
    distractors = distractor_cells(rng, h, w, int(_draw(rng, cfg.distractors)), haze_level + background)
    expected = ((distractors + background) * field).astype(np.float32)
    empty = np.zeros((h, w), np.uint8)
    graph = NetworkGraph(np.zeros((0, 2)), np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0))
    return [
        SyntheticFrame(expose(expected, gain, read_noise, rng, cfg.bit_depth), empty.copy(), graph)
        for _ in range(n_frames)
    ]


def generate(seed: int = 0, config: SyntheticConfig | None = None) -> SyntheticFrame:
    """One synthetic frame."""
    return generate_stack(1, seed, config)[0]
