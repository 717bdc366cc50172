"""Adapting segmenters to a segmented corpus: a spacy-pkuseg model, a jieba user dictionary,
entity lexicons.

``train_segmenter``: spacy-pkuseg's CRF trained offline (``spacy_pkuseg.train``) on the corpus's
words, one sentence a line, after zhmask's normaliser (what the pipeline feeds it).  The model
directory (``features.msgpack``, ``weights.npz``) loads with
``--segmenter pkuseg --segmenter-model DIR``; ``zhmask-model.json`` beside them records how it
was trained and ``train.log`` holds spacy-pkuseg's own output (per-iteration F1 on the dev set).

``build_dict``: a jieba-format user dictionary ``word freq tag`` so that jieba's maximum-
probability route follows the corpus's segmentation standard:

* every corpus word, with its count scaled to jieba's dictionary (``freq = count * scale``, where
  ``scale`` = total of jieba's base dictionary / number of corpus tokens, so a word's probability
  is about its relative frequency in the corpus, on the scale of jieba's other words) and its most
  frequent tag (so jieba's POS tags, and the entity detector reading them, follow the corpus);
* every word of jieba's base dictionary that occurs in the corpus text but never as a corpus
  word (``国家主席`` where the PKU standard writes 国家 主席), with frequency 0, which removes it
  from jieba's word graph.  Words the corpus never contains
  keep jieba's frequency, so text of other domains still finds them.

``entity_lexicons``: PER/LOC/ORG lists from the corpus's tags (adjacent ``nr`` merged, as in
the gold), ``word count TYPE`` files the entity detector loads with ``--lexicon FILE``.
A string becomes an entry when it is tagged as that entity type at least as often as it occurs
as an untagged word.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from zhmask.errors import ZhmaskError
from zhmask.segquality.gold import ENTITY_TYPES, GoldCorpus


def write_plain(corpus: GoldCorpus, path: str | Path, sentences=None) -> int:
    """Space-separated words, one sentence a line (the form spacy_pkuseg.train reads)."""
    sents = corpus.sentences if sentences is None else sentences
    with open(path, "w", encoding="utf-8") as f:
        for s in sents:
            f.write(" ".join(s.word_texts()) + "\n")
    return len(sents)


def train_segmenter(train: GoldCorpus, out_dir: str | Path, iterations: int = 10, dev: GoldCorpus | None = None,
                    log=None, progress=None) -> dict:
    """Train a spacy-pkuseg model into ``out_dir``; returns the metadata written beside it.

    spacy-pkuseg evaluates on a dev set after every iteration (printed to ``train.log``); without
    ``dev`` it uses the last 5% of the training sentences (at most 500), which stay in training.
    ``progress(k)`` is called as iteration ``k`` (1-based) ends.
    """
    try:
        import spacy_pkuseg
    except ImportError:
        raise ZhmaskError("train-segmenter needs spacy-pkuseg: pip install 'zhmask[pkuseg]'") from None
    if iterations < 1:
        raise ZhmaskError(f"--iterations must be at least 1, got {iterations}")
    out = Path(out_dir).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZhmaskError(f"cannot create {out}: {exc}") from None
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="zhmask-pkuseg-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        dev_file = os.path.join(tmp, "dev.txt")
        write_plain(train, train_file)
        if dev is not None:
            n_dev = write_plain(dev, dev_file)
        else:
            k = max(1, min(500, len(train.sentences) // 20))
            n_dev = write_plain(train, dev_file, train.sentences[-k:])
        buf = _IterationLog(progress)
        try:
            # spacy-pkuseg prints progress (and a line per sentence length) to stdout: keep it in
            # the log; its own scratch files go to a temporary directory of its own
            with contextlib.redirect_stdout(buf):
                spacy_pkuseg.train(train_file, dev_file, str(out.resolve()), train_iter=iterations)
        except Exception as exc:
            raise ZhmaskError(f"spacy-pkuseg training failed: {type(exc).__name__}: {exc}") from None
    seconds = time.time() - t0
    missing = [f for f in ("features.msgpack", "weights.npz") if not (out / f).exists()]
    if missing:
        raise ZhmaskError(f"spacy-pkuseg training wrote no {' or '.join(missing)} into {out}")
    log_lines = [ln for ln in buf.getvalue().splitlines() if not ln.startswith("length = ")]
    (out / "train.log").write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    dev_f = [ln for ln in log_lines if ln.startswith("iter")]
    meta = {
        "backend": "spacy-pkuseg",
        "train_file": train.path,
        "train_sentences": len(train.sentences),
        "train_words": sum(len(s.words) for s in train.sentences),
        "dev_sentences": n_dev,
        "dev_file": dev.path if dev is not None else "tail of the training file",
        "iterations": iterations,
        "seconds": round(seconds, 1),
        "normalized": True,
        "dev_log": dev_f,
        "usage": f"zhmask build-corpus --segmenter pkuseg --segmenter-model {out}",
    }
    (out / "zhmask-model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if log:
        log(f"trained {out} in {seconds:.1f}s")
    return meta


class _IterationLog(io.StringIO):
    """spacy-pkuseg's standard output, kept for train.log; ``progress(k)`` is called when it
    reports the end of iteration k (a line ``iter<k-1> ...``)."""

    def __init__(self, progress=None) -> None:
        super().__init__()
        self.progress = progress
        self._line = ""

    def write(self, s: str) -> int:
        if self.progress is not None:
            *done, self._line = (self._line + s).split("\n")
            for ln in done:
                head = ln.split(None, 1)[0] if ln.strip() else ""
                if head.startswith("iter") and head[4:].isdigit():
                    self.progress(int(head[4:]) + 1)
        return super().write(s)


def jieba_base_dictionary() -> Path | None:
    """jieba's dict.txt (the dictionary rjieba embeds too), when jieba is installed."""
    try:
        import jieba
    except ImportError:
        return None
    p = Path(jieba.__file__).parent / "dict.txt"
    return p if p.exists() else None


