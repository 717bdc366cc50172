"""Sentence splitting for Chinese and mixed text, as character spans covering the text.

A sentence ends after a run of 。！？!?；; or an ellipsis (…… or ...), together with any closing
quotes and brackets that follow; after an English full stop followed by a space (not in
"3.5" or "U.S.A"); and at a newline (blank-line separated input, one sentence a line).
Spaces after the end belong to the next sentence, so the spans cover the text exactly.
"""
from __future__ import annotations

import re

import numpy as np

_CLOSE = "”’」』）)】》〉\"'］]}｝"
# characters that end a sentence on their own (the regex below adds "..." and English full stops);
# zhmask export finds sentence ends among token ids with these and _CLOSE
END_CHARS = "。！？!?；;…"
CLOSE_CHARS = _CLOSE
# the leading look-ahead names every character a match can begin with (the look-behinds of the
# full-stop alternatives are before their "."): the same matches, found about four times faster
_END = re.compile(
    r"(?=[。！？!?；;….\n])"
    r"(?:(?:[。！？!?；;]+|…+|\.{3,}|(?<=[A-Za-z\)\]\"'”’])\.(?=\s|$|[\u4e00-\u9fff])|(?<![A-Z])(?<![A-Z]\.[A-Z])\.(?=\s+[A-Z\u4e00-\u9fff]))"
    r"[" + re.escape(_CLOSE) + r"]*"
    r"|\n)"
)


def split_sentences_joined(joined: str, doc_starts: np.ndarray, doc_ends: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sentences of every document of ``joined`` (texts joined by ``"\\n"``, none
    beginning or ending with whitespace; document k is ``joined[doc_starts[k]:doc_ends[k]]``), in
    one regex pass: (starts, ends, counts), the sentences' spans in ``joined`` in order and the
    number of sentences of each document.

    The same spans as each text alone: no sentence end reaches past a document's last character
    (the separator matches on its own), and an end found at a document's edge is dropped either
    way; the look-arounds at a document's edge see the separator (whitespace) where the text alone
    sees its start or end, and none of them tells the two apart."""
    if '"' not in joined:
        ends = np.fromiter((m.end() for m in _END.finditer(joined)), dtype=np.int64)
        doc = np.searchsorted(doc_starts, ends, side="right") - 1
    else:
        ends, doc = _ascii_quote_ends(joined, doc_starts)
    inside = (ends > doc_starts[doc]) & (ends < doc_ends[doc])
    cut = ends[inside]
    counts = np.bincount(doc[inside], minlength=len(doc_starts)) + 1
    starts = np.sort(np.concatenate([doc_starts, cut]))
    stops = np.sort(np.concatenate([cut, doc_ends]))
    return starts, stops, counts


def _ascii_quote_ends(joined: str, doc_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sentence ends of ``joined`` and their documents where it holds ASCII double quotes:
    ``"`` opens as well as closes a quotation (normalisation maps “ ” to it where the vocabulary
    lacks them), so a ``"`` after a sentence end closes the sentence only when it closes a quote,
    i.e. when an odd number of ``"`` precede it in its document; an opening one starts the next
    sentence (``走吧。"你去吗？"`` is ``走吧。`` and ``"你去吗？"``, as ``走吧。“你去吗？”``)."""
    se = np.fromiter((x for m in _END.finditer(joined) for x in m.span()), dtype=np.int64).reshape(-1, 2)
    starts, ends = se[:, 0], se[:, 1].copy()
    doc = np.searchsorted(doc_starts, ends, side="right") - 1
    q = np.fromiter((m.start() for m in re.finditer('"', joined)), dtype=np.int64)
    k = np.searchsorted(q, starts)  # the first " at or after each match's start
    has = k < len(q)
    has[has] = q[k[has]] < ends[has]
    if has.any():
        before = k[has] - np.searchsorted(q, doc_starts[doc[has]])  # " earlier in the document
        opening = before % 2 == 0
        hit = np.flatnonzero(has)[opening]
        ends[hit] = q[k[hit]]
    return ends, doc
