"""Does tiling leave seams? The measurements behind the default tile overlap.

``python -m ernet.benchmarks.seams [DATA]`` runs a model on real labelled frames
(default ``../shared/data/er-real``) and on generated frames, whole and tiled at
several overlaps, and reports per overlap (on the model's own labels: no minimum
object size):

- tile mismatch: the fraction of pixels shared by neighbouring tiles where the two
  tiles' own argmax disagree (what blending has to reconcile);
- disagreement of the blended tiled mask with whole-frame inference, overall, in
  bands of +-``BAND`` px around internal tile edges, and in control bands of the same
  width midway between those edges, and elsewhere (all other pixels), all counted only
  within ``NEAR`` px of ER (no seams: edge bands are not worse than elsewhere; without
  that restriction the comparison would be confounded, as tile edges cross the dense
  cell interior more often than the frame's empty margins, where nothing can disagree);
- mean ER IoU against the labels, tiled and whole-frame (real frames);
- model pixels per frame pixel (the cost of the overlap).

ERNet's channel attention pools over its whole input, so no tiling equals
whole-frame inference exactly; these numbers say how close each overlap gets.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from scipy import ndimage

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.evaluation import REAL_DATA, confusion_matrix, scores
from ernet.runtime.io import atomic_output, labelled_pairs, open_image
from ernet.runtime.tiling import TileGrid

#: Half-width in pixels of the bands around internal tile edges.
BAND = 8
#: Band statistics count pixels within this distance of ER (in either mask).
NEAR = 3
OVERLAPS = (0, 32, 64, 128)
#: Each frame is also measured cropped by these many rows and columns, which moves the
#: tile edges over different content: edge and control bands then see the same
#: structures on average, and a seam is not confused with what happens to lie there.
OFFSETS = (0, 48, 96, 144)


def tile_argmaxes(seg: Segmenter, image: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Each tile's own class ids, keyed by its origin."""
    out: dict[tuple[int, int], np.ndarray] = {}
    for origins, batch in seg.tile_batches(image):
        out.update(zip(origins, seg.run_model(batch).argmax(axis=1), strict=True))
    return out


def tile_mismatch(tiles: dict[tuple[int, int], np.ndarray], grid: TileGrid) -> tuple[int, int]:
    """(disagreeing, shared) pixel counts over all pairs of overlapping neighbour tiles."""
    t, bad, shared = grid.tile, 0, 0
    for (y, x), ids in tiles.items():
        for dy, dx in ((0, 1), (1, 0)):
            ys, xs = grid.ys, grid.xs
            iy, ix = ys.index(y) + dy, xs.index(x) + dx
            if iy >= len(ys) or ix >= len(xs):
                continue
            ny, nx = ys[iy], xs[ix]
            y0, y1, x0, x1 = max(y, ny), min(y, ny) + t, max(x, nx), min(x, nx) + t
            if y1 <= y0 or x1 <= x0:
                continue
            a = ids[y0 - y : y1 - y, x0 - x : x1 - x]
            b = tiles[(ny, nx)][y0 - ny : y1 - ny, x0 - nx : x1 - nx]
            bad += int((a != b).sum())
            shared += a.size
    return bad, shared


