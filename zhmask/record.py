"""The one record type that flows through every stage.

A :class:`Document` starts as (id, text, title, meta).  Each stage enriches it with
character-offset spans into ``text`` (the normalised text):

* ``sentences``: ``(n, 2)`` int array of [start, end) spans that together cover the text;
* ``words``: :class:`Words` (start, end, POS tag) from the segmenter, never crossing a
  sentence boundary;
* ``entities``: list of :class:`Span` (start, end, type) over whole words;
* ``tokens``: :class:`Tokens` (ids, char spans, index of the word each token belongs to).

No stage re-parses strings another stage produced.  Examples (:class:`Example`) are cut from
documents by task generators and hold token-level data only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The sentence-level class of an example (NSP/SOP and the other sentence-level tasks), named as
# transformers' BertForPreTraining takes it: a column named ``label`` is renamed to ``labels`` by
# transformers' collators and Trainer, overwriting the token-level MLM labels.  NO_LABEL (the
# losses' ignore index) where the task has no sentence-level class.  Read and write it through
# these names.
SENTENCE_LABEL = "next_sentence_label"
NO_LABEL = -100


@dataclass(frozen=True)
class Span:
    """A typed character span [start, end) of a document's text."""

    start: int
    end: int
    type: str


@dataclass
class Words:
    """Segmented words as parallel arrays (character offsets into the document text)."""

    starts: np.ndarray  # int32
    ends: np.ndarray  # int32
    pos: list[str]

    def __len__(self) -> int:
        return len(self.starts)

    def texts(self, text: str) -> list[str]:
        return [text[s:e] for s, e in zip(self.starts.tolist(), self.ends.tolist())]


@dataclass
class Tokens:
    """Tokenizer output aligned to words: ``word[i]`` is the index of token i's word."""

    ids: np.ndarray  # int32
    starts: np.ndarray  # int32, character offsets
    ends: np.ndarray  # int32
    word: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Document:
    id: str
    text: str
    title: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    sentences: np.ndarray | None = None
    words: Words | None = None
    entities: list[Span] = field(default_factory=list)
    tokens: Tokens | None = None

    def sentence_texts(self) -> list[str]:
        assert self.sentences is not None
        return [self.text[s:e] for s, e in self.sentences.tolist()]

    def word_texts(self) -> list[str]:
        assert self.words is not None
        return self.words.texts(self.text)


@dataclass
class Example:
    """One training example, token level.  Columns map one-to-one onto the shard schema.

    ``word_ids`` number the words of the example from 0 (-1 for special tokens), as
    transformers' ``BatchEncoding.word_ids()`` does.  ``entities`` are token-level
    [start, end) spans with a type (ERNIE knowledge units).  ``extra`` carries the columns
    that only some tasks fill (see :mod:`zhmask.schema`).
    """

    doc_id: str
    example_id: str
    task: str
    input_ids: np.ndarray
    token_type_ids: np.ndarray
    word_ids: np.ndarray
    labels: np.ndarray | None = None
    label: int = -100  # the sentence-level class (schema.SENTENCE_LABEL); -100: none
    entities: list[tuple[int, int, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)
