"""``discourse_relation``: ERNIE 2.0's discourse relation task (Sun et al. 2020), from explicit connectives.

For two adjacent sentences of a document where the second starts with a connective of
:data:`CONNECTIVES` (for example ``但是``, ``因此``, ``此外``), the connective is removed and the
pair ``[CLS] A [SEP] B-without-connective [SEP]`` is labelled with the connective's relation
class (the index in :data:`RELATIONS`).  A paired connective opening the first sentence
(``虽然 ... 但是``, ``因为 ... 所以``, see :data:`PAIRED`) is removed too when it belongs to the same
class.  A connective counts only when it is a whole word or run of words of the segmentation at
the very start of the sentence (``但愿`` is not ``但``); a comma or colon right after it is removed
with it.  The connectives of :data:`NEEDS_COMMA`, which also read as ordinary words
(``最后一天``, ``只有三人``), count only when a comma follows them.  Only relations between A and
B are labelled: a subordinating connective (:data:`SUBORDINATING`: ``因为``, ``由于``, ``如果`` ...)
counts only when the rest of B is its own clause (他没有来。因为他病了。), not when B's main clause
follows it inside B (由于破损严重，管线暂停运行。), see :func:`clause_inside`; connectives that always
announce a second half inside B (``之所以 ... 是因为``, ``一方面 ... 另一方面``) and ``只有``
(``只有 ... 才``) are not in the table.  The removal drops whole words, so no word is ever cut; the rest of the sentence keeps
its tokens.  Classes follow the corpus (not balanced); the manifest's ``label_counts`` reports
them.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

import numpy as np

from zhmask.checks import register_check
from zhmask.labels import register
from zhmask.labels.pairs import PairExamples, Segment, check_pair, is_punct_word
from zhmask.record import Document, Example

TASK = "discourse_relation"

# (class name, description, connectives opening the second sentence); the label is the index.
RELATIONS: list[tuple[str, str, list[str]]] = [
    ("cause", "cause or result",
     ["所以", "因此", "因而", "于是", "从而", "故而", "以致", "以至于", "为此", "因为", "由于", "可见", "由此可见"]),
    ("contrast", "contrast or concession",
     ["但是", "但", "可是", "然而", "不过", "只是", "相反", "反而", "尽管如此", "即便如此", "即使如此", "虽然如此"]),
    ("condition", "condition or hypothesis",
     ["如果", "假如", "要是", "倘若", "假若", "只要", "除非", "否则", "不然", "一旦", "万一"]),
    ("progression", "progression or addition",
     ["而且", "并且", "此外", "另外", "况且", "何况", "甚至", "更重要的是", "不仅如此", "除此之外", "再者", "加之"]),
    ("coordination", "coordination or parallel",
     ["同时", "与此同时", "另一方面", "同样", "相应地"]),
    ("temporal", "temporal succession",
     ["然后", "接着", "随后", "之后", "此后", "后来", "最后", "最终", "首先", "其次", "起初", "随即"]),
    ("elaboration", "example, restatement or summary",
     ["例如", "比如", "譬如", "也就是说", "换句话说", "换言之", "总之", "总而言之", "综上所述", "事实上", "其实"]),
]
# first halves of paired connectives, removed from the first sentence when the second opens
# with a connective of the same class
PAIRED: dict[str, list[str]] = {
    "cause": ["因为", "由于"],
    "contrast": ["虽然", "尽管", "虽说"],
    "condition": ["如果", "假如", "要是", "倘若", "只要", "只有", "除非"],
    "progression": ["不但", "不仅", "不只"],
}
# connectives that also read as ordinary words at a sentence start (最后一天 "the last day",
# 只有三人 "only three people", 另外两名 "two other"): they count only when a comma follows
NEEDS_COMMA = {"只是", "最后", "最终", "另外", "同样", "首先", "其次"}
# subordinating connectives: opening B they either relate B to A (他没有来。因为他病了。) or open a
# clause inside B whose main clause follows in B (由于破损严重，管线暂停运行。 / 如果发现可疑情况，请报警。),
# and then the relation is inside B.  They label only when the rest of B is that one clause: no
# clause separator and no word that opens a main clause (see :func:`clause_inside`).
SUBORDINATING = {"因为", "由于", "如果", "假如", "要是", "倘若", "假若", "只要", "除非", "一旦", "万一"}
CLAUSE_SEPARATORS = set("，,；;：:")
MAIN_CLAUSE_WORDS = {"就", "才", "便", "则", "那么", "所以", "因此", "因而", "于是", "但", "但是", "却", "也", "都",
                     "还", "仍", "仍然", "依然", "即可"}
CLASSES = {i: f"{name}: {desc}" for i, (name, desc, _) in enumerate(RELATIONS)}
AFTER = set("，,、：:")  # punctuation removed together with a connective

_LOOKUP: dict[str, int] = {c: i for i, (_, _, cs) in enumerate(RELATIONS) for c in cs}
# the connective opening a sentence (whitespace skipped): the longest first
_OPENING = re.compile(r"\s*(" + "|".join(map(re.escape, sorted(_LOOKUP, key=len, reverse=True))) + ")")


def _leading(doc: Document, start: int, end: int, words: list[str]) -> int | None:
    """Character offset after a connective of ``words`` opening [start, end), with the comma
    after it; None when none opens it as whole words."""
    text = doc.text
    while start < end and text[start].isspace():
        start += 1
    ws, we = doc.words.starts, doc.words.ends
    for c in words:
        if not text.startswith(c, start):
            continue
        stop = start + len(c)
        k = int(np.searchsorted(ws, start, side="left"))
        if k >= len(ws) or ws[k] != start:
            return None
        while k < len(ws) and we[k] < stop:
            k += 1
        if k >= len(ws) or we[k] != stop:
            return None  # the connective is part of a longer word
        k += 1
        conn_end = stop
        while k < len(ws) and ws[k] < end and all(ch in AFTER or ch.isspace() for ch in text[ws[k]:we[k]]):
            stop = int(we[k])
            k += 1
        if c in NEEDS_COMMA and not any(ch in AFTER for ch in text[conn_end:stop]):
            return None
        return stop
    return None


def clause_inside(doc: Document, cut: int, end: int) -> bool:
    """Whether the rest of sentence B after a subordinating connective, [cut, end), holds more
    than the connective's own clause: a clause separator, or a word of :data:`MAIN_CLAUSE_WORDS`
    (如果……就, 因为……所以, 只要……都), both signs that B's main clause follows."""
    ws, we = doc.words.starts, doc.words.ends
    k = int(np.searchsorted(ws, cut, side="left"))
    text = doc.text
    for a, b in zip(ws[k:].tolist(), we[k:].tolist()):
        if a >= end:
            break
        w = text[a:b]
        if w in MAIN_CLAUSE_WORDS or any(ch in CLAUSE_SEPARATORS for ch in w):
            return True
    return False


