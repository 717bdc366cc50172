"""Render the worked example of docs/ernie_gen.md.

``python -m zhmask.generation.render`` prints the markdown block; ``--write docs/ernie_gen.md``
replaces the text between the ``<!-- render:begin -->`` and ``<!-- render:end -->`` markers.
Everything comes from the real pipeline: the segmenter and tokenizer of the default
configuration, collocations from the bundled span table (``span_stats=table``), and
the ``ernie_gen`` example builder with the first seed (from 0 up) that gives two fragments and
a multi-word span.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

SENTENCE = "1月22日，再就业工程取得新的成绩。"
BEGIN, END = "<!-- render:begin -->", "<!-- render:end -->"


def build() -> str:
    from zhmask.config import BuildConfig
    from zhmask.generation.attention import render, row_masks
    from zhmask.generation.fragments import fragment_offsets
    from zhmask.labels.ernie_gen import example_from_tokens, unit_collocations
    from zhmask.paths import default_corpus
    from zhmask.pipeline import Pipeline, example_row
    from zhmask.rng import rng_for
    from zhmask.steps.read import RawDoc

    cfg = BuildConfig(tasks=["ernie_gen"], options={"noise_rate": 0.1})
    pipe = Pipeline(cfg)
    lines = [ln for ln in default_corpus().read_text(encoding="utf-8").splitlines() if ln.strip()]
    docs = [d for d in (pipe.document(RawDoc(f"pd:{i}", ln))[0] for i, ln in enumerate(lines)) if d is not None]
    colloc = unit_collocations(docs, pipe.ctx)
    doc, _ = pipe.document(RawDoc("example:1", SENTENCE))
    toks = doc.tokens
    for seed in range(1000):
        rng = rng_for(seed, "example:1#ernie_gen0", "ernie_gen_fragments")  # the first seed that shows both
        ex = example_from_tokens(doc, "example:1#ernie_gen0", toks.ids, toks.word, pipe.ctx, colloc, rng)
        if ex is None:
            continue
        sb = ex.extra["span_bounds"].tolist()
        fb = ex.extra["fragment_bounds"].tolist()
        if len(fb) == 4 and any(b - a > 1 and _multiword(ex, a, b) for a, b in zip(sb, sb[1:])):
            break
    else:  # pragma: no cover
        raise SystemExit("no seed gives two fragments and a multi-word span")
    row = example_row(ex, ex.input_ids, np.full(len(ex.input_ids), -100, dtype=np.int32))
    tk = pipe.tok.decode_tokens
    src, tgt = row["source_ids"], row["target_ids"]
    ns = len(src)
    words = doc.word_texts()
    offs = fragment_offsets(fb).tolist()
    frag_txt = ["".join(tk(tgt[a:b])) for a, b in zip(offs, offs[1:])]
    span_txt = ["".join(tk(tgt[a:b])) for a, b in zip(sb, sb[1:])]
    noised = row["input_ids"][ns:ns + len(tgt)]
    out = ["```text",
           f"text          {SENTENCE}",
           f"words         {' | '.join(words)}",
           f"tokens        {len(toks)} (25% = {int(np.floor(0.25 * len(toks) + 0.5))} target tokens); fragment seed {seed}",
           f"source_ids    {' '.join(tk(src))}",
           f"target_ids    {' '.join(tk(tgt))}",
           f"fragments     {' / '.join(frag_txt)}",
           f"spans         {' / '.join(span_txt)}",
           f"fragment_bounds {fb}   (original token positions, pairs)",
           f"span_bounds   {sb}   (target offsets)",
           f"noise         positions {row['noise_positions'].tolist()} -> inputs {' '.join(tk(noised))}",
           "```", ""]
    names = [f"s{i}" for i in range(ns)] + [f"t{i}" for i in range(len(tgt) + 1)]
    attn = [f"A{i}" for i in range(len(tgt) + 1)]
    legend = ", ".join(f"{n}={t}" for n, t in zip(names, tk(list(src) + list(tgt)) + ["[SEP]"]))
    m = row_masks(row)
    out += [f"Positions: {legend}; A*i* is the [ATTN] query of target position *i*. "
            "■ = may attend, · = may not.", "",
            "Contextual flow (queries: source and target positions; keys: the same):", "",
            "```text", render(m.contextual, names, names), "```", "",
            "Word-by-word generation flow (queries: [ATTN] per target position; keys: contextual positions, then the flow's own [ATTN] queries):", "",
            "```text", render(m.word, attn, names + attn), "```", "",
            "Span-by-span generation flow (same keys; a query sees only the context before its own span):", "",
            "```text", render(m.span, attn, names + attn), "```"]
    return "\n".join(out)


def _multiword(ex, a: int, b: int) -> bool:
    ns = len(ex.extra["source_ids"])
    w = ex.word_ids[ns + a:ns + b]
    return len(set(w.tolist())) > 1


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", help="markdown file whose render block is replaced")
    args = ap.parse_args(argv)
    block = build()
    if not args.write:
        print(block)
        return
    p = Path(args.write)
    text = p.read_text(encoding="utf-8")
    pat = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pat.search(text):
        sys.exit(f"{p}: no {BEGIN} ... {END} block")
    p.write_text(pat.sub(lambda _: f"{BEGIN}\n{block}\n{END}", text), encoding="utf-8")


if __name__ == "__main__":
    main()
