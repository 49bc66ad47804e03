"""Generated, realistic-looking submissions for tests and benchmarks (seeded).

Per video: proposals jittered around the reference segments (so every tIoU band is hit),
plus random segments (unmatched -> garbage pairs), with captions taken from the references
of the same or another video and perturbed (dropped / swapped words, upper case, non-ASCII,
punctuation), a few duplicates and the odd empty sentence — the quirks the evaluator must
reproduce. Timestamps in seconds.
"""
from __future__ import annotations

import random
from collections.abc import Mapping

_EXTRAS = ["café", "naïve!", "(in red)", "--", "isn't", "woman's", "...", "“quoted”", "abc123!@#"]


def _perturb(rng: random.Random, sentence: str) -> str:
    words = sentence.split()
    r = rng.random()
    if r < 0.3 and len(words) > 3:
        del words[rng.randrange(len(words))]
    elif r < 0.45 and len(words) > 3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    elif r < 0.55:
        words.insert(rng.randrange(len(words) + 1), rng.choice(_EXTRAS))
    elif r < 0.6:
        words = [w.upper() for w in words]
    return " ".join(words)


def make_submission(
    references: Mapping[str, Mapping], *, seed: int = 0, proposals_per_video: int = 10,
    predicted_fraction: float = 0.95, extra_video_ids: int = 2,
) -> dict:
    """Submission dict over (most of) the videos of one loaded reference file."""
    rng = random.Random(seed)
    vids = sorted(references)
    pool = [s for v in vids for s in references[v]["sentences"]]
    results = {}
    for vid in vids:
        if rng.random() > predicted_fraction:
            continue
        ann = references[vid]
        duration = float(ann.get("duration", 100.0)) or 100.0
        entries = []
        for _ in range(proposals_per_video):
            r = rng.random()
            if r < 0.7 and ann["timestamps"]:
                j = rng.randrange(len(ann["timestamps"]))
                s, e = ann["timestamps"][j]
                span = max(e - s, 1.0)
                s += rng.gauss(0, 0.15 * span)
                e += rng.gauss(0, 0.15 * span)
                sentence = ann["sentences"][j] if rng.random() < 0.7 else rng.choice(pool)
            else:
                s = rng.uniform(0, duration)
                e = s + rng.uniform(0, duration / 3)
                sentence = rng.choice(pool)
            if rng.random() < 0.02:
                sentence = ""
            entries.append({"sentence": _perturb(rng, sentence),
                            "timestamp": [round(s, 2), round(e, 2)]})
        if entries and rng.random() < 0.1:
            entries.append(dict(entries[0]))  # an exact duplicate
        results[vid] = entries
    for i in range(extra_video_ids):
        results[f"v_not_in_references_{i}"] = [{"sentence": "a man", "timestamp": [0, 1]}]
    return {"version": "VERSION 1.0", "results": results,
            "external_data": {"used": False, "details": "generated"}}
