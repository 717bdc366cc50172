"""``ernie_gen``: ERNIE-GEN pretraining examples (Xiao et al. 2020), see docs/ernie_gen.md.

Per example (whole sentences of one document packed as ``mlm`` does, up to
``max_seq_length - 3`` tokens): multi-granularity target fragments of whole words
(:mod:`zhmask.generation.fragments`), span-by-span targets from the unit's n-gram collocations
(:mod:`zhmask.generation.ngram_stats`), noise on the target inputs
(:mod:`zhmask.generation.noise`).  Row layout::

    input_ids   = source_ids + noised(target_ids) + [SEP]
    source_ids  = [CLS] source [SEP]          (the example with its fragments removed)
    target_ids  = fragment_1 ... fragment_k   (clean)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from zhmask.checks import register_check
from zhmask.errors import ZhmaskError
from zhmask.generation.fragments import (fragment_offsets, reassemble, sample_fragments, split_source_target,
                                         word_runs)
from zhmask.generation.ngram_stats import NgramCounter, split_spans
from zhmask.generation.noise import STAGE as NOISE_STAGE
from zhmask.generation.noise import noise_target
from zhmask.labels import TASKS, register
from zhmask.record import Document, Example
from zhmask.rng import Draws, rng_for
from zhmask.steps.pack import pack_ranges, sentence_token_ranges

# built by scripts/build_span_table.py from bundled text (docs/ernie_gen.md)
DEFAULT_SPAN_TABLE = Path(__file__).resolve().parent.parent / "data" / "span_table.tsv"

OPTIONS: dict[str, Any] = {
    "target_ratio": 0.25,
    "fragment_lengths": [[1, 4], [4, 32]],
    "fragment_probs": [0.4, 0.6],
    "noise_rate": 0.05,
    "noise": "static",
    "span_stats": "table",
    "span_table": "",
    "span_t": 2.576,
    "span_min_words": 2000,
    "ngram_cap": 200_000,
}


def _num(config, task: str, key: str) -> float:
    v = TASKS.option(task, config, key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ZhmaskError(f"--option {key}: expected a number, got {v!r}")
    return float(v)


def validate_noise(config, task: str) -> None:
    rate = _num(config, task, "noise_rate")
    if not 0.0 <= rate < 1.0:
        raise ZhmaskError(f"--option noise_rate must be in [0, 1), got {rate}")
    mode = TASKS.option(task, config, "noise")
    if mode not in ("static", "dynamic"):
        raise ZhmaskError(f"--option noise: {mode!r} is not one of static, dynamic")


def _validate(config) -> None:
    t = "ernie_gen"
    ratio = _num(config, t, "target_ratio")
    if not 0.0 < ratio <= 0.9:
        raise ZhmaskError(f"--option target_ratio must be in (0, 0.9], got {ratio}")
    lens = TASKS.option(t, config, "fragment_lengths")
    probs = TASKS.option(t, config, "fragment_probs")
    ok = isinstance(lens, list) and lens and all(
        isinstance(x, list) and len(x) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in x)
        and 1 <= x[0] <= x[1] for x in lens)
    if not ok:
        raise ZhmaskError(f"--option fragment_lengths: expected a list of [min, max] token counts (1 <= min <= max), got {lens!r}")
    if not (isinstance(probs, list) and len(probs) == len(lens)
            and all(isinstance(p, (int, float)) and not isinstance(p, bool) and p >= 0 for p in probs)
            and abs(sum(probs) - 1.0) < 1e-6):
        raise ZhmaskError(f"--option fragment_probs: expected {len(lens)} non-negative numbers summing to 1, got {probs!r}")
    validate_noise(config, t)
    mode = TASKS.option(t, config, "span_stats")
    if mode not in ("table", "unit", "none"):
        raise ZhmaskError(f"--option span_stats: {mode!r} is not one of table, unit, none")
    table = TASKS.option(t, config, "span_table")
    if not isinstance(table, str):
        raise ZhmaskError(f"--option span_table: expected a file path, got {table!r}")
    if table and mode != "table":
        raise ZhmaskError(f"--option span_table needs span_stats=table (span_stats is {mode})")
    if mode == "table":
        from zhmask.generation.span_table import read_table

        read_table(span_table_path(config), _num(config, t, "span_t"))  # a bad file stops the build here
    _num(config, t, "span_t")
    for key, lo in (("span_min_words", 0), ("ngram_cap", 1000)):
        v = TASKS.option(t, config, key)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ZhmaskError(f"--option {key}: expected an integer >= {lo}, got {v!r}")


def span_table_path(config, task: str = "ernie_gen") -> Path:
    """The span table a ``span_stats=table`` build reads: ``span_table``, or the bundled one."""
    table = TASKS.option(task, config, "span_table")
    return Path(table) if table else DEFAULT_SPAN_TABLE


def span_table_sha256(config) -> str | None:
    """The sha256 of the span table the build reads, None when it reads none (fingerprint)."""
    t = "ernie_gen"
    if t not in config.tasks or TASKS.option(t, config, "span_stats") != "table":
        return None
    from zhmask.generation.span_table import file_sha256

    return file_sha256(span_table_path(config))


def unit_collocations(docs: list[Document], ctx, task: str = "ernie_gen"):
    """The (bigram, trigram) collocations: the span table's (``span_stats=table``), the unit's
    own (``unit``; None when it has too few words), or None (``none``: word spans)."""
    cfg = ctx.config
    mode = TASKS.option(task, cfg, "span_stats")
    if mode == "none":
        return None
    if mode == "table":
        from zhmask.generation.span_table import read_table

        return read_table(span_table_path(cfg, task), float(TASKS.option(task, cfg, "span_t")))
    counter = NgramCounter(int(TASKS.option(task, cfg, "ngram_cap")))
    for doc in docs:
        counter.add(doc.word_texts(), doc.words.pos)
    if counter.pruned:
        ctx.events["ernie_gen_ngram_keys_pruned"] += counter.pruned
    if counter.n < int(TASKS.option(task, cfg, "span_min_words")):
        ctx.events["ernie_gen_unit_without_ngram_stats"] += 1
        return None
    return counter.collocations(float(TASKS.option(task, cfg, "span_t")))


# the columns of the layout :func:`assemble` writes (``ernie_gen`` and ``seq2seq`` rows)
COLUMNS = ("source_ids", "target_ids", "fragment_bounds", "span_bounds", "noise_positions")


def assemble(*, doc_id: str, example_id: str, task: str, source: np.ndarray, target: np.ndarray,
             source_words: np.ndarray, target_words: np.ndarray, span_bounds: np.ndarray,
             fragment_bounds: np.ndarray | None, ctx, noise_rate: float, noise_mode: str) -> Example:
    """The row layout shared by ``ernie_gen`` and ``seq2seq``; see the module docstring."""
    tok = ctx.tok
    cls = np.array([tok.cls_id], dtype=np.int32)
    sep = np.array([tok.sep_id], dtype=np.int32)
    neg = np.array([-1], dtype=np.int32)
    source_ids = np.concatenate([cls, source, sep]).astype(np.int32)
    noise_positions = None
    target_in = target
    if noise_mode == "static":
        rng = rng_for(ctx.config.seed, example_id, NOISE_STAGE, 0)
        target_in, noise_positions = noise_target(target, noise_rate, rng, tok.replaceable_ids)
    input_ids = np.concatenate([source_ids, target_in, sep]).astype(np.int32)
    token_type_ids = np.concatenate([np.zeros(len(source_ids), np.int8), np.ones(len(target) + 1, np.int8)])
    word_ids = np.concatenate([neg, source_words, neg, target_words, neg]).astype(np.int32)
    extra: dict[str, Any] = {
        "source_ids": source_ids,
        "target_ids": target.astype(np.int32),
        "fragment_bounds": fragment_bounds,
        "span_bounds": span_bounds.astype(np.int32),
        "noise_positions": noise_positions,
    }
    return Example(doc_id=doc_id, example_id=example_id, task=task, input_ids=input_ids,
                   token_type_ids=token_type_ids, word_ids=word_ids, extra=extra)


def example_from_tokens(doc: Document, example_id: str, ids: np.ndarray, word_of_token: np.ndarray,
                        ctx, colloc, rng: Draws) -> Example | None:
    """One ``ernie_gen`` example from a contiguous run of a document's tokens."""
    cfg = ctx.config
    t = "ernie_gen"
    word_start, word_tokens = word_runs(word_of_token)
    lens = [tuple(x) for x in TASKS.option(t, cfg, "fragment_lengths")]
    probs = TASKS.option(t, cfg, "fragment_probs")
    plan = sample_fragments(word_tokens, rng, float(TASKS.option(t, cfg, "target_ratio")), lens, probs)
    if not plan.frags:
        ctx.events["ernie_gen_example_too_short"] += 1
        return None
    if plan.gap_clipped:
        ctx.events["ernie_gen_fragment_clipped_to_gap"] += plan.gap_clipped
    source, target, fbounds = split_source_target(ids, word_start, plan, len(word_start))
    run_id = np.repeat(np.arange(len(word_start), dtype=np.int32), word_tokens)
    in_target = np.zeros(len(ids), dtype=bool)
    for s, e in fbounds.reshape(-1, 2).tolist():
        in_target[s:e] = True
    words = doc.word_texts() if colloc is not None else None
    names = [words[w] for w in word_of_token[word_start].tolist()] if words is not None else []
    spans = split_spans(names, plan.frags, colloc)
    cum = np.concatenate([[0], np.cumsum(word_tokens)])
    span_len = np.array([cum[b] - cum[a] for a, b in spans], dtype=np.int64)
    span_bounds = np.concatenate([[0], np.cumsum(span_len)]).astype(np.int32)
    ctx.events["ernie_gen_multiword_spans"] += sum(1 for a, b in spans if b - a > 1)
    return assemble(doc_id=doc.id, example_id=example_id, task=t, source=source, target=target,
                    source_words=run_id[~in_target], target_words=run_id[in_target], span_bounds=span_bounds,
                    fragment_bounds=fbounds, ctx=ctx, noise_rate=float(TASKS.option(t, cfg, "noise_rate")),
                    noise_mode=TASKS.option(t, cfg, "noise"))


