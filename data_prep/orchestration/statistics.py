"""Statistics over repeated runs (seeds): mean, sample standard deviation, t-interval.

`summarize([x_1, ..., x_n])` -> {"n", "mean", "std", "ci95": [low, high], "values"}: the sample
standard deviation uses n - 1 (Bessel); the 95% interval is Student's t over the seeds,
mean +- t_{0.975, n-1} * std / sqrt(n). With one value std and the interval are None (not 0:
one run says nothing about the spread).
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def t_quantile(p: float, dof: int) -> float:
    """Quantile `p` of Student's t with `dof` degrees of freedom (scipy's, exact)."""
    from scipy import stats

    if dof < 1:
        raise ValueError(f"t quantile needs >= 1 degree of freedom, got {dof}")
    return float(stats.t.ppf(p, dof))


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, std (n - 1) and the two-sided t-interval of `values` (one number per seed)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("summarize: no values")
    if any(math.isnan(x) for x in xs):
        raise ValueError(f"summarize: NaN among the values {xs}")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci95": None, "values": xs}
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half], "values": xs}


def format_cell(summary: dict, digits: int = 2) -> str:
    """'mean ± std [low, high]' (just the mean for one seed)."""
    mean = f"{summary['mean']:.{digits}f}"
    if summary["std"] is None:
        return mean
    low, high = summary["ci95"]
    return f"{mean} ± {summary['std']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def caption_statistics(submission: dict) -> dict:
    """Length and diversity of a submission's captions (to explain metric changes, e.g.
    SCST's): {"words_per_caption": mean words, "distinct_captions": % distinct sentences,
    "captions": count}."""
    sentences = [str(p["sentence"]).strip().lower()
                 for preds in submission["results"].values() for p in preds]
    if not sentences:
        return {"words_per_caption": 0.0, "distinct_captions": 0.0, "captions": 0}
    return {"words_per_caption": sum(len(s.split()) for s in sentences) / len(sentences),
            "distinct_captions": 100.0 * len(set(sentences)) / len(sentences),
            "captions": len(sentences)}
