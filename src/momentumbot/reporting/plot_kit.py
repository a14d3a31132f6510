"""What every PNG chart shares: colours, figures laid out in inches, the time axis, the
dollar axis, and writing the canvas as a PNG.

Figures use the object API on an Agg canvas (no pyplot state). Their axes are placed at
fixed distances from the figure's edges, in inches, rather than by matplotlib's
constrained layout, which measures every tick label of every axis before drawing them
(a third of a chart's time).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from PIL import Image

from momentumbot.reporting.chart_data import TOP_ALLOCATION_SYMBOLS, time_ticks
from momentumbot.reporting.run_data import MinuteAxis

STRATEGY_COLOUR = "#1f5fa8"
BENCHMARK_COLOUR = "#8c8c8c"
GAIN_COLOUR = "#2a9d3a"
LOSS_COLOUR = "#d0342c"
BAND_COLOUR = "#e07b00"
PRICE_COLOUR = "#263238"
CASH_COLOUR = "#d9d9d9"
OTHER_COLOUR = "#6f6f6f"
MAJOR_GRID = "#e6e6e6"
MINOR_GRID = "#f2f2f2"

WIDTH_IN = 12.0
DPI = 100
# zlib level 1: a third of level 3's time for files a fifth larger (charts are flat colour)
PNG_COMPRESS_LEVEL = 1
# the height of a line of text at 10 points, in inches, with its spacing
LINE_IN = 0.2


def figure(height_in: float) -> Figure:
    """An empty figure of the report's width on its own Agg canvas."""
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def rows(
    fig: Figure,
    ratios: Sequence[float],
    *,
    left: float = 0.9,
    right: float = 0.15,
    top: float = 0.4,
    bottom: float = 0.6,
    gaps: Sequence[float] = (),
    sharex: bool = False,
) -> list[Axes]:
    """Axes stacked top to bottom with heights in ``ratios``, margins and the gaps between
    them in inches."""
    width_in, height_in = fig.get_size_inches()
    gap_list = list(gaps) or [0.12] * (len(ratios) - 1)
    free = max(height_in - top - bottom - sum(gap_list), 0.5)
    total = float(sum(ratios))
    axes: list[Axes] = []
    y_top = height_in - top
    for i, ratio in enumerate(ratios):
        h = free * ratio / total
        rect = (
            left / width_in,
            (y_top - h) / height_in,
            1 - (left + right) / width_in,
            h / height_in,
        )
        share = axes[0] if sharex and axes else None
        ax = fig.add_axes(rect, sharex=share)
        if share is not None:
            axes[-1].tick_params(labelbottom=False)
        axes.append(ax)
        y_top -= h + (gap_list[i] if i < len(gap_list) else 0.0)
    return axes


def title(fig: Figure, text: str) -> None:
    """The figure's title at its top left."""
    fig.text(0.01, 1 - 0.08 / fig.get_size_inches()[1], text, ha="left", va="top", fontsize=12)


def save(fig: Figure, path: Path) -> Path:
    """Draw the figure and write it as an RGB PNG."""
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    width, height = canvas.get_width_height(physical=True)
    return encode_png(canvas.buffer_rgba(), (width, height), path)


def encode_png(pixels: Any, size: tuple[int, int], path: Path) -> Path:
    """RGBA pixels as an RGB PNG at ``path`` (zlib releases the GIL while compressing),
    written whole or not at all: a file of this process's own moved into place, so that a
    reader, or a second process drawing the same chart (a chart worker's helper outliving
    its worker while this process redraws), never sees a file half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombuffer("RGBA", size, pixels, "raw", "RGBA", 0, 1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.convert("RGB").save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def usd_axis(ax: Axes, axis: str = "y") -> None:
    """Label an axis in short dollars ($12k, $1.25M)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _pos: short_usd(v)))


def short_usd(value: float) -> str:
    size = abs(value)
    if size == 0:
        return "$0"
    if size >= 1e6:
        text = f"${size / 1e6:,.2f}M"
    elif size >= 1e4:
        text = f"${size / 1e3:,.0f}k"
    elif size >= 100:
        text = f"${size:,.0f}"
    else:
        text = f"${size:,.2f}"
    return f"-{text}" if value < 0 else text


def empty_note(ax: Axes, text: str) -> None:
    ax.text(
        0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
        fontsize=13, color="#555555",
    )  # fmt: skip


def apply_time_axis(ax: Axes, axis: MinuteAxis, *, label: bool = True) -> None:
    """Date or hour labels on an axis of run minutes, a grid line at each label and a
    lighter one at each session (or month) start."""
    ticks = time_ticks(axis)
    ax.set_xticks(ticks.positions, ticks.labels)
    ax.grid(True, which="major", axis="both", color=MAJOR_GRID, linewidth=0.8)
    if ticks.minor:
        # one collection of lines, not a tick object (two lines and two texts) per start
        ax.vlines(
            ticks.minor, 0.0, 1.0, transform=ax.get_xaxis_transform(), colors=MINOR_GRID,
            linewidth=0.6, zorder=0.4,
        )  # fmt: skip
    ax.set_axisbelow(True)
    ax.set_xlim(-0.5, max(axis.n_minutes - 0.5, 0.5))
    if label:
        ax.set_xlabel(ticks.title)


def symbol_colours(n: int) -> list[str]:
    palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
        "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79",
    ]  # fmt: skip
    colours = [palette[i % len(palette)] for i in range(n)]
    if n > TOP_ALLOCATION_SYMBOLS:
        colours[-1] = OTHER_COLOUR
    return colours


def text_width_in(text: str, fontsize: float) -> float:
    """About how wide ``text`` is drawn in DejaVu Sans (for margins, without measuring)."""
    return 0.62 * fontsize / 72.0 * len(text)


def legend_rows(n_entries: int, ncols: int) -> int:
    return int(np.ceil(max(n_entries, 1) / ncols))
