"""A self-contained HTML page showing a video with its dense captions synced to playback.

The page has no external resources (inline CSS and JS; the timeline PNG, if given, embedded
as a data URI); only the video itself is referenced, by the relative path or file name the
caller gives, so the page works from a local folder, with no network.

What it does in a browser: a `timeupdate` listener on the <video> highlights every event
whose interval [start, end] contains the current time (in the event lists and on the
clickable event tracks) and writes the active predicted captions under the video; clicking
(or pressing Enter on) an event seeks the video to its start. Without a video file a time
slider drives the same display.

Videos browsers cannot play (AVI/MJPEG, HEVC, .mkv; see `playable.browser_playable`): the
page plays the browser copy the caller made (`playable_copy`, same timestamps, so seeks land
on the same instants) and says so, or, without a copy, shows at once the message with an
ffmpeg command; either way the frame strip (`frame_strip_png`) is shown under the player.

All captions are user data: they reach the page only HTML-escaped, or inside the JSON block
with `<`, `>` and `&` written as \\u escapes (so no `</script>` can end it early), and the
script inserts them with `textContent`, never as HTML.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import urllib.parse
from collections.abc import Mapping

from captioner_jax.visualization.events import Event, assign_lanes, parse_events, span_of
from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_text

_TRACK_LANE_PX = 16

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 background:#f4f6f8;color:#1b1f23}
main{max-width:1100px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:1.35em;margin:0.4em 0}h2{font-size:1.1em;margin:1.4em 0 0.4em}
.player{background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
video{width:100%;max-height:62vh;background:#000;border-radius:4px}
.novideo{padding:28px;text-align:center;background:#e9ecef;color:#555;border-radius:4px}
.now{min-height:3.2em;margin:10px 0 4px;padding:8px 12px;border-left:4px solid #1f77b4;
 background:#eef5fb;font-size:1.15em}
.now .idle{color:#888;font-style:italic}.now-ref{color:#2d6a2d;font-size:.95em;min-height:1.3em}
.controls{display:flex;gap:12px;align-items:center;margin-top:6px}
.controls input{flex:1}.clock{font-variant-numeric:tabular-nums;color:#444;min-width:9em}
.tracklabel{font-size:.8em;color:#555;margin-top:8px}
.track{position:relative;background:#eef0f2;border-radius:3px;margin-top:2px}
.block{position:absolute;height:12px;border-radius:2px;background:#1f77b4;opacity:.55;
 cursor:pointer;min-width:3px}
.block.ref{background:#2ca02c}.block.active{opacity:1;outline:2px solid #111}
.playhead{position:absolute;top:0;bottom:0;width:2px;background:#d62728;pointer-events:none}
ol.events{background:#fff;border-radius:8px;padding:8px 8px 8px 2.6em;margin:0;
 box-shadow:0 1px 3px rgba(0,0,0,.12)}
ol.events li{padding:5px 8px;border-radius:4px;cursor:pointer}
ol.events li:hover{background:#f0f3f6}
ol.events li.active{background:#fff3c4;font-weight:600}
.time{color:#666;font-variant-numeric:tabular-nums;margin-right:.6em;font-size:.9em}
img.timeline,img.strip{max-width:100%;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
img.strip{display:block;margin-top:10px}
.notice{margin:8px 0 0;padding:6px 10px;background:#fff8e1;border-radius:4px;font-size:.9em}
"""

