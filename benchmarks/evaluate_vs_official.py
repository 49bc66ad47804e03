"""The project's evaluator against the REAL official one, side by side, end to end.

    python benchmarks/evaluate_vs_official.py --official-repo /tmp/densevid_official \
        [--python2 python2.7] [--official-pythonpath DIR] [--submission PRED.json | \
        --proposals 10] [--references val_1.json val_2.json] [--repeats 1] \
        [--json-out benchmarks/results/evaluator.jsonl]

--official-repo: a checkout of github.com/ranjaykrishna/densevid_eval (`evaluate.py` at
deba7d7 = "2018", or HEAD = "latest"; detected from the code) with its `coco-caption`
submodule (tylin/coco-caption, the jars included). It is read, never copied into this
repository. The official code is Python 2 (`print` statements, `sets`, `xrange`): it runs
under `--python2` (default: the first of python2.7 / python2 found on PATH or in pyenv) with
numpy importable (`--official-pythonpath` is prepended to that child's PYTHONPATH only).
Without a usable official checkout or interpreter the script says exactly why and falls back
to `benchmarks/slow_path.py` (the official structure re-implemented with pycocoevalcap's
Python 3 scorers), labelled as such in the output and the JSON.

Both sides run as fresh processes, interleaved (`harness.alternate`, no warm-up: every run
is cold, including interpreter start, JSON loading and every JVM start), on the same
submission (default: `synthetic_submission.make_submission` over all val_1 videos, seeded):
  official          `evaluate.py -v` (all metrics) through a tiny wrapper that calls its
                    `main` unchanged and then saves `evaluator.scores` at full precision and
                    the video order it used;
  project           `python -m captioner_jax.evaluate`, visiting the videos in that same
                    order (`--video-order`: the official order is Python 2's `set` order,
                    which decides the tokenizer's look-ahead at video boundaries) and
                    splitting tokens as Python 2 does (`--python2-split`: a PTB token with a
                    no-break space, "925 606 0946", is one token for BLEU / CIDEr-D in the
                    Python 2 original, three in the Python 3 ports we equal by default), with the
                    reference-token cache as an earlier evaluation of ANOTHER submission
                    (seed 1) left it (references rarely change; restored before every run);
  project_nocache   the same with `--no-cache`.
Prints the medians, the ratios official / project, the largest difference over every
metric at every tIoU and on average (x100), `machine_info()`, and one BENCH_JSON line per
project variant (bench="evaluator"). A 200-second official run makes repeats of 1-2 the
practical choice; the output says how many were run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.harness import alternate, emit, machine_info, ratio  # noqa: E402
from benchmarks.synthetic_submission import make_submission  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data", "activitynet_captions")
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Recall",
           "Precision")
TIOUS = (0.3, 0.5, 0.7, 0.9)

# Python 2 wrapper run in the official checkout: the official `main` unchanged (verbose, as
# `evaluate.py -v`), then the scores at full precision and the video order it visited.
_OFFICIAL_WRAPPER = r"""
import json, sys
out_path, submission = sys.argv[1], sys.argv[2]
references = sys.argv[3:]
sys.path.insert(0, '.')
import evaluate as official
saved = {}
_evaluate = official.ANETcaptions.evaluate
def evaluate(self):
    _evaluate(self)
    saved['scores'] = self.scores
    saved['order'] = self.get_gt_vid_ids()
official.ANETcaptions.evaluate = evaluate
class Args(object):
    pass
args = Args()
args.submission, args.references = submission, references
args.tious, args.max_proposals_per_video, args.verbose = [0.3, 0.5, 0.7, 0.9], 1000, True
official.main(args)
with open(out_path, 'w') as f:
    json.dump({'scores': saved['scores'], 'order': saved['order']}, f)
"""
# The official `get_gt_vid_ids` order, computed alone (Python 2 `set` of the file keys).
_OFFICIAL_ORDER = r"""
import json, sys
vid_ids = set([])
for name in sys.argv[2:]:
    vid_ids |= set(json.load(open(name)).keys())
