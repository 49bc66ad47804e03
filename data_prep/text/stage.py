"""Launch stage "text_vocab": caption vocabulary, concept vocabulary, IDF table, and the
per-sentence concept ids of every listed caption file.

    python launch.py --config configs/data/text_activitynet.py --workdir DIR

Outputs in the workdir:
  caption_vocab.json                    PDVC format (`caption_vocab.CaptionVocab`)
  concepts.json                         concept vocabulary with counts (`concepts.ConceptVocab`)
  idf.json                              document frequencies (`idf.IdfTable`)
  sentence_concepts/<file stem>.json    {video_id: [[concept ids of sentence 0], ...]}
"""
from __future__ import annotations

import logging
import os
import time

from data_prep.annotations.activitynet_captions import read_captions
from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_json
from data_prep.text.caption_vocab import build_caption_vocab
from data_prep.text.concepts import DEFAULT_STOP_WORDS, ConceptOptions, build_concept_vocab
from data_prep.text.idf import build_idf

log = logging.getLogger(__name__)


def _sentences(files) -> list[str]:
    out = []
    for path in files:
        out.extend(s for v in read_captions(path).values() for s in v.sentences)
    return out


def concept_options(config) -> ConceptOptions:
    c = config.concepts
    stop = c.get("stop_words", None)
    return ConceptOptions(
        top_n=int(c.top_n),
        pos_groups=tuple(c.pos_groups),
        include_numbers=bool(c.include_numbers),
        lemmatize=bool(c.lemmatize),
        stop_words=DEFAULT_STOP_WORDS if stop is None else tuple(stop),
        min_count=int(c.min_count),
    )


def run(config, workdir: str) -> dict:
    """Writes the text artefacts (module docstring) into `workdir` (local or remote)."""
    if config.get("nltk_data"):
        import nltk

        if not paths.is_local(config.nltk_data):
            raise ValueError(f"nltk_data {config.nltk_data!r}: NLTK reads its data from a "
                             "local folder only")
        nltk.data.path.insert(0, paths.absolute(config.nltk_data))
    t0 = time.time()
    vocab = build_caption_vocab(_sentences(config.vocab_files), int(config.count_threshold))
    vocab.save(paths.join(workdir, "caption_vocab.json"))
    log.info("caption vocabulary: %d entries from %s", vocab.size, list(config.vocab_files))

    train_sentences = _sentences(config.concept_files)
    workers = int(config.workers) if int(config.workers) > 0 else (os.cpu_count() or 1)
    concepts = build_concept_vocab(train_sentences, concept_options(config), workers=workers)
    concepts.save(paths.join(workdir, "concepts.json"))
    log.info("concept vocabulary: %d concepts from %d sentences (%.1f s)", concepts.size,
             len(train_sentences), time.time() - t0)

    idf = build_idf(_sentences(config.idf_files))
    idf.save(paths.join(workdir, "idf.json"))

    per_file = {}
    for path in config.sentence_concept_files:
        videos = read_captions(path)
        flat = [s for v in videos.values() for s in v.sentences]
        ids = iter(concepts.concept_ids(flat, workers=workers))
        table = {vid: [next(ids).tolist() for _ in v.sentences] for vid, v in videos.items()}
        name = paths.as_path(path).stem
        atomic_write_json(paths.join(workdir, "sentence_concepts", f"{name}.json"), table)
        per_file[name] = len(flat)
        log.info("sentence concepts of %s: %d sentences", path, len(flat))
    return {"caption_vocab_size": vocab.size, "num_concepts": concepts.size,
            "idf_documents": idf.num_documents, "sentence_concepts": per_file,
            "wall_seconds": round(time.time() - t0, 1)}
