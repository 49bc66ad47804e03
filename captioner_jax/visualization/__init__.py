"""Results a person would rather look at than read.

* `timeline.render_timeline` — events as bars on a time axis (PNG), predicted vs. reference.
* `html_page.write_caption_page` — a self-contained HTML page: video + captions synced to playback.
* `curves.plot_training_curves` — training/eval curves from JSON-lines metric files (PNG).
* `tables.format_metrics_table` / `format_metrics_markdown` / `format_evaluation_table` —
  per-tIoU metric tables (the last straight from `evaluate_submission`'s result).
* `python -m captioner_jax.visualization` — timelines + HTML pages for a few submission videos.

Everything renders with matplotlib's Agg backend (no display needed) and writes atomically.
"""
from captioner_jax.visualization.curves import plot_training_curves
from captioner_jax.visualization.events import Event, assign_lanes, parse_events
from captioner_jax.visualization.html_page import write_caption_page
from captioner_jax.visualization.tables import (
    format_evaluation_table,
    format_metrics_markdown,
    format_metrics_table,
)
from captioner_jax.visualization.timeline import render_timeline

__all__ = [
    "Event",
    "assign_lanes",
    "format_evaluation_table",
    "format_metrics_markdown",
    "format_metrics_table",
    "parse_events",
    "plot_training_curves",
    "render_timeline",
    "write_caption_page",
]