@register("ernie_gen", options=OPTIONS, validate=_validate,
          columns=COLUMNS, traits=("generation",), help="span-by-span generation of target fragments (ERNIE-GEN)")
def generate(docs: list[Document], ctx) -> Iterator[Example]:
    cfg = ctx.config
    colloc = unit_collocations(docs, ctx)
    max_tokens = cfg.max_seq_length - 3  # [CLS] source [SEP] target [SEP]
    for doc in docs:
        ranges = sentence_token_ranges(doc, max_tokens, ctx.events)
        chunks = pack_ranges(ranges, max_tokens, cfg.short_seq_prob, ctx.rng(doc.id, "ernie_gen_pack"))
        toks = doc.tokens
        n = 0
        for chunk in chunks:
            a, b = chunk[0][0], chunk[-1][1]
            example_id = f"{doc.id}#ernie_gen{n}"
            ex = example_from_tokens(doc, example_id, toks.ids[a:b], toks.word[a:b], ctx, colloc,
                                     ctx.rng(example_id, "ernie_gen_fragments"))
            if ex is not None:
                n += 1
                yield ex


# ---------------------------------------------------------------------------------- verify
def _ints(v) -> list[int]:
    return [] if v is None else [int(x) for x in v]


def check_layout(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    """Checks shared by ernie_gen and seq2seq rows."""
    bad: list[str] = []
    src, tgt, ids = _ints(row.get("source_ids")), _ints(row.get("target_ids")), _ints(row.get("input_ids"))
    labels = _ints(row.get("labels")) or [-100] * len(ids)
    cls_id, sep_id = ctx.get("cls_id"), ctx.get("sep_id")
    if len(src) < 2:
        return ["source_ids shorter than [CLS] [SEP]"]
    if cls_id is not None and src[0] != cls_id:
        bad.append("source_ids does not start with [CLS]")
    if sep_id is not None and src[-1] != sep_id:
        bad.append("source_ids does not end with [SEP]")
    if len(ids) != len(src) + len(tgt) + 1:
        return bad + [f"input_ids has {len(ids)} tokens, expected len(source_ids) + len(target_ids) + 1 = {len(src) + len(tgt) + 1}"]
    noise = _ints(row.get("noise_positions"))
    if noise != sorted(set(noise)) or any(not 0 <= p < len(tgt) for p in noise):
        bad.append("noise_positions not sorted, unique and inside the target")
    noisy = set(noise)
    expect = src + tgt + ([sep_id] if sep_id is not None else [ids[-1]])
    for i, (x, y) in enumerate(zip(ids, expect)):
        if x != y and labels[i] == -100 and (i - len(src)) not in noisy:
            bad.append(f"input_ids[{i}] differs from source_ids/target_ids without a label or noise")
            break
    sb = _ints(row.get("span_bounds"))
    if sb:
        if sb[0] != 0 or sb[-1] != len(tgt) or any(x >= y for x, y in zip(sb, sb[1:])):
            bad.append("span_bounds not strictly increasing from 0 to len(target_ids)")
    return bad


@register_check("ernie_gen")
def check_ernie_gen(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    bad = check_layout(row, ctx)
    src, tgt = _ints(row.get("source_ids")), _ints(row.get("target_ids"))
    fb = _ints(row.get("fragment_bounds"))
    n = len(src) - 2 + len(tgt)
    if not fb or len(fb) % 2:
        return bad + ["fragment_bounds empty or not (start, end) pairs"]
    if any(x > y for x, y in zip(fb, fb[1:])) or any(s >= e for s, e in zip(fb[::2], fb[1::2])) or fb[0] < 0 or fb[-1] > n:
        return bad + ["fragment_bounds not monotone non-empty pairs inside the original sequence"]
    if sum(e - s for s, e in zip(fb[::2], fb[1::2])) != len(tgt):
        return bad + ["fragments do not add up to target_ids"]
    offs = fragment_offsets(fb).tolist()
    sb = set(_ints(row.get("span_bounds")))
    if sb and not set(offs) <= sb:
        bad.append("a fragment boundary is not a span boundary")
    # reassemble the original word ids: non-decreasing by steps of 0 or 1, fragments on word edges
    wid = _ints(row.get("word_ids"))
    ns = len(src)
    orig_w = reassemble(np.array(wid[1:ns - 1], dtype=np.int64), np.array(wid[ns:ns + len(tgt)], dtype=np.int64), fb)
    d = np.diff(orig_w)
    if len(orig_w) and (orig_w[0] != 0 or (d < 0).any() or (d > 1).any()):
        bad.append("source and fragments do not reassemble into the original word order")
    elif any(0 < s < n and orig_w[s] == orig_w[s - 1] for s in fb):
        bad.append("a fragment boundary splits a word")
    return bad