# Uses only getElementById / querySelectorAll / getAttribute / classList / textContent /
# addEventListener / appendChild / createElement, so it runs in any browser since ~2012.
_SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dvc-events").textContent);
  var video = document.getElementById("dvc-video");
  var scrub = document.getElementById("dvc-scrub");
  var nowBox = document.getElementById("dvc-now");
  var nowRef = document.getElementById("dvc-now-ref");
  var clock = document.getElementById("dvc-clock");
  var playheads = document.querySelectorAll(".playhead");
  var items = document.querySelectorAll("[data-start]");
  var duration = data.duration;

  function contains(start, end, t) { return start <= t && t <= end; }

  function activeEvents(events, t) {
    var out = [];
    for (var i = 0; i < events.length; i++) {
      if (contains(events[i].start, events[i].end, t)) { out.push(events[i]); }
    }
    return out;
  }

  function setLines(box, events, idleText, prefix) {
    while (box.firstChild) { box.removeChild(box.firstChild); }
    if (!events.length) {
      var idle = document.createElement("span");
      idle.className = "idle";
      idle.textContent = idleText;
      box.appendChild(idle);
      return;
    }
    for (var i = 0; i < events.length; i++) {
      var line = document.createElement("div");
      line.textContent = prefix + (events[i].index + 1) + ". " + events[i].sentence;
      box.appendChild(line);
    }
  }

  function update(t) {
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var on = contains(parseFloat(el.getAttribute("data-start")),
                        parseFloat(el.getAttribute("data-end")), t);
      el.classList.toggle("active", on);
    }
    setLines(nowBox, activeEvents(data.predicted, t), "(no predicted caption at this time)", "");
    var refs = [];
    for (var name in data.references) {
      var act = activeEvents(data.references[name], t);
      for (var j = 0; j < act.length; j++) { refs.push(act[j]); }
    }
    if (nowRef) { setLines(nowRef, refs, "", "reference "); }
    var pct = duration > 0 ? Math.min(100, Math.max(0, 100 * t / duration)) : 0;
    for (var k = 0; k < playheads.length; k++) { playheads[k].style.left = pct + "%"; }
    if (clock) { clock.textContent = t.toFixed(1) + " / " + duration.toFixed(1) + " s"; }
    if (scrub && document.activeElement !== scrub) { scrub.value = String(t); }
  }

  // Browsers snap a seek to a frame, which can land up to a frame before an event's start
  // and would show the previous caption: a video time within SNAP_S of the last seek target
  // counts as the target until playback moves past it.
  var SNAP_S = 0.05;
  var seekTargetS = null;

  function videoTime() {
    var t = video.currentTime;
    if (seekTargetS !== null && Math.abs(t - seekTargetS) < SNAP_S) { return seekTargetS; }
    seekTargetS = null;
    return t;
  }

  function seek(t) {
    if (video) {
      seekTargetS = t;
      video.currentTime = t;
      var p = video.play();
      if (p && p.catch) { p.catch(function () {}); }
    } else {
      if (scrub) { scrub.value = String(t); }
    }
    update(t);
  }

  for (var i = 0; i < items.length; i++) {
    (function (el) {
      var start = parseFloat(el.getAttribute("data-start"));
      el.addEventListener("click", function () { seek(start); });
      el.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); seek(start); }
      });
    })(items[i]);
  }
  if (video) {
    var showError = function () {
      var box = document.getElementById("dvc-video-error");
      if (box) { box.hidden = false; }
    };
    video.addEventListener("error", showError);
    // With <source> children the error fires on the last source, not on the video.
    var sources = video.querySelectorAll ? video.querySelectorAll("source") : [];
    if (sources.length) { sources[sources.length - 1].addEventListener("error", showError); }
    video.addEventListener("timeupdate", function () { update(videoTime()); });
    video.addEventListener("seeked", function () { update(videoTime()); });
  }
  if (scrub) {
    scrub.addEventListener("input", function () {
      var t = parseFloat(scrub.value);
      if (video) { video.currentTime = t; }
      update(t);
    });
  }
  window.dvcCaptionSync = {update: update, seek: seek, activeEvents: activeEvents};
  update(0);
})();
"""


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _json_for_script(obj) -> str:
    """JSON that can sit inside <script>: `<`, `>`, `&` become \\u escapes (still valid JSON)."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _video_url(video_src: str) -> str:
    """Percent-encodes a file path for `src` ("my clip#1.mp4" would otherwise lose "#1...")."""
    if "://" in video_src or video_src.startswith("data:"):
        return video_src
    return urllib.parse.quote(video_src.replace(os.sep, "/"), safe="/")


def _exact(t: float) -> str:
    """A time attribute that parseFloat reads back as the same double (rounding to 3
    decimals put an event's seek target before its start: clicking it showed no caption)."""
    return repr(float(t))


def _event_list(events: list[Event], kind: str) -> str:
    if not events:
        return '<p class="idle">(no events)</p>'
    rows = []
    for e in events:
        rows.append(
            f'<li class="event {kind}" tabindex="0" value="{e.index + 1}" '
            f'data-start="{_exact(e.start)}" data-end="{_exact(e.end)}">'
            f'<span class="time">{e.start:.1f}–{e.end:.1f} s</span>'
            f'<span class="sentence">{_esc(e.sentence)}</span></li>')
    return f'<ol class="events {kind}">\n' + "\n".join(rows) + "\n</ol>"


