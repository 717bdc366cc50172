"""Per-document reference implementations that the package's unit-level code is tested against.

The package runs every stage over a whole work unit at once (a single document is a unit of
one); these functions do the same work one document at a time, the plain way, and exist only
as oracles for tests: the package never calls them.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterator

import numpy as np

from zhmask.labels.pairs import Ranges, Segment, UnitDocs, balanced_classes, segments_example, truncate_pair
from zhmask.record import Document, Example, Words
from zhmask.steps.pack import build_example, pack_ranges, sentence_token_ranges
from zhmask.steps.read import RawDoc
from zhmask.steps.sentences import _END
from zhmask.steps.tokenize import _ALIGN_WORTH, run_regex


def reference_document(pipe, raw: RawDoc, events: Counter | None = None) -> tuple[Document | None, str | None]:
    """What ``pipe.document(raw, events)`` gives: normalise, then sentences, words (cut at
    sentence ends, merged for the tokenizer), entities and tokens of the text alone."""
    doc, reason = pipe._start(raw)
    if doc is None:
        return None, reason
    text = doc.text
    doc.sentences = split_sentences(text)
    words = pipe.segmenter.segment(text)
    words, cuts = split_at_sentences(words, doc.sentences)
    words, merges = align(pipe.tok, text, words)
    doc.words = words
    doc.entities = pipe.entities.detect(text, words)
    doc.tokens = pipe.tok.tokenize(text, words)
    if events is not None:
        if cuts:
            events["word_cut_at_sentence_end"] += cuts
        if merges:
            events["words_merged_for_tokenizer"] += merges
    if len(doc.tokens) == 0:
        return None, "no_tokens"
    return doc, None


def reference_documents(pipe, raws: list[RawDoc]):
    """``pipe.documents_or_crash(raws)``, document by document: (documents, events, [UNK] flags)."""
    events: Counter = Counter()
    out = [reference_document(pipe, raw, events) for raw in raws]
    return out, events, [None] * len(out)


def split_sentences(text: str) -> np.ndarray:
    """(n, 2) int32 array of [start, end) spans; empty text gives shape (0, 2)."""
    if not text:
        return np.zeros((0, 2), dtype=np.int32)
    ends = []
    for m in _END.finditer(text):
        q = text.find('"', m.start(), m.end())
        # an ASCII " after the end that opens a quote (even count before it) starts the next sentence
        ends.append(q if q >= 0 and text.count('"', 0, q) % 2 == 0 else m.end())
    bounds = [0]
    for e in ends:
        if e > bounds[-1] and e < len(text):
            bounds.append(e)
    bounds.append(len(text))
    spans = np.array(list(zip(bounds[:-1], bounds[1:])), dtype=np.int32)
    return spans


def sentence_texts(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text).tolist()]


def split_at_sentences(words: Words, sentences: np.ndarray) -> tuple[Words, int]:
    """Cut any word that crosses a sentence boundary; returns (words, number of cuts)."""
    if len(sentences) <= 1 or len(words) == 0:
        return words, 0
    bounds = sentences[1:, 0]
    # a boundary b is crossed by word i when start_i < b < end_i
    idx = np.searchsorted(words.starts, bounds, side="left")  # first word starting at/after b
    crossed = [(int(b), int(i) - 1) for b, i in zip(bounds, idx) if i > 0 and words.ends[i - 1] > b]
    if not crossed:
        return words, 0
    starts = words.starts.tolist()
    ends = words.ends.tolist()
    pos = list(words.pos)
    for b, wi in reversed(crossed):
        s, e, t = starts[wi], ends[wi], pos[wi]
        starts[wi:wi + 1] = [s, b]
        ends[wi:wi + 1] = [b, e]
        pos[wi:wi + 1] = [t, t]
    return Words(np.array(starts, dtype=np.int32), np.array(ends, dtype=np.int32), pos), len(crossed)


def align(tok, text: str, words: Words) -> tuple[Words, int]:
    """``WordTokenizer.align_joined`` of one text: merge words whose boundaries fall inside one
    pre-token run; returns (words, merges)."""
    if len(words) <= 1 or text.isascii() is False and not _ALIGN_WORTH.search(text):
        return words, 0
    rr = tok._run_re or run_regex()
    starts = words.starts
    merges: list[tuple[int, int]] = []
    for m in rr.finditer(text):
        a, b = m.span()
        if b - a < 2:
            continue
        i = int(np.searchsorted(starts, a, side="right")) - 1
        j = int(np.searchsorted(starts, b, side="left"))  # words i..j-1 overlap [a, b)
        if j - i > 1 or (i >= 0 and (starts[i] < a and words.ends[i] > a)):
            if j - i > 1:
                merges.append((i, j))
    if not merges:
        return words, 0
    s_l, e_l, p_l = [], [], []
    prev = 0
    st, en, pos = words.starts.tolist(), words.ends.tolist(), words.pos
    for i, j in merges:
        if i < prev:  # overlapping merge ranges (cannot happen for disjoint runs)
            i = prev
        s_l += st[prev:i]
        e_l += en[prev:i]
        p_l += pos[prev:i]
        s_l.append(st[i])
        e_l.append(en[j - 1])
        p_l.append(pos[i])
        prev = j
    s_l += st[prev:]
    e_l += en[prev:]
    p_l += pos[prev:]
    return Words(np.array(s_l, dtype=np.int32), np.array(e_l, dtype=np.int32), p_l), len(merges)


def two_part_chunks(doc: Document, ctx, task: str) -> list[tuple[Ranges, Ranges]]:
    """Sentences packed as ``mlm`` packs them (for ``[CLS] A [SEP] B [SEP]``), each chunk of two or
    more sentences cut at a random sentence boundary into (A, B); one-sentence chunks are counted
    (``<task>_single_sentence_chunk``) and left out."""
    max_tokens = ctx.config.max_seq_length - 3
    ranges = sentence_token_ranges(doc, max_tokens, ctx.events)
    chunks = pack_ranges(ranges, max_tokens, ctx.config.short_seq_prob, ctx.rng(doc.id, f"{task}_pack"))
    rng = ctx.rng(doc.id, f"{task}_split")
    out = []
    for ch in chunks:
        if len(ch) < 2:
            ctx.events[f"{task}_single_sentence_chunk"] += 1
            continue
        j = int(rng.integers(1, len(ch)))
        out.append((ch[:j], ch[j:]))
    return out


def mlm_each(docs: list[Document], ctx) -> Iterator[Example]:
    """``mlm``'s examples document by document (the oracle of ``mlm.unit_examples``)."""
    max_tokens = ctx.config.max_seq_length - 2
    for doc in docs:
        ranges = sentence_token_ranges(doc, max_tokens, ctx.events)
        chunks = pack_ranges(ranges, max_tokens, ctx.config.short_seq_prob, ctx.rng(doc.id, "pack"))
        for i, chunk in enumerate(chunks):
            yield build_example([(doc, chunk)], cls_id=ctx.tok.cls_id, sep_id=ctx.tok.sep_id, task="mlm",
                                example_id=f"{doc.id}#mlm{i}", ent_cache=ctx.ent_cache)