def seam_bands(grid: TileGrid) -> tuple[np.ndarray, np.ndarray]:
    """Pixels within ``BAND`` of an edge of some tile that is not the frame's edge, and,
    as the control, pixels within ``BAND`` of the lines midway between those edges."""

    def lines(starts: tuple[int, ...], size: int) -> tuple[list[int], list[int]]:
        edges = sorted({e for s in starts for e in (s, s + grid.tile) if 0 < e < size})
        return edges, [(a + b) // 2 for a, b in zip(edges, edges[1:], strict=False)]

    def draw(rows: list[int], cols: list[int]) -> np.ndarray:
        mask = np.zeros((grid.height, grid.width), bool)
        for r in rows:
            mask[max(0, r - BAND) : r + BAND] = True
        for c in cols:
            mask[:, max(0, c - BAND) : c + BAND] = True
        return mask

    (edge_rows, mid_rows), (edge_cols, mid_cols) = lines(grid.ys, grid.height), lines(grid.xs, grid.width)
    seams = draw(edge_rows, edge_cols)
    return seams, draw(mid_rows, mid_cols) & ~seams


def measure_frame(
    segmenters: dict[int, Segmenter], frame: np.ndarray, truth: np.ndarray | None
) -> list[dict[str, Any]]:
    """One row per overlap (the keys of ``segmenters``, which differ only in it) for one
    frame: counts, so frames can be pooled."""
    first = next(iter(segmenters.values()))
    image = first.prepare(frame)
    whole = first.run_model(image[None])[0].argmax(0)
    rows = []
    for overlap, seg in segmenters.items():
        grid = seg.grid(*frame.shape)
        tiled = seg.predict_prepared(image).labels
        bad, shared = tile_mismatch(tile_argmaxes(seg, image), grid)
        bands, control = seam_bands(grid)
        # Compare like with like: only pixels near ER in either mask can disagree, and
        # tile edges cross the dense cell interior more than the empty margins.
        near = ndimage.binary_dilation((tiled > 0) | (whole > 0), iterations=NEAR)
        bands, control = bands & near, control & near
        differ = tiled != whole
        row = {
            "overlap": overlap,
            "pixels": differ.size,
            "model_pixels": grid.tile_pixels,
            "mismatch": bad,
            "shared": shared,
            "differ": int(differ.sum()),
            "band_differ": int(differ[bands].sum()),
            "band_pixels": int(bands.sum()),
            "control_differ": int(differ[control].sum()),
            "control_pixels": int(control.sum()),
            "near_differ": int(differ[near].sum()),
            "near_pixels": int(near.sum()),
        }
        if truth is not None:
            row["tiled_matrix"] = confusion_matrix(tiled, truth, seg.n_classes)
            row["whole_matrix"] = confusion_matrix(whole, truth, seg.n_classes)
        rows.append(row)
    return rows


def pooled(rows: list[dict[str, Any]], class_names: tuple[str, ...]) -> dict[str, Any]:
    """Totals of per-frame rows of one overlap turned into rates."""
    total = {k: sum(r[k] for r in rows) for k in rows[0] if k != "overlap"}
    out = {
        "overlap": rows[0]["overlap"],
        "model_pixels_per_pixel": total["model_pixels"] / total["pixels"],
        "tile_mismatch": total["mismatch"] / max(total["shared"], 1),
        "disagreement": total["differ"] / total["pixels"],
        "disagreement_in_bands": total["band_differ"] / max(total["band_pixels"], 1),
        "disagreement_in_controls": total["control_differ"] / max(total["control_pixels"], 1),
        "disagreement_elsewhere": (total["near_differ"] - total["band_differ"])
        / max(total["near_pixels"] - total["band_pixels"], 1),
    }
    if "tiled_matrix" in rows[0]:
        ious = [
            (
                scores(r["tiled_matrix"], class_names)["mean_iou_foreground"],
                scores(r["whole_matrix"], class_names)["mean_iou_foreground"],
            )
            for r in rows
        ]
        out["iou_tiled"] = float(np.mean([t for t, _ in ious]))
        out["iou_whole"] = float(np.mean([w for _, w in ious]))
    return out


def table(title: str, results: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| overlap | model px / px | tile mismatch | vs whole: overall | in seam bands | in control bands "
        "| elsewhere | IoU tiled | IoU whole |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        iou = f"{r['iou_tiled']:.4f} | {r['iou_whole']:.4f}" if "iou_tiled" in r else "- | -"
        lines.append(
            f"| {r['overlap']} | {r['model_pixels_per_pixel']:.2f} | {r['tile_mismatch']:.2%} | "
            f"{r['disagreement']:.2%} | {r['disagreement_in_bands']:.2%} | "
            f"{r['disagreement_in_controls']:.2%} | {r['disagreement_elsewhere']:.2%} | {iou} |"
        )
    return lines + [""]


def tiled_spec(model: Path | None, tile: int | None) -> RunSpec:
    """How the model runs here: on the CPU, raw labels, in ``tile``-px tiles, by default
    the training crop (a spec without a tile would run whole frames on the CPU)."""
    spec = RunSpec(model, "cpu", tile=tile, min_object_size=0)
    if tile is None:
        with Segmenter(spec) as probe:
            spec = replace(spec, tile=probe.contract.tiles.size)
    return spec


def main(
    data: Annotated[Path, typer.Argument(help="Folder of NAME_image/NAME_mask pairs.")] = REAL_DATA,
    model: Annotated[Path | None, typer.Option(help="ERNet ONNX model; default: the embedded one.")] = None,
    tile: Annotated[int | None, typer.Option(help="Tile size; default: the model's training crop.")] = None,
    generated: Annotated[int, typer.Option(help="Generated 1040 x 1392 frames to add.")] = 4,
    out: Annotated[Path | None, typer.Option(help="Write the Markdown table here.")] = None,
) -> None:
    """Measure tile seams and tiled-vs-whole agreement at several overlaps."""
    spec = tiled_spec(model, tile)
    segmenters = {overlap: Segmenter(replace(spec, overlap=overlap)) for overlap in OVERLAPS}
    seg = segmenters[OVERLAPS[0]]
    sets: dict[str, list[list[dict[str, Any]]]] = {"real": [], "generated": []}
    if data.is_dir():
        for pair in labelled_pairs(data):
            for frame, truth in zip(
                open_image(pair.image).frames(), open_image(pair.mask).frames(), strict=True
            ):
                sets["real"] += [measure_frame(segmenters, frame[o:, o:], truth[o:, o:]) for o in OFFSETS]
    if generated:
        from ernet.training.synthetic import SyntheticConfig, generate

        for i in range(generated):
            sample = generate(1000 + i, SyntheticConfig(height=1040, width=1392))
            image, mask = sample.image, sample.mask
            sets["generated"] += [measure_frame(segmenters, image[o:, o:], mask[o:, o:]) for o in OFFSETS]
    lines = [
        f"Model {seg.model_path.name if seg.model_path else '?'}, tile {seg.tile}, Gaussian blending "
        f"(sigma = tile/8, floor 1e-3 per axis), seam bands +-{BAND} px around internal tile edges, "
        f"control bands midway between them, both within {NEAR} px of ER; each frame cropped "
        f"by {', '.join(map(str, OFFSETS))} px to move the tile edges over the content.",
        "",
    ]
    for name, frames in sets.items():
        if frames:
            results = [pooled([f[i] for f in frames], seg.contract.class_names) for i in range(len(OVERLAPS))]
            lines += table(
                f"{name} frames ({len(frames) // len(OFFSETS)}, each at {len(OFFSETS)} offsets)", results
            )
    text = "\n".join(lines)
    print(text)
    if out:
        with atomic_output(out) as tmp:
            tmp.write_text(text + "\n")


if __name__ == "__main__":
    typer.run(main)
