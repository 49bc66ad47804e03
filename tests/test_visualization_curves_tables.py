"""Training curves from JSON lines, metric tables, and the submission CLI end to end."""
import json
import math

import av
import numpy as np
import pytest
from PIL import Image

from captioner_jax.visualization import __main__ as cli
from captioner_jax.visualization.curves import collect_series, plot_training_curves
from captioner_jax.visualization.tables import (
    format_evaluation_table,
    format_metrics_markdown,
    format_metrics_table,
)


@pytest.fixture()
def metrics_files(tmp_path):
    lines = []
    for step in range(0, 101, 10):
        lines.append({"step": step, "split": "train", "time": 1.0,
                      "loss": 10 * math.exp(-step / 15) + 0.05})
        if step % 50 == 0:
            lines.append({"step": step, "split": "eval", "loss": 5.0 - step / 50,
                          "METEOR": 0.02 + step / 2000})
    # A resumed run re-logs step 50 (the later value wins) and a killed run leaves half a line.
    lines.append({"step": 50, "split": "train", "loss": 0.5})
    text = "\n".join(json.dumps(r) for r in lines) + '\n{"step": 110, "spl'
    run = tmp_path / "run" / "metrics.jsonl"
    run.parent.mkdir()
    run.write_text(text)
    evaluator = tmp_path / "eval" / "metrics.jsonl"  # same file name, other folder
    evaluator.parent.mkdir()
    evaluator.write_text(json.dumps({"tiou_0.5": {"METEOR": 0.07}, "SODA_c": 0.04,
                                     "note": "text is not a metric", "ok": True}, indent=1))
    return str(run), str(evaluator)


def test_collect_series(metrics_files):
    run, evaluator = metrics_files
    series = collect_series([run])
    assert set(series) == {"loss", "METEOR"}  # step/split/time are not metrics
    train = dict(series["loss"]["train"])
    assert len(train) == 11 and train[50.0] == 0.5  # resumed value replaced the first one
    assert train[10.0] == pytest.approx(10 * math.exp(-10 / 15) + 0.05)
    assert series["loss"]["eval"] == [(0.0, 5.0), (50.0, 4.0), (100.0, 3.0)]
    both = collect_series([run, evaluator])  # same stem -> folder names label the series
    assert set(both["loss"]) == {"run/metrics:train", "run/metrics:eval"}
    assert both["tiou_0.5/METEOR"] == {"eval/metrics": [(0.0, 0.07)]}
    assert both["SODA_c"] == {"eval/metrics": [(0.0, 0.04)]}
    assert "note" not in both and "ok" not in both


def test_plot_training_curves_png(metrics_files, tmp_path):
    run, evaluator = metrics_files
    out = tmp_path / "curves.png"
    names = plot_training_curves([run, evaluator], str(out))
    assert names == ["loss", "METEOR", "tiou_0.5/METEOR", "SODA_c"]
    img = np.asarray(Image.open(out).convert("L"), np.float64)
    assert img.shape == (2 * 300, 3 * 440)  # 2 rows x 3 columns of 4.4 x 3.0 in at 100 dpi
    assert img.std() > 10
    assert plot_training_curves([run], str(out), keys=["METEOR", "lo*", "absent"]) == [
        "METEOR", "loss"]
    assert Image.open(out).size == (2 * 440, 300)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        plot_training_curves([str(tmp_path / "nope.jsonl")], str(out))


# As the evaluator returns them: already x100.
PER_TIOU = {
    0.5: {"Bleu_1": 15.0, "METEOR": 8.0},
    0.3: {"Bleu_1": 20.0, "Bleu_2": 10.0, "Bleu_3": 5.0, "Bleu_4": 2.0, "METEOR": 10.0,
          "ROUGE_L": 20.0, "CIDEr": 30.0, "Recall": 80.0, "Precision": 60.0},
}
AVERAGE = {"BLEU1": 17.5, "meteor": 9.0, "SODA_c": 5.554}


def test_metrics_table_text():
    expected = "\n".join([
        "val_1",
        "-" * 86,
        "tIoU     BLEU1  BLEU2  BLEU3  BLEU4  METEOR  ROUGE-L  CIDEr  Recall  Precision  SODA_c",
        "-" * 86,
        "0.30     20.00  10.00   5.00   2.00   10.00    20.00  30.00   80.00      60.00       -",
        "0.50     15.00      -      -      -    8.00        -      -       -          -       -",
        "-" * 86,
        "average  17.50      -      -      -    9.00        -      -       -          -    5.55",
        "-" * 86,
    ])
    assert format_metrics_table(PER_TIOU, AVERAGE, "val_1") == expected
    no_soda = format_metrics_table({0.5: {"CIDEr": 0.125}}, None, scale=100.0, digits=1)
    assert "SODA_c" not in no_soda and "12.5" in no_soda and "average" not in no_soda


