"""Paragraph-level captioning metrics, PDVC's protocol (`densevid_eval3/para_evaluate.py`,
called through `eval_para.py` with all scorers), e.g. against ActivityNet-Entities ae-val
`para/anet_entities_val_{1,2}_para.json` (`{video_id: paragraph}`).

* Videos = union of the reference files' ids (2,460 for ae-val). Ids without the `v_` prefix
  get it (PDVC `ensure_caption_key`, decided on the first key of each dict).
* Hypothesis = the video's prediction sentences in file order, each followed by ". " (all
  entries, no cap, no sorting); missing video -> "".
* Normalisation, no PTB tokenizer: non-letters -> space, lower case, single spaces.
* One corpus over all videos, 1-2 references each: BLEU-1..4 corpus-level (closest reference
  length), METEOR jar aggregate, ROUGE-L mean (precision and recall maximised separately over
  the references), CIDEr-D mean with document frequencies over all videos' references.
Reported x100 with keys "para_Bleu_1" ... "para_CIDEr" (PDVC returns them unscaled).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from captioner_jax.evaluation.bleu import bleu_from_stats, bleu_pair_stats
from captioner_jax.evaluation.cider import CiderD
from captioner_jax.evaluation.meteor import MeteorProcess, get_meteor
from captioner_jax.evaluation.ngrams import NgramTable
from captioner_jax.evaluation.rouge import rouge_l_scores
from captioner_jax.evaluation.submission import Submission, SubmissionError
from captioner_jax.evaluation.text import normalize_paragraph
from data_prep.infra import paths


def _ensure_prefix(data: Mapping[str, object]) -> dict:
    if not data:
        return dict(data)
    if not next(iter(data)).startswith("v_"):
        return {"v_" + k: v for k, v in data.items()}
    return dict(data)


def load_paragraph_references(references) -> tuple[list[dict[str, str]], list[str]]:
    """Paragraph reference files (paths or dicts `{video_id: paragraph}`)."""
    if isinstance(references, (str, os.PathLike, Mapping)):
        references = [references]
    files, names = [], []
    for ref in references:
        if isinstance(ref, Mapping):
            data, name = ref, "<in-memory paragraph reference>"
        else:
            name = os.fspath(ref)
            try:
                data = json.loads(paths.read_text(name))  # local or gs://
            except (OSError, UnicodeDecodeError, ImportError, json.JSONDecodeError) as e:
                raise SubmissionError(f"paragraph reference {name}: {e}") from e
        if not isinstance(data, Mapping):
            raise SubmissionError(f"{name}: paragraph reference is not a JSON object")
        bad = [k for k, v in data.items() if not isinstance(v, str)]
        if bad:
            raise SubmissionError(f"{name}: video {bad[0]!r}: paragraph is not a string")
        files.append(_ensure_prefix(data))
        names.append(name)
    return files, names


def paragraph_scores(
    sub: Submission, para_files: Sequence[dict[str, str]], meteor: MeteorProcess | None = None
) -> dict:
    """PDVC paragraph metrics of a submission (x100)."""
    vids = sorted(set().union(*[f.keys() for f in para_files]))
    if not vids:
        raise SubmissionError("paragraph references contain no video")
    preds = _ensure_prefix({v: p.sentences for v, p in sub.videos.items()})
    hyps = [normalize_paragraph("".join(s + ". " for s in preds.get(v, []))) for v in vids]
    refs = [[normalize_paragraph(f[v]) for f in para_files if v in f] for v in vids]
    flat = [r for rs in refs for r in rs]
    owner = np.repeat(np.arange(len(vids)), [len(r) for r in refs])
    table = NgramTable.build(hyps + flat)
    stats = bleu_pair_stats(table, np.arange(len(hyps)),
                            np.arange(len(hyps), len(hyps) + len(flat)), owner)
    bleu = bleu_from_stats(stats.sum(axis=0))
    meteor = meteor or get_meteor()
    met = meteor.aggregate(hyps, refs)
    rouge = float(np.mean(rouge_l_scores(hyps, refs)))
    cider = float(np.mean(CiderD.from_references(refs).score(hyps, refs)))
    out = {f"para_Bleu_{n + 1}": 100.0 * float(bleu[n]) for n in range(4)}
    out.update(para_METEOR=100.0 * met, para_ROUGE_L=100.0 * rouge, para_CIDEr=100.0 * cider)
    out["para_num_videos"] = len(vids)
    return out