json.dump(list(vid_ids), open(sys.argv[1], 'w'))
"""


def find_python2(explicit: str | None) -> tuple[str | None, str]:
    """(interpreter, why not found)."""
    candidates = [explicit] if explicit else []
    if not explicit:
        for name in ("python2.7", "python2"):
            found = shutil.which(name)
            if found:
                candidates.append(found)
        pyenv = os.path.join(os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")),
                             "versions")
        if os.path.isdir(pyenv):
            candidates += [os.path.join(pyenv, v, "bin", "python") for v in sorted(os.listdir(
                pyenv)) if v.startswith("2.")]
    reasons = []
    for exe in candidates:
        try:
            proc = subprocess.run([exe, "-c", "import sys; print(sys.version_info[0])"],
                                  capture_output=True, text=True, timeout=60)
        except OSError as e:
            reasons.append(f"{exe}: {e}")
            continue
        if proc.returncode == 0 and proc.stdout.strip() == "2":
            return exe, ""
        reasons.append(f"{exe}: not a working Python 2 ({proc.stderr.strip()[-200:]})")
    return None, "; ".join(reasons) or "no python2.7 / python2 on PATH or in pyenv"


def check_official(repo: str, python2: str | None, pythonpath: str | None) -> str:
    """Why the official checkout cannot run ('' when it can)."""
    need = ["evaluate.py", "coco-caption/pycocoevalcap/meteor/meteor-1.5.jar",
            "coco-caption/pycocoevalcap/meteor/data/paraphrase-en.gz",
            "coco-caption/pycocoevalcap/tokenizer/stanford-corenlp-3.4.1.jar"]
    missing = [p for p in need if not os.path.isfile(os.path.join(repo, p))]
    if missing:
        return f"{repo} lacks {missing} (clone with --recursive: the coco-caption submodule " \
               f"holds the jars)"
    if python2 is None:
        return "no Python 2 interpreter"
    proc = subprocess.run([python2, "-c", "import numpy"], capture_output=True, text=True,
                          env=_official_env(pythonpath), cwd=repo)
    if proc.returncode:
        return f"{python2} cannot import numpy ({proc.stderr.strip()[-200:]}); install it " \
               f"(e.g. pip install --target DIR numpy==1.16.6) and pass --official-pythonpath"
    return ""


def _official_env(pythonpath: str | None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
    return env


def official_version(repo: str) -> str:
    with open(os.path.join(repo, "evaluate.py")) as f:
        code = f.read()
    return "latest" if "random_string(" in code else "2018"


def official_averages(scores: dict) -> dict:
    """evaluator.scores ({metric: [value per tIoU]}, fractions) -> our layout, x100."""
    out = {"per_tiou": {t: {} for t in TIOUS}}
    for m in METRICS:
        values = scores[m]
        out[m] = 100 * sum(values) / float(len(values))  # as the official prints it
        for t, v in zip(TIOUS, values):
            out["per_tiou"][t][m] = 100 * v
    return out


def max_difference(a: dict, b: dict) -> tuple[float, str]:
    worst, where = -1.0, ""
    for m in METRICS:
        cells = [(f"{m} average", a[m], b[m])] + [
            (f"{m} tIoU {t}", a["per_tiou"][t][m], b["per_tiou"][t][m]) for t in TIOUS]
        for name, x, y in cells:
            if abs(x - y) > worst:
                worst, where = abs(x - y), name
    return worst, where


def project_scores(path: str) -> dict:
    with open(path) as f:
        result = json.load(f)
    result["per_tiou"] = {float(t): v for t, v in result["per_tiou"].items()}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--official-repo", default=None,
                   help="densevid_eval checkout (with coco-caption); fallback without it")
    p.add_argument("--python2", default=None, help="Python 2 interpreter for the official")
    p.add_argument("--official-pythonpath", default=None,
                   help="prepended to PYTHONPATH of the official's Python 2 child (numpy)")
    p.add_argument("--submission", default=None)
    p.add_argument("--proposals", type=int, default=10)
    p.add_argument("--references", nargs="+",
                   default=[os.path.join(DATA, "val_1.json"), os.path.join(DATA, "val_2.json")])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json-out", default=None,
                   help="(re)written with this run's BENCH_JSON lines")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="evaluator_vs_official_")
    references = [os.path.abspath(r) for r in args.references]
    if args.submission:
        submission, name = os.path.abspath(args.submission), args.submission
    else:
        with open(references[0]) as f:
            ref0 = json.load(f)
        submission = os.path.join(work, "submission.json")
        with open(submission, "w") as f:
            json.dump(make_submission(ref0, seed=0, proposals_per_video=args.proposals), f)
        name = f"generated, {args.proposals} proposals/video over {len(ref0)} videos (seed 0)"
    with open(submission) as f:
        n_pred = sum(len(v) for v in json.load(f)["results"].values())
    print(f"submission: {name}; {n_pred} predictions; references: {references}")
    info = machine_info()
    print("machine:", json.dumps(info, sort_keys=True))

    repo = os.path.abspath(args.official_repo) if args.official_repo else None
    python2, why_no_python2 = find_python2(args.python2)
    why_not = "no --official-repo given" if repo is None else check_official(
        repo, python2, args.official_pythonpath)
    if why_not == "no Python 2 interpreter":
        why_not += f" ({why_no_python2})"
    version = official_version(repo) if repo and not why_not else "2018"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    order_file = os.path.join(work, "video_order.json")
    if not why_not:
        subprocess.run([python2, "-c", _OFFICIAL_ORDER, order_file, *references], check=True,
                       cwd=repo, env=_official_env(args.official_pythonpath))
        py_version = subprocess.run([python2, "-V"], capture_output=True, text=True)
        original = (f"densevid_eval evaluate.py -v ({version}, "
                    f"{(py_version.stderr or py_version.stdout).strip()})")
    else:
        print(f"OFFICIAL EVALUATOR NOT RUN: {why_not}.\nFalling back to benchmarks/slow_path.py "
              f"(the official structure re-implemented with pycocoevalcap's Python 3 scorers); "
              f"figures below are against THAT, not the official script.")
        original = "official-structure slow path (benchmarks/slow_path.py), NOT the official"
        with open(order_file, "w") as f:  # the slow path visits sorted ids
            from captioner_jax.evaluation.submission import load_references
            json.dump(sorted(set().union(*[set(x) for x in load_references(references)[0]])), f)

    official_json = os.path.join(work, "official.json")

    def run_official():
        if why_not:
            from benchmarks.slow_path import slow_score_captions
            from captioner_jax.evaluation.submission import load_references, load_submission
            files, _ = load_references(references)
            result = slow_score_captions(load_submission(submission), files, version=version)
            with open(official_json, "w") as f:
                json.dump(result, f)
            return
        with open(os.path.join(work, "official_stdout.txt"), "w") as out:
            subprocess.run([python2, "-c", _OFFICIAL_WRAPPER, official_json, submission,
                            *references], cwd=repo, stdout=out, stderr=subprocess.STDOUT,
                           env=_official_env(args.official_pythonpath), check=True)

    primed = os.path.join(work, "cache_primed")
    cache = os.path.join(work, "cache")
    # Against the Python 2 original: its token split (a PTB token holding a no-break space
    # stays one token for BLEU / CIDEr-D; the Python 3 ports, our default, split it).
    cli = [sys.executable, "-m", "captioner_jax.evaluate", "-r", *references,
           "--version", version, "--video-order", order_file,
           *([] if why_not else ["--python2-split"])]
    if not args.submission:  # the cache as an evaluation of another submission leaves it
        other = os.path.join(work, "other_submission.json")
        with open(other, "w") as f:
            json.dump(make_submission(ref0, seed=1, proposals_per_video=args.proposals), f)
        subprocess.run([*cli, "-s", other, "--cache-dir", primed], cwd=ROOT, env=env,
                       check=True, capture_output=True)
    outputs = {}

    def run_project(variant: str):
        out = os.path.join(work, f"{variant}.json")
        extra = ["--no-cache"] if variant == "project_nocache" else ["--cache-dir", cache]
        if variant == "project":
            shutil.rmtree(cache, ignore_errors=True)
            if os.path.isdir(primed):
                shutil.copytree(primed, cache)
        proc = subprocess.run([*cli, "-s", submission, "--json", out, *extra], cwd=ROOT,
                              env=env, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"{variant} failed: {proc.stderr[-3000:]}")
        outputs[variant] = out

    start = time.perf_counter()
    medians = alternate({"project": lambda: run_project("project"),
                         "official": run_official,
                         "project_nocache": lambda: run_project("project_nocache")},
                        repeats=args.repeats, warmup=0)
    print(f"{args.repeats} interleaved repeat(s) of each, no warm-up (every run cold); "
          f"{time.perf_counter() - start:.0f} s in all")
    with open(official_json) as f:
        off = json.load(f)
    if why_not:
        official = {m: off[m] for m in METRICS}
        official["per_tiou"] = {float(t): v for t, v in off["per_tiou"].items()}
    else:
        official = official_averages(off["scores"])
        with open(order_file) as f:
            if off["order"] != json.load(f):
                print("WARNING: the official run visited the videos in another order than "
                      "the one computed beforehand")
    if args.json_out and os.path.exists(args.json_out):
        os.remove(args.json_out)
    print(f"{'original':>16}: {medians['official']:8.1f} s  [{original}]")
    for variant in ("project", "project_nocache"):
        mine = project_scores(outputs[variant])
        diff, where = max_difference(mine, official)
        r = ratio(medians["official"], medians[variant])
        print(f"{variant:>16}: {medians[variant]:8.1f} s  ratio {r:5.2f}x  max |diff| over "
              f"all metrics x100: {diff:.2e} ({where})")
        emit({"bench": "evaluator", "variant": variant, "original": original,
              "original_s": round(medians["official"], 2),
              "project_s": round(medians[variant], 2), "ratio": round(r, 2),
              "max_abs_diff_x100": diff, "max_diff_at": where, "repeats": args.repeats,
              "submission": name, "predictions": n_pred, "version": version,
              "cold": True, "machine": info}, args.json_out)
    print("  averages (official / project):")
    mine = project_scores(outputs["project"])
    for m in METRICS:
        print(f"    {m:>9}: {official[m]:.10f} / {mine[m]:.10f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