def _tokens_from(doc: Document, a: int, b: int, cut: int) -> tuple[int, int]:
    """The sentence's token range [a, b) without the tokens before character ``cut``."""
    return int(np.searchsorted(doc.tokens.starts[a:b], cut, side="left")) + a, b


@register(TASK, columns=("segment_sources",),
          traits=("pairs", "sentence_label"), help="the discourse relation a connective marks (ERNIE 2.0)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    pairs = PairExamples(ctx, TASK)
    for doc in docs:
        toks = doc.tokens
        sents = doc.sentences.tolist()
        bounds = np.searchsorted(toks.starts, doc.sentences[:, 0], side="left").tolist() + [len(toks)]
        n = 0
        for i in range(len(sents) - 1):
            (sa, ea), (sb, eb) = sents[i], sents[i + 1]
            m = _OPENING.match(doc.text, sb, eb)
            if m is None:
                continue
            word_b = m[1]
            cut_b = _leading(doc, sb, eb, [word_b])
            if cut_b is None:  # inside a longer word, or an ambiguous connective without its comma
                ctx.events["discourse_relation_connective_not_taken"] += 1
                continue
            if word_b in SUBORDINATING and clause_inside(doc, cut_b, eb):
                ctx.events["discourse_relation_clause_inside_b"] += 1
                continue
            label = _LOOKUP[word_b]
            ra = (bounds[i], bounds[i + 1])
            cut_a = _leading(doc, sa, ea, sorted(PAIRED.get(RELATIONS[label][0], []), key=len, reverse=True))
            if cut_a is not None:
                ra = _tokens_from(doc, *ra, cut_a)
                ctx.events["discourse_relation_paired_connective"] += 1
            rb = _tokens_from(doc, bounds[i + 1], bounds[i + 2], cut_b)
            if not any(not is_punct_word(doc.text[s:e]) for s, e in zip(toks.starts[rb[0]:rb[1]].tolist(),
                                                                        toks.ends[rb[0]:rb[1]].tolist())) \
                    or ra[1] <= ra[0]:
                ctx.events["discourse_relation_nothing_left"] += 1
                continue
            pairs.add(Segment(doc, [ra]), Segment(doc, [rb]), example_id=f"{doc.id}#{TASK}{n}", label=label,
                      doc_id=doc.id)
            n += 1
    yield from pairs.build()


@register_check(TASK)
def check_discourse_relation(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    bad = check_pair(row, ctx, len(RELATIONS))
    src = row.get("segment_sources") or []
    if not bad and len(src) == 2:
        if not (src[0]["doc_id"] == src[1]["doc_id"] == row["doc_id"]) or src[0]["end"] > src[1]["start"]:
            bad.append("the two sentences are not in order in the row's document")
    return bad
