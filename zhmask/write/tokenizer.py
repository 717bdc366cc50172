"""The build's tokenizer as a Hugging Face tokenizer directory.

``write_tokenizer(tok, directory)`` writes ``vocab.txt``, ``tokenizer.json``,
``tokenizer_config.json`` and ``special_tokens_map.json`` so that
``AutoTokenizer.from_pretrained(directory)`` and ``BertTokenizerFast.from_pretrained(directory)``
load the tokenizer that made the shards' ids (same normalisation, WordPiece vocabulary and
special tokens; ``[CLS] A [SEP] B [SEP]`` templates).  It needs only the ``tokenizers`` package:
a build writes these files into its output directory without importing transformers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zhmask.errors import ZhmaskError
from zhmask.write.shards import write_json_atomic

SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                  "mask_token": "[MASK]"}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def write_tokenizer(tok: Any, directory: str | Path, lowercase: bool = True, max_length: int = 512) -> Path:
    """Write ``tok`` (a :class:`zhmask.steps.tokenize.WordTokenizer`) into ``directory`` (created).
    A write error (a full disk) raises :class:`ZhmaskError` naming the file and leaves no partial
    file under a final name."""
    d = Path(directory)
    tmp = d / "vocab.txt.tmp"
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(tok.id_to_token) + "\n", encoding="utf-8")
        tmp.replace(d / "vocab.txt")
        tmp = d / "tokenizer.json.tmp"
        tok.tk.save(str(tmp))
        tmp.replace(d / "tokenizer.json")
    except Exception as err:  # OSError, or tokenizers' own exception type for an I/O error
        try:
            tmp.unlink()
        except OSError:
            pass
        raise ZhmaskError(f"cannot write {tmp.with_suffix('')}: {' '.join(str(err).split())}") from None
    if tok.mode == "fast":  # a WordPiece vocab.txt with BERT's normalisation: a BERT tokenizer
        config: dict[str, Any] = {"tokenizer_class": "BertTokenizer", "do_lower_case": bool(lowercase),
                                  "strip_accents": None if lowercase else False, "tokenize_chinese_chars": True}
    else:  # the user's tokenizer.json, as it is
        config = {"tokenizer_class": "PreTrainedTokenizerFast"}
    config.update(model_max_length=int(max_length), clean_up_tokenization_spaces=False, **SPECIAL_TOKENS)
    write_json_atomic(d / "tokenizer_config.json", config)
    write_json_atomic(d / "special_tokens_map.json", dict(SPECIAL_TOKENS))
    return d