def nsp_each(docs: list[Document], ctx) -> Iterator[Example]:
    """``nsp``'s examples document by document (the oracle of ``nsp.unit_examples``)."""
    unit = UnitDocs(docs, ctx.config.max_seq_length - 3)
    for i, doc in enumerate(docs):
        chunks = two_part_chunks(doc, ctx, "nsp")
        labels = balanced_classes(len(chunks), 2, ctx.rng(doc.id, "nsp_label"))
        rng = ctx.rng(doc.id, "nsp_other")
        n = 0
        for (ra, rb), label in zip(chunks, labels):
            a, b = Segment(doc, ra), Segment(doc, rb)
            if label == 1:
                j = unit.pick_other(i, rng)
                if j is None:
                    ctx.events["nsp_no_other_document"] += 1
                    continue
                b = Segment(docs[j], unit.random_run(j, len(b), rng))
            yield pair_example(a, b, ctx, task="nsp", example_id=f"{doc.id}#nsp{n}", label=label, doc_id=doc.id)
            n += 1


def pair_example(a: Segment, b: Segment, ctx, *, task: str, example_id: str, label: int, doc_id: str) -> Example:
    """``[CLS] A [SEP] B [SEP]`` truncated to ``--max-seq-length``, one example (the oracle of
    ``pairs.pair_examples``)."""
    a, b = truncate_pair(a, b, ctx.config.max_seq_length - 3, ctx.events)
    return segments_example([a, b], ctx, task=task, example_id=example_id, label=label, doc_id=doc_id)


