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
    ends = np.fromiter((m.end() for m in _END.finditer(joined)), dtype=np.int64)
    doc = np.searchsorted(doc_starts, ends, side="right") - 1
    inside = (ends > doc_starts[doc]) & (ends < doc_ends[doc])
    cut = ends[inside]
    counts = np.bincount(doc[inside], minlength=len(doc_starts)) + 1
    starts = np.sort(np.concatenate([doc_starts, cut]))
    stops = np.sort(np.concatenate([cut, doc_ends]))
    return starts, stops, counts
