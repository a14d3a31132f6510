"""One symbol's PNG chart: price with its fills marked, the band level under it, and the
shares held beneath. One figure is built per run and reused for every symbol (see
:class:`SymbolFigure`)."""

from __future__ import annotations

import contextlib
import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from momentumbot.reporting import plot_kit as kit
from momentumbot.reporting.chart_data import SymbolChart, SymbolLines, symbol_lines
from momentumbot.reporting.run_data import MinuteAxis

_FILL_STYLES: dict[str, tuple[str, str, float, str]] = {
    # kind -> (marker, colour, size, legend)
    "entry": ("^", kit.GAIN_COLOUR, 70.0, "Entry (buy from flat)"),
    "add": ("^", kit.GAIN_COLOUR, 22.0, "Add (buy)"),
    "trim": ("v", kit.LOSS_COLOUR, 22.0, "Trim (sell)"),
    "exit": ("v", kit.LOSS_COLOUR, 70.0, "Exit (sell to flat)"),
}


class SymbolFigure:
    """One figure reused for every symbol of a run: the axes, time ticks and legend are
    built once and each symbol only swaps the data, which keeps a wide run's charts quick.
    """

    def __init__(self, axis: MinuteAxis, run_name: str) -> None:
        self.axis = axis
        self.run_name = run_name
        # PNG encoding releases the GIL: it runs on a thread while the next symbol draws
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-png")
        self._encoding: list[Future[Path]] = []
        fig = Figure(figsize=(kit.WIDTH_IN, 6.5), dpi=kit.DPI)
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        fig.subplots_adjust(left=0.075, right=0.985, top=0.875, bottom=0.1, hspace=0.07)
        self.fig, self.top, self.bottom = fig, top, bottom
        (self.price,) = top.plot([], [], color=kit.PRICE_COLOUR, linewidth=0.9)
        (self.level,) = top.plot(
            [], [], color=kit.BAND_COLOUR, linewidth=1.1, drawstyle="steps-post"
        )
        (self.exit_line,) = top.plot([], [], color=kit.BAND_COLOUR, linewidth=0.7, linestyle=":")
        self.marks = {
            kind: top.scatter(
                [],
                [],
                marker=marker,
                s=size,
                color=colour,
                edgecolors="white",
                linewidths=0.5,
                zorder=3,
            )
            for kind, (marker, colour, size, _legend) in _FILL_STYLES.items()
        }
        self.note = top.text(
            0.5, 0.5, "", transform=top.transAxes, ha="center", va="center",
            fontsize=12, color="#555555",
        )  # fmt: skip
        (self.shares,) = bottom.plot(
            [], [], color=kit.STRATEGY_COLOUR, linewidth=0.9, drawstyle="steps-post"
        )
        self.shares_fill: Any = None
        self.title = fig.text(0.075, 0.985, "", ha="left", va="top", fontsize=12)
        self.subtitle = fig.text(0.075, 0.945, "", ha="left", va="top", fontsize=9, color="#333333")
        handles = [
            Line2D([], [], color=kit.PRICE_COLOUR, linewidth=0.9, label="Close (minute bars)"),
            Line2D([], [], color=kit.BAND_COLOUR, linewidth=1.1, label="Band level (current rung)"),
            Line2D(
                [],
                [],
                color=kit.BAND_COLOUR,
                linewidth=0.7,
                linestyle=":",
                label="Exit line (rung - buffer)",
            ),
        ]
        for marker, colour, size, legend in _FILL_STYLES.values():
            handles.append(
                Line2D([], [], linestyle="none", marker=marker, color=colour,
                       markersize=math.sqrt(size), markeredgecolor="white", label=legend)
            )  # fmt: skip
        top.legend(
            handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=7,
            fontsize=8, frameon=False, borderaxespad=0.2, handlelength=1.6, columnspacing=1.0,
        )  # fmt: skip
        for ax, label in ((top, "Price (USD)"), (bottom, "Shares held")):
            # the axis titles are drawn once with the background, at a fixed place; an axis
            # placing its own title measures every tick label again for each symbol
            box = ax.get_position()
            fig.text(0.012, (box.y0 + box.y1) / 2, label, rotation=90, ha="left", va="center")
            ax.yaxis.set_label_coords(0.0, 0.5)
        kit.apply_time_axis(top, axis, label=False)
        kit.apply_time_axis(bottom, axis)
        # Draw what every symbol shares (x axis, legend, frames) once and keep the pixels;
        # each symbol then redraws only its own artists on a copy (blitting).
        for artist in self._own_artists():
            artist.set_animated(True)
        canvas = fig.canvas
        assert isinstance(canvas, FigureCanvasAgg)
        self.canvas = canvas
        canvas.draw()
        self.background = canvas.copy_from_bbox(fig.bbox)

    def _own_artists(self) -> list[Any]:
        return [
            self.top.yaxis,
            self.bottom.yaxis,
            *([self.shares_fill] if self.shares_fill is not None else []),
            self.shares,
            self.price,
            self.level,
            self.exit_line,
            *self.marks.values(),
            self.note,
            self.title,
            self.subtitle,
        ]

    def draw(self, chart: SymbolChart, path: Path) -> Path:
        """Price with entries and exits marked, the band level under it, and the position."""
        return self.render(symbol_lines(chart, self.axis, self.run_name), path)

    def render(self, lines: SymbolLines, path: Path) -> Path:
        """Draw ``lines`` over the shared background and write the PNG (on a thread)."""
        self.price.set_data(*lines.price)
        self.level.set_data(*lines.level)
        self.exit_line.set_data(*lines.exit_line)
        for kind, scatter in self.marks.items():
            scatter.set_offsets(lines.marks[kind])
        self.note.set_text(lines.note)
        if lines.price_range is not None:
            self.top.set_ylim(*lines.price_range)
        self.shares.set_data(*lines.shares)
        if self.shares_fill is not None:
            self.shares_fill.remove()
        self.shares_fill = self.bottom.fill_between(
            *lines.shares, 0, step="post", color=kit.STRATEGY_COLOUR, alpha=0.35, linewidth=0
        )
        self.shares_fill.set_animated(True)
        self.bottom.set_ylim(0, lines.shares_top)
        self.title.set_text(lines.title)
        self.subtitle.set_text(lines.subtitle)
        self.canvas.restore_region(self.background)
        for artist in self._own_artists():
            self.fig.draw_artist(artist)
        size = self.canvas.get_width_height(physical=True)
        pixels = bytes(self.canvas.buffer_rgba())
        self._encoding.append(self._encoder.submit(kit.encode_png, pixels, size, path))
        return path

    def close(self) -> None:
        """Wait for every PNG to be written (re-raising any error) and stop the encoder."""
        try:
            for future in self._encoding:
                future.result()
        finally:
            self._encoding.clear()
            self._encoder.shutdown(wait=True)


class LazySymbolFigure:
    """The one SymbolFigure of a run's symbol charts, made at the first chart (none when no
    symbol is drawn) and closed once: `close()` waits for every PNG and re-raises an error;
    `close(quietly=True)`, for a path already failing, never raises."""

    def __init__(self, axis: MinuteAxis, run_name: str) -> None:
        self.axis, self.run_name = axis, run_name
        self._figure: SymbolFigure | None = None

    def figure(self) -> SymbolFigure:
        if self._figure is None:
            self._figure = SymbolFigure(self.axis, self.run_name)
        return self._figure

    def close(self, *, quietly: bool = False) -> None:
        figure, self._figure = self._figure, None
        if figure is None:
            return
        if not quietly:
            figure.close()
            return
        with contextlib.suppress(Exception):
            figure.close()
