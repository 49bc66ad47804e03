"""Caption page: structure, escaping, embedded timing data, and the sync script actually
syncing (run under Node.js with a minimal fake DOM when `node` is installed). The pages in a
real headless Chromium: tests/test_browser.py."""
import html.parser
import json
import shutil
import subprocess

import pytest

from captioner_jax.visualization.html_page import write_caption_page

EVIL = '<script>alert("x")</script> & "quoted" </li>'
PRED = [
    {"timestamp": [0.0, 10.0], "sentence": "A man opens the door."},
    {"timestamp": [5.0, 20.0], "sentence": EVIL},
    {"timestamp": [30.0, 40.0], "sentence": "Ünïcode café — done."},
    {"timestamp": [1.0], "sentence": "malformed, skipped"},
]
REFS = {"val_1": [{"timestamp": [2.0, 12.0], "sentence": "Someone enters </script>."}]}


class _Collector(html.parser.HTMLParser):
    """Elements with ids or data-start, script bodies, and the text of every element."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.by_id, self.timed, self.scripts, self.tags = {}, [], [], []
        self.text = []
        self._script_attrs = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.by_id[attrs["id"]] = dict(attrs, tag=tag)
        if "data-start" in attrs:
            self.timed.append(dict(attrs, tag=tag))
        if tag == "script":
            self._script_attrs = attrs

    def handle_data(self, data):
        if self._script_attrs is not None:
            self.scripts.append((self._script_attrs, data))
        else:
            self.text.append(data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._script_attrs = None


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    png = folder / "t.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    out = folder / "v.html"
    write_caption_page(str(out), "videos/my clip#1.mp4", "v_<b>id</b>", 42.0, PRED, REFS,
                       timeline_png=str(png))
    text = out.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    parser.close()
    return text, parser


def test_page_structure_and_escaping(page):
    text, parsed = page
    video = parsed.by_id["dvc-video"]
    assert video["tag"] == "video" and "controls" in video
    assert video["src"] == "videos/my%20clip%231.mp4"  # percent-encoded relative path
    # Exactly our two scripts: no caption managed to open a tag of its own.
    assert parsed.tags.count("script") == 2
    assert "b" not in parsed.tags
    visible = "".join(parsed.text)
    for sentence in ("A man opens the door.", EVIL, "Ünïcode café — done.",
                     "Someone enters </script>."):
        assert sentence in visible  # shown as text (escaped in the source)
    assert html.escape(EVIL, quote=True) in text
    assert "v_&lt;b&gt;id&lt;/b&gt;" in text
    assert "malformed, skipped" not in text
    assert "data:image/png;base64," in text
    assert "http://" not in text and "https://" not in text  # no network resources


def test_page_timing_json_and_script(page):
    _, parsed = page
    data_script = [body for attrs, body in parsed.scripts if attrs.get("id") == "dvc-events"]
    assert len(data_script) == 1 and "<" not in data_script[0]
    data = json.loads(data_script[0])
    assert data["duration"] == 42.0
    assert [(e["start"], e["end"], e["sentence"]) for e in data["predicted"]] == [
        (0.0, 10.0, "A man opens the door."), (5.0, 20.0, EVIL), (30.0, 40.0,
                                                                  "Ünïcode café — done.")]
    assert data["references"]["val_1"][0]["sentence"] == "Someone enters </script>."
    sync = [body for attrs, body in parsed.scripts if "id" not in attrs][0]
    assert 'addEventListener("timeupdate"' in sync and "currentTime" in sync
    # Every event appears as a list item and as a track block, with its interval.
    timed = {(t["tag"], float(t["data-start"]), float(t["data-end"])) for t in parsed.timed}
    for start, end in [(0, 10), (5, 20), (30, 40), (2, 12)]:
        assert ("li", start, end) in timed and ("div", start, end) in timed


_FAKE_DOM = r"""
const fs = require("fs"), vm = require("vm");
const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
class El {
  constructor(attrs) { this.attrs = attrs || {}; this.children = []; this.listeners = {};
    this.cls = new Set(); this.style = {}; this.own = ""; this.value = ""; }
  getAttribute(n) { return n in this.attrs ? this.attrs[n] : null; }
  get classList() { const s = this.cls; return {
    toggle: (c, on) => { if (on === undefined) on = !s.has(c); on ? s.add(c) : s.delete(c);
                         return on; },
    contains: c => s.has(c), add: c => s.add(c), remove: c => s.delete(c)}; }
  addEventListener(t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); }
  fire(t) { (this.listeners[t] || []).forEach(f => f({key: "Enter", preventDefault() {}})); }
  appendChild(c) { this.children.push(c); return c; }
  removeChild(c) { this.children.splice(this.children.indexOf(c), 1); }
  get firstChild() { return this.children[0] || null; }
  set textContent(v) { this.own = String(v); this.children = []; }
  get textContent() { return [this.own].concat(this.children.map(c => c.textContent))
                        .filter(x => x).join("\n"); }
}
const byId = {};
for (const id of spec.ids) byId[id] = new El({id});
byId["dvc-events"].own = spec.json;
const video = byId["dvc-video"];
let played = 0;
if (video) { video.currentTime = 0; video.play = () => { played++; return Promise.resolve(); }; }
const timed = spec.timed.map(a => new El(a));
const playheads = [new El({}), new El({})];
const document = {
  getElementById: id => byId[id] || null,
  querySelectorAll: sel => sel === "[data-start]" ? timed : sel === ".playhead" ? playheads : [],
  createElement: () => new El({}), activeElement: null};