def test_metrics_table_markdown():
    md = format_metrics_markdown(PER_TIOU, AVERAGE, "GT proposals").splitlines()
    assert md[0] == "**GT proposals**"
    assert md[2].startswith("| tIoU | BLEU1 | BLEU2 |") and md[2].endswith("| SODA_c |")
    assert md[3] == "|:--|" + "--:|" * 10
    assert md[4] == ("| 0.30 | 20.00 | 10.00 | 5.00 | 2.00 | 10.00 | 20.00 | 30.00 | 80.00 | 60.00"
                     " | - |")
    assert md[6] == "| **average** | **17.50** | - | - | - | **9.00** | - | - | - | - | **5.55** |"


def test_evaluation_table_from_evaluator_result():
    """`evaluate_submission`'s dict (after a JSON round trip: string tIoU keys)."""
    result = {"per_tiou": {str(t): row for t, row in PER_TIOU.items()}, **AVERAGE,
              "SODA_c_precision": 99.0, "para_Bleu_1": 98.0, "num_unknown_videos": 3,
              "seconds": 1.5, "version": "2018"}
    assert format_evaluation_table(result, "val_1") == format_metrics_table(PER_TIOU, AVERAGE,
                                                                            "val_1")
    assert format_evaluation_table(result, markdown=True) == format_metrics_markdown(PER_TIOU,
                                                                                     AVERAGE)
    with pytest.raises(ValueError, match="per_tiou"):
        format_evaluation_table({"METEOR": 1.0})


def _write_video(path, seconds=4, fps=8, size=(64, 48)):
    w, h = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(seconds * fps):
            frame = np.full((h, w, 3), 6 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_cli_renders_submission(tmp_path, capsys, metrics_files):
    videos = tmp_path / "videos"
    videos.mkdir()
    # MPEG-4 Part 2 (browsers cannot play it) in a file named without the v_ prefix, as
    # downloads are.
    _write_video(videos / "abc.mp4")
    submission = {"version": "VERSION 1.0", "external_data": {}, "results": {
        "v_abc": [{"timestamp": [0.0, 2.5], "sentence": "A grey screen fades <in>."},
                  {"timestamp": [1.0, 4.0], "sentence": "It gets brighter."}],
        "v_not_annotated": [{"timestamp": [0, 1], "sentence": "x"}],
        "v_second": [{"timestamp": [0, 1], "sentence": "y"}]}}
    refs = {"v_abc": {"duration": 4.0, "timestamps": [[0, 4]], "sentences": ["Grey to white."]},
            "v_second": {"duration": 2.0, "timestamps": [[0, 2]], "sentences": ["z"]}}
    (tmp_path / "pred.json").write_text(json.dumps(submission))
    (tmp_path / "val_1.json").write_text(json.dumps(refs))
    out = tmp_path / "out"
    rc = cli.main(["--submission", str(tmp_path / "pred.json"), "--references",
                   str(tmp_path / "val_1.json"), "--videos-dir", str(videos), "--out", str(out),
                   "--num", "5", "--thumbnails", "4", "--metrics", metrics_files[0],
                   "--no-transcode"])
    assert rc == 0 and "2 videos rendered" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "curves.png", "index.html", "v_abc.html", "v_abc_frames.png", "v_abc_timeline.png",
        "v_second.html", "v_second_timeline.png"]  # only annotated videos when references
    # are given; the unplayable one gets a frame strip but, with --no-transcode, no copy
    page = (out / "v_abc.html").read_text()
    assert 'src="../videos/abc.mp4"' in page and "A grey screen fades &lt;in&gt;." in page
    assert "Grey to white." in page
    with_thumbs = Image.open(out / "v_abc_timeline.png").size
    without = Image.open(out / "v_second_timeline.png").size
    assert with_thumbs[1] > without[1]  # the thumbnail strip is there
    (tmp_path / "bad.json").write_text(json.dumps({"predictions": {}}))
    assert cli.main(["--submission", str(tmp_path / "bad.json"), "--out", str(out)]) == 2


def test_comparison_table_has_one_row_per_model_in_order():
    from captioner_jax.visualization.tables import format_comparison_table

    text = format_comparison_table(
        {"xe": {"METEOR": 10.0, "CIDEr": 50.0}, "scst": {"METEOR": 12.5, "SODA_c": 4.0}},
        title="GT proposals")
    lines = text.splitlines()
    assert lines[0] == "GT proposals"
    assert lines[2].split()[0] == "model" and "SODA_c" in lines[2]
    assert lines[4].split() == ["xe", "-", "-", "-", "-", "10.00", "-", "50.00", "-", "-", "-"]
    assert lines[5].split()[0] == "scst" and "12.50" in lines[5] and "4.00" in lines[5]
    md = format_comparison_table({"xe": {"METEOR": 10.0}}, markdown=True)
    assert md.splitlines()[2].startswith("| xe |") and "10.00" in md
