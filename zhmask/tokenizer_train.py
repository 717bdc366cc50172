"""Train a WordPiece vocabulary with the tokenizers library, BERT-Chinese style."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from zhmask.steps.tokenize import SPECIALS


def _texts(inputs: list[str], fmt: str, text_field: str) -> Iterator[str]:
    from zhmask.steps.normalize import Normalizer
    from zhmask.steps.read import expand_inputs, read_file

    norm = Normalizer()
    for f in expand_inputs(inputs, fmt):
        for raw in read_file(f, fmt=fmt, doc_sep="line", text_field=text_field, title_field=None,
                             on_decode_error="replace"):
            if not raw.reject:
                yield norm(raw.text)


def train_wordpiece(inputs: list[str], out: str | Path, *, vocab_size: int = 21128, min_frequency: int = 2,
                    fmt: str = "auto", text_field: str = "text") -> Path:
    from tokenizers.implementations import BertWordPieceTokenizer

    tk = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
    tk.train_from_iterator(_texts(inputs, fmt, text_field), vocab_size=vocab_size, min_frequency=min_frequency,
                           special_tokens=list(SPECIALS), limit_alphabet=20000, wordpieces_prefix="##")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tk.save_model(str(out))
    tk.save(str(out / "tokenizer.json"))
    return out / "vocab.txt"