const window = {};
vm.runInNewContext(spec.script, {document, window, JSON, Math, parseFloat, String});
const out = {states: [], clicks: []};
for (const t of spec.times) {
  video.currentTime = t; video.fire("timeupdate");
  out.states.push({t, now: byId["dvc-now"].textContent, ref: byId["dvc-now-ref"].textContent,
                   active: timed.map((e, i) => e.cls.has("active") ? i : -1).filter(i => i >= 0),
                   playhead: playheads[0].style.left,
                   clock: byId["dvc-clock"].textContent});
}
for (let i = 0; i < timed.length; i++) {
  timed[i].fire(i % 2 ? "keydown" : "click");
  out.clicks.push({time: video.currentTime, played});
}
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_sync_script_runs_and_syncs(page, tmp_path):
    """The page's own script, run on a fake DOM: captions follow `timeupdate`, clicks seek."""
    _, parsed = page
    spec = {
        "ids": [i for i in parsed.by_id if i.startswith("dvc-")],
        "json": [b for a, b in parsed.scripts if a.get("id") == "dvc-events"][0],
        "script": [b for a, b in parsed.scripts if "id" not in a][0],
        "timed": [{k: v for k, v in t.items() if k.startswith("data-")} for t in parsed.timed],
        "times": [0.0, 7.0, 10.0, 11.0, 12.0, 25.0, 30.0, 40.0, 42.0],  # incl. boundaries
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    (tmp_path / "dom.js").write_text(_FAKE_DOM, encoding="utf-8")
    run = subprocess.run(["node", str(tmp_path / "dom.js"), str(tmp_path / "spec.json")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    intervals = [(float(t["data-start"]), float(t["data-end"])) for t in parsed.timed]
    pred = {1: "A man opens the door.", 2: EVIL, 3: "Ünïcode café — done."}
    pred_times = {1: (0, 10), 2: (5, 20), 3: (30, 40)}
    for state in out["states"]:
        t = state["t"]
        assert state["active"] == [i for i, (s, e) in enumerate(intervals) if s <= t <= e]
        expected = [f"{n}. {pred[n]}" for n in sorted(pred) if
                    pred_times[n][0] <= t <= pred_times[n][1]]
        assert state["now"] == ("\n".join(expected) or "(no predicted caption at this time)")
        assert ("Someone enters" in state["ref"]) == (2 <= t <= 12)
        assert float(state["playhead"].rstrip("%")) == pytest.approx(100 * t / 42.0)
        assert state["clock"] == f"{t:.1f} / 42.0 s"
    assert [c["time"] for c in out["clicks"]] == [s for s, _ in intervals]
    assert out["clicks"][-1]["played"] == len(intervals)


def test_page_without_video_uses_slider(tmp_path):
    out = tmp_path / "novideo.html"
    write_caption_page(str(out), None, "v_x", None, PRED[:1])
    parsed = _Collector()
    parsed.feed(out.read_text(encoding="utf-8"))
    assert "dvc-video" not in parsed.by_id and parsed.by_id["dvc-scrub"]["type"] == "range"
    assert float(parsed.by_id["dvc-scrub"]["max"]) == 10.0  # duration unknown: last event end
    with pytest.raises(FileNotFoundError, match="v_x"):
        write_caption_page(str(out), None, "v_x", 5.0, PRED[:1], timeline_png="missing.png")


def test_page_caps_long_event_lists(tmp_path):
    out = tmp_path / "many.html"
    many = [{"timestamp": [i, i + 5.0], "sentence": f"event {i}"} for i in range(5)]
    write_caption_page(str(out), "v.mp4", "v_many", 20.0, many, max_events=2)
    text = out.read_text(encoding="utf-8")
    parsed = _Collector()
    parsed.feed(text)
    assert [float(t["data-start"]) for t in parsed.timed if t["tag"] == "li"] == [0.0, 1.0]
    assert "Predicted events (first 2 of 5)" in text and "event 2" not in text

