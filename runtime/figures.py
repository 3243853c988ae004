"""Figures of the network analysis: the graph over its mask, and metrics over time.

matplotlib (``analysis`` extra) with its file-only Agg backend; PNGs written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .io import atomic_output

if TYPE_CHECKING:
    import networkx as nx

#: Metrics drawn over time for stacks.
TIME_SERIES = ("er_area_fraction", "junctions", "free_ends", "total_length", "polygons", "mean_edge_length")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def graph_figure(
    path: Path, mask: np.ndarray, graph: nx.MultiGraph, title: str = "", replace: bool = True
) -> None:
    """PNG of ``mask`` in grey with the graph's edges and its nodes coloured by degree."""
    plt = _pyplot()
    height, width = mask.shape
    fig, ax = plt.subplots(figsize=(8, 8 * height / max(width, 1)), dpi=120)
    try:
        ax.imshow(mask > 0, cmap="gray", vmin=0, vmax=2, interpolation="nearest")
        positions = {n: d["pos"] for n, d in graph.nodes(data=True)}
        for u, v in graph.edges():
            (y0, x0), (y1, x1) = positions[u], positions[v]
            ax.plot([x0, x1], [y0, y1], color="tab:cyan", linewidth=0.8)
        if positions:
            nodes = list(positions)
            ys, xs = np.array([positions[n] for n in nodes]).T
            degrees = np.array([min(graph.degree(n), 6) for n in nodes])
            scatter = ax.scatter(xs, ys, c=degrees, cmap="plasma", vmin=1, vmax=6, s=12, zorder=3)
            fig.colorbar(scatter, ax=ax, fraction=0.035, label="node degree (6: 6 or more)")
        ax.set_title(title)
        ax.set_axis_off()
        _save(fig, path, replace)
    finally:
        plt.close(fig)


def time_series_figure(
    path: Path,
    rows: Sequence[dict[str, Any]],
    units: dict[str, str],
    times: Sequence[float] | None = None,
    time_unit: str | None = None,
    title: str = "",
    replace: bool = True,
) -> None:
    """PNG of the main metrics over time, one panel each: against ``times`` (in
    ``time_unit``) where the frame interval is known, else against the frame number."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(len(TIME_SERIES), 1, figsize=(8, 2 * len(TIME_SERIES)), sharex=True, dpi=120)
    try:
        x = [row["frame"] for row in rows] if times is None else list(times)
        for ax, name in zip(axes, TIME_SERIES, strict=True):
            ax.plot(x, [row[name] for row in rows], marker=".", linewidth=1)
            ax.set_ylabel(f"{name}\n[{units[name]}]" if name in units else name, fontsize=8)
        if times is None:
            axes[-1].set_xlabel("frame")
            axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            axes[-1].set_xlabel(f"time ({time_unit})" if time_unit else "time")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        _save(fig, path, replace)
    finally:
        plt.close(fig)


def _save(fig: Any, path: Path, replace: bool = True) -> None:
    """Write ``fig`` as PNG, atomically; with ``replace`` False, never over a file
    another run wrote meanwhile."""
    with atomic_output(path, replace) as tmp:
        fig.savefig(tmp, format="png")
