"""``capitalization``: ERNIE 2.0's capitalization prediction task (Sun et al. 2020).

For every Latin-script word of a segment (``[CLS] text [SEP]``, whole sentences packed as
``mlm``), ``token_labels`` says whether the word is capitalised in the original text: 1 when its
first Latin letter is upper case (``Beijing``, ``NBA``, ``3D``), 0 otherwise (``iPhone``,
``app``).  The label is read from the document's normalised text, not from the tokens (the
default tokenizer lowercases).  Other words are not labelled (-100); segments without a Latin
word are skipped (``capitalization_no_latin_word``).  Useful for mixed Chinese-English text.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

from zhmask.checks import register_check
from zhmask.labels import register
from zhmask.labels.wordaware import check_single, iter_chunks, labelled_examples
from zhmask.record import Document, Example

TASK = "capitalization"
CLASSES = {0: "Latin-script word not capitalised", 1: "capitalised (first Latin letter upper case)"}
LATIN = re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff\uff21-\uff3a\uff41-\uff5a]")


def word_label(word: str) -> int:
    """1 capitalised, 0 not, -100 no Latin letter."""
    m = LATIN.search(word)
    if m is None:
        return -100
    return int(m.group().isupper())


@register(TASK, columns=("segment_sources", "token_labels"),
          traits=("token_labels",), help="whether a Latin word is capitalised (ERNIE 2.0)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    for doc, chunks in iter_chunks(docs, ctx, TASK):
        if LATIN.search(doc.text) is None:
            continue
        words = doc.word_texts()
        yield from labelled_examples(doc, chunks, lambda w: word_label(words[w]), ctx, task=TASK,
                                     skip_event="capitalization_no_latin_word")


@register_check(TASK)
def check_capitalization(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    return check_single(row, ctx, {0, 1})
