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
_END = re.compile(
    r"(?:[。！？!?；;]+|…+|\.{3,}|(?<=[A-Za-z\)\]\"'”’])\.(?=\s|$|[\u4e00-\u9fff])|(?<![A-Z])(?<![A-Z]\.[A-Z])\.(?=\s+[A-Z\u4e00-\u9fff]))"
    r"[" + re.escape(_CLOSE) + r"]*"
    r"|\n"
)


def split_sentences(text: str) -> np.ndarray:
    """(n, 2) int32 array of [start, end) spans; empty text gives shape (0, 2)."""
    if not text:
        return np.zeros((0, 2), dtype=np.int32)
    ends = [m.end() for m in _END.finditer(text)]
    bounds = [0]
    for e in ends:
        if e > bounds[-1] and e < len(text):
            bounds.append(e)
    bounds.append(len(text))
    spans = np.array(list(zip(bounds[:-1], bounds[1:])), dtype=np.int32)
    return spans


def sentence_texts(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text).tolist()]