def sop_each(docs: list[Document], ctx) -> Iterator[Example]:
    """``sop``'s examples document by document (the oracle of ``sop.unit_examples``)."""
    for doc in docs:
        chunks = two_part_chunks(doc, ctx, "sop")
        labels = balanced_classes(len(chunks), 2, ctx.rng(doc.id, "sop_label"))
        for n, ((ra, rb), label) in enumerate(zip(chunks, labels)):
            a, b = Segment(doc, ra), Segment(doc, rb)
            if label == 1:
                a, b = b, a
            yield pair_example(a, b, ctx, task="sop", example_id=f"{doc.id}#sop{n}", label=label, doc_id=doc.id)


# ---------------------------------------------------------------------- masking, one example at a time
def take_in_order(lengths: np.ndarray, budget: int) -> tuple[np.ndarray, int]:
    """Indices of the units taken when scanning ``lengths`` in order, skipping (not cutting) a
    unit that would exceed the remaining budget, until the budget is spent (BERT's loop);
    returns (taken indices, units skipped)."""
    if budget <= 0 or len(lengths) == 0:
        return np.zeros(0, dtype=np.int64), 0
    lens = lengths.tolist()
    n = len(lens)
    taken: list[int] = []
    r = budget
    j = 0
    while j < n and lens[j] <= r:  # the prefix that fits whole (zero-length units included)
        taken.append(j)
        r -= lens[j]
        j += 1
    skipped = 0
    while r > 0 and j < n:  # then each unit that still fits; the others are skipped
        if lens[j] <= r:
            taken.append(j)
            r -= lens[j]
        else:
            skipped += 1
        j += 1
    return np.asarray(taken, dtype=np.int64), skipped


def reference_mask(config, ctx):
    """The strategy ``config.masking`` (``wwm``, ``char``, ``ngram`` or ``span``) as a function of
    one example at a time, the way the package decided before its one batched implementation:
    the same units and the same random values, so its rows must equal the package's."""
    from zhmask.masking.span import span_probs
    from zhmask.masking.units import Masker, sample_word_ngrams

    m = Masker(config, ctx)
    name = config.masking

    def wwm(example, ids, wid, cand, n_cand, budget, rng, stats):
        wt = m.word_table(example, wid, cand)
        elig = np.flatnonzero(wt.ok)
        order = elig[rng.permutation(len(elig))]
        taken, skipped = take_in_order(wt.ntok[order], budget)
        if skipped:
            stats["units_skipped_over_budget"] += skipped
        sel = order[taken]
        return m.apply(ids, wt.start[sel], wt.end[sel], rng, stats, n_cand, budget)

    def char(example, ids, wid, cand, n_cand, budget, rng, stats):
        pos = np.flatnonzero(cand)
        chosen = pos[rng.permutation(len(pos))[:budget]]
        return m.apply(ids, chosen, chosen + 1, rng, stats, n_cand, budget)

    def ngrams(probs, unit_word, gap):
        def choose(example, ids, wid, cand, n_cand, budget, rng, stats):
            wt = m.word_table(example, wid, cand)
            sw, nw, _ = sample_word_ngrams(wt, probs, budget, rng, stats, unit_word, gap)
            for n, c in zip(*np.unique(nw, return_counts=True)):
                stats[f"{unit_word}_units_n{int(n)}"] += int(c)
            return m.apply(ids, wt.start[sw], wt.end[sw + nw - 1], rng, stats, n_cand, budget)
        return choose

    if name == "ngram":
        from zhmask.masking.ngram import ngram_probs

        chooser = ngrams(ngram_probs("ngram", config), "ngram", 0)
    elif name == "span":
        chooser = ngrams(span_probs(config), "span", 1)
    else:
        chooser = {"wwm": wwm, "char": char}[name]
    return m.strategy(choose=chooser)
