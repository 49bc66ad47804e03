"""Timeline image of one video: captioned events as bars on a time axis (seconds).

Layout, top to bottom: title, an optional strip of video-frame thumbnails placed at their
times, the predicted events, the reference events (one block per reference set), and the
time axis. Every event is a bar over its interval with its caption wrapped underneath; the
caption's real rendered width is measured, and events whose bar *or caption* would overlap go
to different lanes (`events.assign_lanes`), so no two captions ever cover each other.

Everything is laid out in pixels on one axes spanning the figure (y grows downwards), so the
PNG has exactly the size returned.
"""
from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines or in CI
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from captioner_jax.visualization.events import (  # noqa: E402
    Event,
    assign_lanes,
    format_time,
    parse_events,
    span_of,
)
from data_prep.infra.paths import local_output  # noqa: E402

DPI = 100
_LEFT, _RIGHT = 120, 24  # px: margin for section labels / right margin
_CAPTION_PT, _LABEL_PT, _TITLE_PT, _TICK_PT = 9.0, 10.0, 13.0, 9.0
_BAR_H, _TEXT_PAD, _LANE_PAD, _SECTION_PAD = 9, 3, 9, 14  # px
_TEXT_GAP = 10  # px: minimum free space between two captions in one lane
_AXIS_H = 46  # px: ticks + "time (s)"
_PRED_COLOURS = ("#1f77b4", "#ff7f0e", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf")
_REF_COLOURS = ("#2ca02c", "#7f7f7f", "#bcbd22", "#006d5b", "#5a8f29")


@dataclasses.dataclass
class PlacedEvent:
    """One event laid out, in pixels from the figure's left edge: its bar spans
    [bar_x0, bar_x1], its caption (`lines`, already wrapped) [text_x0, text_x0 + text_w]."""

    event: Event
    bar_x0: float
    bar_x1: float
    text_x0: float
    text_w: float
    lines: list[str]
    lane: int = 0

    @property
    def extent(self) -> tuple[float, float]:
        """Horizontal pixels the event occupies in its lane (bar and caption together)."""
        return min(self.bar_x0, self.text_x0), max(self.bar_x1, self.text_x0 + self.text_w)


@dataclasses.dataclass
class _Section:
    label: str
    colours: Sequence[str]
    placed: list[PlacedEvent]
    lane_heights: list[float]

    @property
    def height(self) -> float:
        return sum(self.lane_heights)


def _wrap_caption(event: Event, number: int, width_chars: int) -> list[str]:
    head = f"{number}. [{event.start:.1f}–{event.end:.1f}s] "
    return textwrap.wrap(head + (event.sentence or "(empty caption)"), width=width_chars,
                         break_long_words=True) or [head]


def layout_section(events: list[Event], label: str, colours: Sequence[str], x_of, plot_x0,
                   plot_x1, measure, line_h: float, wrap_chars: int) -> _Section:
    """Places bars and wrapped captions, then assigns lanes on their joint pixel extents.

    Args:
      x_of: time (s) -> x pixel. plot_x0, plot_x1: pixel range of the time axis.
      measure: text -> (width_px, height_px) as the renderer will draw it.
      line_h: caption line height (px). wrap_chars: wrap width for captions of short events.
    Returns:
      The section: every event's `PlacedEvent` (lane set) and each lane's height (px).
    """
    char_px = max(measure("abcdefghijklmnopqrstuvwxyz")[0] / 26.0, 1.0)
    placed = []
    for number, event in enumerate(events, 1):
        bar_x0, bar_x1 = x_of(event.start), x_of(event.end)
        bar_x1 = max(bar_x1, bar_x0 + 3)  # a zero-length event stays visible
        # Wrap to the bar's width when the bar is wide, else to `wrap_chars`.
        width = max(wrap_chars, int((bar_x1 - bar_x0) / char_px))
        lines = _wrap_caption(event, number, width)
        text_w = max(measure(line)[0] for line in lines)
        # Left-aligned under the bar; pulled left when it would run off the right edge.
        text_x0 = max(plot_x0, min(bar_x0, plot_x1 - text_w))
        placed.append(PlacedEvent(event, bar_x0, bar_x1, text_x0, text_w, lines))
    lanes = assign_lanes([p.extent for p in placed], gap=_TEXT_GAP)
    n_lanes = max(lanes, default=-1) + 1
    lines_per_lane = [1] * max(n_lanes, 1)
    for p, lane in zip(placed, lanes):
        p.lane = lane
        lines_per_lane[lane] = max(lines_per_lane[lane], len(p.lines))
    lane_heights = [_BAR_H + _TEXT_PAD + n * line_h + _LANE_PAD for n in lines_per_lane]
    return _Section(label, colours, placed, lane_heights)


def _as_reference_sets(references) -> list[tuple[str, list]]:
    if references is None:
        return []
    if isinstance(references, Mapping):
        return [(str(name), list(evs or [])) for name, evs in references.items()]
    return [("Reference", list(references))]


def render_timeline(video_id: str, duration_s: float | None, predicted: list[dict],
                    references: list[dict] | Mapping[str, list[dict]] | None, out_png: str,
                    title: str | None = None, frames: np.ndarray | None = None,
                    frame_times: Sequence[float] | None = None, width_px: int = 1200,
                    max_events: int = 40, wrap_chars: int = 44) -> tuple[int, int]:
    """Renders predicted (and reference) events of one video to a PNG.

    Args:
      video_id: names the video in the title and in warnings about bad events.
      duration_s: video length in seconds; None/<=0 -> the latest event end. Events that run
        past it are drawn to their end and a dashed line marks the video's end.
      predicted: `[{"timestamp": [start_s, end_s], "sentence": str}, ...]` (submission
        format); the first `max_events` in list order are drawn (submission order is the
        model's ranking), the label says how many were left out.
      references: None, one such list, or `{name: list}` for several annotation sets (e.g.
        val_1 and val_2), each drawn as its own block.
      out_png: output path, written atomically.
      title: defaults to `video_id (duration)`.
      frames: optional thumbnails, uint8 `[K, H, W, 3]`, shown along the top centred at
        `frame_times` (seconds, length K).
      width_px: image width in pixels; the height follows from the number of lanes.
      max_events: per block, at most this many events are drawn.
      wrap_chars: captions of short events wrap at this many characters.
    Returns:
      `(width_px, height_px)` of the written PNG.
    """
    pred_events = parse_events(predicted, f"{video_id}: predicted")
    ref_sets = [(name, parse_events(evs, f"{video_id}: {name}"))
                for name, evs in _as_reference_sets(references)]
    all_events = pred_events + [e for _, evs in ref_sets for e in evs]
    duration_ok = duration_s is not None and math.isfinite(duration_s) and duration_s > 0
    axis_end = max(duration_s if duration_ok else 0.0, span_of(all_events))
    axis_end = axis_end if axis_end > 0 else 1.0
    if frames is not None:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"{video_id}: frames must be uint8 [K, H, W, 3], got "
                             f"{frames.dtype} {frames.shape}")
        if frame_times is None or len(frame_times) != len(frames):
            raise ValueError(f"{video_id}: frame_times must give one time per frame")

    fig = Figure(figsize=(width_px / DPI, 1.0), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    caption_font = FontProperties(size=_CAPTION_PT)

    def measure(text: str) -> tuple[float, float]:
        w, h, _ = renderer.get_text_width_height_descent(text, caption_font, ismath=False)
        return w, h

    line_h = _CAPTION_PT * DPI / 72.0 * 1.3
    plot_x0, plot_x1 = _LEFT, width_px - _RIGHT

    def x_of(t: float) -> float:
        return plot_x0 + (plot_x1 - plot_x0) * min(max(t, 0.0), axis_end) / axis_end

    def limited(events: list[Event], name: str) -> tuple[list[Event], str]:
        # The label lives in the left margin: wrap long set names to fit it.
        name = textwrap.fill(name, 14, break_long_words=True)
        if len(events) > max_events:
            return events[:max_events], f"{name}\n({max_events} of {len(events)})"
        return events, f"{name}\n({len(events)})"

    blocks = [limited(pred_events, "Predicted") + (_PRED_COLOURS,)]
    blocks += [limited(evs, name) + (_REF_COLOURS,) for name, evs in ref_sets]
    sections = [layout_section(evs, label, colours, x_of, plot_x0, plot_x1, measure, line_h,
                                wrap_chars) for evs, label, colours in blocks]

    # Vertical budget (px).
    title_h = 34
    thumb_h = thumb_w = 0.0
    if frames is not None and len(frames):
        aspect = frames.shape[2] / frames.shape[1]
        thumb_h = 64.0
        thumb_w = thumb_h * aspect
        max_w = (plot_x1 - plot_x0) / len(frames) - 2
        if thumb_w > max_w:
            thumb_w, thumb_h = max_w, max_w / aspect
    strip_h = thumb_h + 12 if thumb_h else 0.0
    height = title_h + strip_h + sum(s.height + _SECTION_PAD for s in sections) + _AXIS_H
    height_px = int(math.ceil(height))
    fig.set_size_inches(width_px / DPI, height_px / DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()

    # Title.
    if title is None:
        length = format_time(duration_s) if duration_ok else "duration unknown"
        title = f"{video_id}  ({length})"
    ax.text(plot_x0, title_h / 2, title, fontsize=_TITLE_PT, fontweight="bold", va="center",
            ha="left", parse_math=False)
    y = title_h

    # Thumbnail strip: each frame centred on its time, kept inside the plot area.
    if strip_h:
        for frame, t in zip(frames, frame_times):
            cx = min(max(x_of(float(t)), plot_x0 + thumb_w / 2), plot_x1 - thumb_w / 2)
            ax.imshow(frame, extent=(cx - thumb_w / 2, cx + thumb_w / 2, y + thumb_h, y),
                      interpolation="bilinear", aspect="auto", zorder=2)
            ax.plot([x_of(float(t))] * 2, [y + thumb_h, y + thumb_h + 6], color="#333333",
                    lw=1.0, zorder=2)
        y += strip_h
    content_top = y

    for k, section in enumerate(sections):
        top = y
        ax.add_patch(Rectangle((0, top - _SECTION_PAD / 2), width_px,
                               section.height + _SECTION_PAD,
                               facecolor="#f4f6f8" if k % 2 == 0 else "#ffffff",
                               edgecolor="none", zorder=0))
        ax.text(12, top + 4, section.label, fontsize=_LABEL_PT, fontweight="bold", va="top",
                ha="left", linespacing=1.4, parse_math=False)
        lane_tops = np.concatenate([[0.0], np.cumsum(section.lane_heights)]) + top
        if not section.placed:
            ax.text(plot_x0, top + 4, "(no events)", fontsize=_CAPTION_PT, color="#777777",
                    va="top", parse_math=False)
        for p in section.placed:
            colour = section.colours[(p.event.index) % len(section.colours)]
            bar_top = lane_tops[p.lane]
            ax.add_patch(Rectangle((p.bar_x0, bar_top), p.bar_x1 - p.bar_x0, _BAR_H,
                                   facecolor=colour, edgecolor="none", alpha=0.85, zorder=3))
            ax.text(p.text_x0, bar_top + _BAR_H + _TEXT_PAD, "\n".join(p.lines),
                    fontproperties=caption_font, color="#111111", va="top", ha="left",
                    linespacing=1.3, zorder=4, parse_math=False)
        y += section.height + _SECTION_PAD

    # Time axis: grid lines through all sections, ticks and labels in seconds.
    ticks = MaxNLocator(nbins=12, steps=[1, 2, 2.5, 5, 10]).tick_values(0, axis_end)
    ticks = [t for t in ticks if 0 <= t <= axis_end + 1e-9]
    for t in ticks:
        x = x_of(t)
        ax.plot([x, x], [content_top, y], color="#d0d4d8", lw=0.7, zorder=1)
        ax.plot([x, x], [y, y + 5], color="#333333", lw=1.0, zorder=1)
        ax.text(x, y + 7, f"{t:g}", fontsize=_TICK_PT, ha="center", va="top")
    ax.plot([plot_x0, plot_x1], [y, y], color="#333333", lw=1.0, zorder=1)
    ax.text((plot_x0 + plot_x1) / 2, y + 24, "time (s)", fontsize=_TICK_PT, ha="center",
            va="top")
    if duration_ok and duration_s < axis_end:
        x = x_of(duration_s)
        ax.plot([x, x], [content_top, y], color="#c0392b", lw=1.0, ls="--", zorder=5)
        ax.text(x, y - 2, "video end ", color="#c0392b", fontsize=8, va="bottom", ha="right",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0}, zorder=6)

    ax.set_xlim(0, width_px)
    ax.set_ylim(height_px, 0)
    with local_output(out_png) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", facecolor="white")
    return width_px, height_px