def _track(events: list[Event], kind: str, duration: float) -> str:
    """Clickable bars over time; overlapping events get their own lane."""
    lanes = assign_lanes([(e.start, e.end) for e in events])
    n_lanes = max(lanes, default=0) + 1
    blocks = []
    for e, lane in zip(events, lanes):
        left = 100.0 * min(e.start, duration) / duration
        width = 100.0 * (min(e.end, duration) - min(e.start, duration)) / duration
        blocks.append(
            f'<div class="block {kind}" data-start="{_exact(e.start)}" '
            f'data-end="{_exact(e.end)}" '
            f'title="{_esc(f"{e.index + 1}. {e.sentence}")}" '
            f'style="left:{left:.3f}%;width:{width:.3f}%;top:{2 + lane * _TRACK_LANE_PX}px">'
            f'</div>')
    height = 4 + n_lanes * _TRACK_LANE_PX
    return (f'<div class="track" style="height:{height}px">' + "".join(blocks)
            + '<div class="playhead"></div></div>')


def write_caption_page(out_html: str, video_src: str | None, video_id: str,
                       duration_s: float | None, predicted: list[dict],
                       references: list[dict] | Mapping[str, list[dict]] | None = None,
                       timeline_png: str | None = None, title: str | None = None,
                       max_events: int = 100, video_fallback: str | None = None,
                       original_playable: bool = True, playable_copy: str | None = None,
                       frame_strip_png: str | None = None,
                       video_kind: str | None = None) -> str:
    """Writes the page (atomically) and returns its path.

    Args:
      out_html: output file.
      video_src: the video as the page should load it — a path relative to the page's folder
        or a file name (percent-encoded here); None: no player, a time slider instead.
      video_id: shown as the heading (escaped).
      duration_s: video length in seconds (None/<=0: the latest event end).
      predicted: `[{"timestamp": [start_s, end_s], "sentence": str}, ...]`.
      references: None, one such list, or `{name: list}` for several annotation sets.
      timeline_png: a timeline image to embed (as a data URI, so the page stays one file).
      title: the <title>; defaults to "<video_id> — dense captions".
      max_events: per list, only the first this many events are shown (a learned-proposal
        submission may hold 1000 per video; file order is the model's ranking).
      video_fallback: a second source the browser tries when `video_src` does not load (an
        absolute `file://` URI: the page still plays after its folder was moved).
      original_playable: False when browsers cannot play `video_src` (its codec/container).
      playable_copy: a browser-playable copy of the video (path relative to the page's
        folder, e.g. "<id>_browser.mp4"; same timestamps): the player plays it instead.
      frame_strip_png: a PNG of frames (`playable.write_frame_strip`), embedded under the
        player.
      video_kind: "container/codec" of the original, named in the notices.
    """
    counts: dict[str, int] = {}

    def first(events: list[Event], name: str) -> list[Event]:
        counts[name] = len(events)
        return events[:max_events]

    pred = first(parse_events(predicted, f"{video_id}: predicted"), "Predicted events")
    if references is None:
        ref_sets = {}
    elif isinstance(references, Mapping):
        ref_sets = {str(k): first(parse_events(v, f"{video_id}: {k}"), str(k))
                    for k, v in references.items()}
    else:
        ref_sets = {"Reference": first(parse_events(references, f"{video_id}: references"),
                                       "Reference")}

    def heading(name: str, shown: int) -> str:
        total = counts[name]
        return f"<h2>{_esc(name)} ({shown if shown == total else f'first {shown} of {total}'})</h2>"

    all_events = pred + [e for evs in ref_sets.values() for e in evs]
    ok = duration_s is not None and math.isfinite(duration_s) and duration_s > 0
    duration = max(duration_s if ok else 0.0, span_of(all_events)) or 1.0

    payload = {
        "video_id": video_id,
        "duration": duration,
        "predicted": [e.to_json() for e in pred],
        "references": {k: [e.to_json() for e in v] for k, v in ref_sets.items()},
    }
    name = _esc(os.path.basename(str(video_src))) if video_src else ""
    kind = f" ({_esc(video_kind)})" if video_kind else ""
    original_link = (f'<a href="{_esc(_video_url(video_src))}">{name}</a>' if video_src else "")
    if video_src and playable_copy:
        player = (f'<video id="dvc-video" controls preload="metadata">'
                  f'<source src="{_esc(_video_url(playable_copy))}" type="video/mp4">'
                  f'Your browser cannot play this video: {original_link}</video>'
                  f'<p id="dvc-copy-note" class="notice">Playing a browser copy (H.264, no '
                  f'sound, same timestamps) of {original_link}{kind}, which browsers cannot '
                  f'play.</p>')
    elif video_src and video_fallback:
        # <source> children are tried in order: the relative path, then the absolute one.
        player = (f'<video id="dvc-video" controls preload="metadata">'
                  f'<source src="{_esc(_video_url(video_src))}">'
                  f'<source src="{_esc(_video_url(video_fallback))}">'
                  f'Your browser cannot play this video: {original_link}</video>')
    elif video_src:
        player = (f'<video id="dvc-video" controls preload="metadata" '
                  f'src="{_esc(_video_url(video_src))}">Your browser cannot play this video: '
                  f'{original_link}</video>')
    else:
        player = '<div class="novideo">No video file for this page: use the slider.</div>'
    if video_src:
        # Shown by the script when the browser cannot decode the file (AVI/MJPEG, HEVC, ...),
        # and from the start when the caller knows it cannot and made no copy.
        hidden = "" if not original_playable and not playable_copy else " hidden"
        frames = ("The frame strip below shows its frames" if frame_strip_png
                  else "The timeline below shows its frames")
        why = kind or (" (its codec or container, e.g. AVI/MJPEG or HEVC, is not supported "
                       "here)")
        player += (
            f'<div id="dvc-video-error" class="novideo"{hidden}>This browser cannot play '
            f'{name}{why}. {frames} and the event list still works. A playable '
            'copy: <code>ffmpeg -i '
            f'&quot;{name}&quot; -c:v libx264 -pix_fmt yuv420p -c:a aac copy.mp4</code></div>')
    strip = ""
    if frame_strip_png is not None:
        if not paths.is_file(frame_strip_png):
            raise FileNotFoundError(f"{video_id}: frame strip not found: {frame_strip_png}")
        encoded = base64.b64encode(paths.read_bytes(frame_strip_png)).decode("ascii")
        strip = (f'<img id="dvc-strip" class="strip" alt="frames of {_esc(video_id)}" '
                 f'src="data:image/png;base64,{encoded}">')
    tracks = ['<div class="tracklabel">Predicted</div>' + _track(pred, "pred", duration)]
    tracks += [f'<div class="tracklabel">{_esc(name)}</div>' + _track(evs, "ref", duration)
               for name, evs in ref_sets.items()]
    lists = [heading("Predicted events", len(pred)) + _event_list(pred, "pred")]
    lists += [heading(name, len(evs)) + _event_list(evs, "ref") for name, evs in ref_sets.items()]
    image = ""
    if timeline_png is not None:
        if not paths.is_file(timeline_png):
            raise FileNotFoundError(f"{video_id}: timeline image not found: {timeline_png}")
        encoded = base64.b64encode(paths.read_bytes(timeline_png)).decode("ascii")
        image = (f'<h2>Timeline</h2><img class="timeline" alt="timeline of {_esc(video_id)}" '
                 f'src="data:image/png;base64,{encoded}">')
    page_title = title if title is not None else f"{video_id} — dense captions"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{_esc(page_title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{_esc(video_id)}</h1>
<div class="player">
{player}
<div id="dvc-now" class="now" aria-live="polite"></div>
<div id="dvc-now-ref" class="now-ref"></div>
<div class="controls">
<input id="dvc-scrub" type="range" min="0" max="{duration:.3f}" step="0.1" value="0"
 aria-label="time">
<span id="dvc-clock" class="clock"></span>
</div>
{"".join(tracks)}
{strip}
</div>
{"".join(lists)}
{image}
</main>
<script type="application/json" id="dvc-events">{_json_for_script(payload)}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
    atomic_write_text(out_html, page)
    return out_html
