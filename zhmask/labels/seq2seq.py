"""``seq2seq``: (source, target) fine-tuning pairs from JSONL/table records, ERNIE-GEN layout.

``--tasks seq2seq --source-field text --target-field title`` makes one example per record: the
source field is read as the document text (so it is normalised, segmented and tokenised like
any document), the target field (a scalar, kept in the document's ``meta``, or the
``--title-field`` when it names the same column) goes through the same document stages
(``ctx.normalize``, ``ctx.enrich``: sentences, words, entities, tokens).
The row has the ``ernie_gen`` layout (``input_ids = [CLS] source [SEP] noised(target) [SEP]``)
with ``span_bounds`` at the target's word boundaries and no ``fragment_bounds``.  The target is
cut to ``max_target_length`` tokens and the source to what is left of ``max_seq_length``, both
at word boundaries where a word boundary exists.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from zhmask.checks import register_check
from zhmask.errors import ZhmaskError
from zhmask.generation.fragments import word_runs
from zhmask.labels import TASKS, register
from zhmask.labels.ernie_gen import COLUMNS, assemble, check_layout, validate_noise
from zhmask.record import Document, Example

OPTIONS: dict[str, Any] = {"noise_rate": 0.05, "noise": "static", "max_target_length": 64}


def _validate(config) -> None:
    if not config.source_field or not config.target_field:
        raise ZhmaskError("--tasks seq2seq needs --source-field and --target-field (e.g. --source-field text --target-field title)")
    if config.source_field == config.target_field:
        raise ZhmaskError(f"--source-field and --target-field are the same column ({config.source_field!r})")
    validate_noise(config, "seq2seq")
    v = TASKS.option("seq2seq", config, "max_target_length")
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= config.max_seq_length - 4:
        raise ZhmaskError(f"--option max_target_length: expected an integer in [1, max_seq_length - 4], got {v!r}")


def target_text(doc: Document, config) -> str | None:
    v = doc.meta.get(config.target_field)
    if v is None and config.title_field == config.target_field:
        v = doc.title
    if v is None or isinstance(v, bool):
        return None
    return str(v)


def _cut(word_of_token: np.ndarray, limit: int) -> int:
    """The largest cut <= limit at a word start (or limit itself inside a single long word)."""
    if len(word_of_token) <= limit:
        return len(word_of_token)
    cut = limit
    while cut > 0 and word_of_token[cut] == word_of_token[cut - 1]:
        cut -= 1
    return cut or limit


@register("seq2seq", options=OPTIONS, validate=_validate,
          columns=COLUMNS, traits=("generation",), help="source/target pairs from --source-field/--target-field")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    cfg = ctx.config
    max_tgt = int(TASKS.option("seq2seq", cfg, "max_target_length"))
    rate = float(TASKS.option("seq2seq", cfg, "noise_rate"))
    mode = TASKS.option("seq2seq", cfg, "noise")
    targets = []  # the targets, normalised, then through the pipeline's document stages at once
    for doc in docs:
        raw = target_text(doc, cfg)
        targets.append(Document(f"{doc.id}#target", ctx.normalize(raw) if raw is not None else ""))
    ctx.enrich([t for t in targets if t.text])
    for doc, target in zip(docs, targets):
        if not target.text:
            ctx.events["seq2seq_missing_target"] += 1
            continue
        ttoks = target.tokens
        if len(ttoks) == 0:
            ctx.events["seq2seq_missing_target"] += 1
            continue
        t_end = _cut(ttoks.word, max_tgt)
        if t_end < len(ttoks):
            ctx.events["seq2seq_target_truncated"] += 1
        budget = cfg.max_seq_length - 3 - t_end
        stoks = doc.tokens
        s_end = _cut(stoks.word, budget)
        if s_end < len(stoks):
            ctx.events["seq2seq_source_truncated"] += 1
        s_start, s_count = word_runs(stoks.word[:s_end])
        t_start, t_count = word_runs(ttoks.word[:t_end])
        span_bounds = np.concatenate([[0], np.cumsum(t_count)]).astype(np.int32)
        src_words = np.repeat(np.arange(len(s_start), dtype=np.int32), s_count)
        tgt_words = np.repeat(np.arange(len(t_start), dtype=np.int32) + len(s_start), t_count)
        yield assemble(doc_id=doc.id, example_id=f"{doc.id}#seq2seq0", task="seq2seq",
                       source=stoks.ids[:s_end], target=ttoks.ids[:t_end], source_words=src_words,
                       target_words=tgt_words, span_bounds=span_bounds, fragment_bounds=None, ctx=ctx,
                       noise_rate=rate, noise_mode=mode)


@register_check("seq2seq")
def check_seq2seq(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    bad = check_layout(row, ctx)
    if not row.get("target_ids"):
        bad.append("empty target_ids")
    return bad