def _read_base(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    out[parts[0]] = int(parts[1])
    except (OSError, UnicodeDecodeError) as exc:
        raise ZhmaskError(f"cannot read base dictionary {path}: {exc}") from None
    return out


def word_counts(corpus: GoldCorpus) -> tuple[Counter, dict[str, Counter]]:
    counts: Counter = Counter()
    tags: dict[str, Counter] = defaultdict(Counter)
    for s in corpus.sentences:
        for (a, b), t in zip(s.words, s.tags):
            w = s.text[a:b]
            counts[w] += 1
            if t:
                tags[w][t] += 1
    return counts, tags


def build_dict(corpus: GoldCorpus, base: str | Path | None = "jieba", scale: float | None = None,
               min_count: int = 1, remove_conflicts: bool = True) -> tuple[list[tuple[str, int, str | None]], dict]:
    """Entries ``(word, freq, tag)`` of a jieba user dictionary and a summary of how they were made.

    ``base``: jieba's dictionary file the corpus statistics are scaled to and whose conflicting
    entries are removed ("jieba": the installed jieba's dict.txt; None: neither, with scale 1).
    """
    counts, tags = word_counts(corpus)
    n_tokens = sum(counts.values())
    base_path = jieba_base_dictionary() if base == "jieba" else (Path(base) if base else None)
    base_freq: dict[str, int] = _read_base(base_path) if base_path else {}
    if scale is None:
        scale = sum(base_freq.values()) / n_tokens if base_freq else 1.0
    entries: list[tuple[str, int, str | None]] = []
    for w, c in counts.most_common():
        if c < min_count or any(ch.isspace() for ch in w):
            continue
        tag = tags[w].most_common(1)[0][0] if tags.get(w) else None
        entries.append((w, max(1, round(c * scale)), tag))
    removed = 0
    if base_freq and remove_conflicts:
        import ahocorasick

        ac = ahocorasick.Automaton()
        for w in base_freq:
            if len(w) >= 2 and w not in counts:
                ac.add_word(w, w)
        # base words that occur in the corpus text but never as a corpus word
        occ: Counter = Counter()
        if len(ac):
            ac.make_automaton()
            for s in corpus.sentences:
                for _, w in ac.iter(s.text):
                    occ[w] += 1
        for w in sorted(occ):
            entries.append((w, 0, None))
            removed += 1
    summary = {"corpus_tokens": n_tokens, "corpus_words": len(counts), "scale": round(scale, 3),
               "base": str(base_path) if base_path else None, "removed": removed,
               "entries": len(entries)}
    return entries, summary


def write_dict(entries, path: str | Path, header: list[str] = ()) -> None:
    p = Path(path)
    try:
        if p.parent and not p.parent.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            for h in header:
                f.write(f"# {h}\n")
            for w, freq, tag in entries:
                f.write(f"{w} {freq} {tag}\n" if tag else f"{w} {freq}\n")
    except OSError as exc:
        raise ZhmaskError(f"cannot write {p}: {exc}") from None


def entity_lexicons(corpus: GoldCorpus, min_count: int = 1) -> dict[str, list[tuple[str, int]]]:
    """PER/LOC/ORG entries ``(string, count)`` from the corpus's gold entities."""
    if not corpus.tagged:
        raise ZhmaskError(f"{corpus.path} has no tags: entity lexicons need the PKU word/tag form")
    ent: dict[str, Counter] = {t: Counter() for t in ENTITY_TYPES}
    plain: Counter = Counter()  # occurrences as a word that is no entity
    for s in corpus.sentences:
        inside = set()
        for a, b, t in s.entities:
            ent[t][s.text[a:b]] += 1
            inside.add((a, b))
        for (a, b) in s.words:
            if (a, b) not in inside:
                plain[s.text[a:b]] += 1
    out: dict[str, list[tuple[str, int]]] = {}
    for t in ENTITY_TYPES:
        out[t] = sorted(((w, c) for w, c in ent[t].items()
                         if c >= min_count and len(w) >= 2 and c >= plain[w] and not any(ch.isspace() for ch in w)),
                        key=lambda x: (-x[1], x[0]))
    return out
