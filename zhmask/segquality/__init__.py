"""Segmentation and entity quality: gold corpora, scores, and adapting segmenters to a standard.

* :mod:`zhmask.segquality.gold`: reading PKU ``word/tag`` and space-separated gold files;
* :mod:`zhmask.segquality.scoring`: word P/R/F1, OOV recall, entity P/R/F1, MB/s, tables;
* :mod:`zhmask.segquality.training`: spacy-pkuseg training, jieba user dictionaries, entity
  lexicons from a segmented corpus.

The CLI commands ``eval-segmenter``, ``train-segmenter`` and ``build-dict`` are thin over these
(:mod:`zhmask.commands.segmentation`); ``benchmarks/segmentation_quality.py`` runs them all on a
held-out split of People's Daily 1998 and writes the table of ``docs/segmentation.md``.
"""
from __future__ import annotations

from pathlib import Path

from zhmask.errors import ZhmaskError
from zhmask.segquality.gold import GoldCorpus, GoldSentence, read_gold, split_holdout
from zhmask.segquality.scoring import PRF, EvalResult, evaluate, format_table, prf

__all__ = ["GoldCorpus", "GoldSentence", "read_gold", "split_holdout", "PRF", "EvalResult", "evaluate",
           "format_table", "prf", "read_vocabulary", "evaluate_backends"]


def read_vocabulary(path: str | Path) -> set[str]:
    """A word list: the first field of each line (a plain list, or a jieba ``word freq tag`` file)."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise ZhmaskError(f"vocabulary file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ZhmaskError(f"cannot read vocabulary {path}: {exc}") from None
    return {ln.split()[0] for ln in lines if ln.strip() and not ln.startswith("#")}


def evaluate_backends(gold: GoldCorpus, segmenters: list[str], *, model: str | None = None,
                      user_dicts: list[str] = (), hmm: bool = False, entities: bool = True,
                      lexicons: list[str] | None = None, vocabulary: set[str] | None = None,
                      speed_repeats: int = 1, progress=None) -> list[EvalResult]:
    """Score each named segmenter (as ``build-corpus`` builds it) on ``gold``.

    Entities are scored when the gold has tags and ``entities`` is true, with zhmask's lexicon
    entity detector (``lexicons``: names or files as ``build-corpus`` takes them; None: the
    bundled ones).
    """
    from zhmask.steps.entities import make_entity_detector
    from zhmask.steps.segment import SEGMENTERS, make_segmenter

    detector = make_entity_detector("lexicon", lexicons=lexicons) if entities and gold.tagged else None
    results = []
    for name in segmenters:
        seg = make_segmenter(name, user_dicts=list(user_dicts), hmm=hmm, model=model)
        label = name
        reads = SEGMENTERS.entry(name).fields  # the BuildConfig fields the segmenter reads
        if "segmenter_model" in reads and model:
            label = f"{name} ({Path(model).name})"
        elif user_dicts and "user_dict" in reads:
            label = f"{name} + {', '.join(Path(u).name for u in user_dicts)}"
        if hmm and "hmm" in reads:
            label += " (HMM)"
        results.append(evaluate(gold, seg, detector, vocabulary, name=label, speed_repeats=speed_repeats))
        if progress:
            progress(results[-1])
    return results
