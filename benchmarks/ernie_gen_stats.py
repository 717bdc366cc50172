"""ERNIE-GEN fragments and spans on held-out People's Daily: fragment lengths in tokens and the
share of multi-word spans, for each source of span statistics.

Reads ``corpora/pd1998_pos_train.txt`` under ``--shared`` (one paragraph a line, ``word/tag``),
strips the tags, and builds ``ernie_gen`` rows (``--max-seq-length``, default 512) from the
held-out lines (0-based index % 5 == 4), ``--lines-per-doc`` lines to a document.  Span
statistics, one build each:

* ``unit``: counted per work unit (``--docs-per-shard`` documents of the held-out split);
* ``table``: the bundled table (zhmask/data/span_table.tsv, built from text outside this split);
* ``table-train``: a table that ``zhmask span-table`` builds here from the training lines
  (index % 5 != 4), the corpus-level pass a user would run on their own corpus.

Prints one JSON line per build: fragments, mean fragment length in tokens and in words, share of
fragments over 32 tokens, spans, share of multi-word spans, tokens of target per example.
Runs with an older zhmask too (``--modes unit``), for the before figures.

    PYTHONPATH=$PWD python benchmarks/ernie_gen_stats.py --shared ../shared
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from zhmask.config import BuildConfig  # noqa: E402
from zhmask.pipeline import Pipeline  # noqa: E402
from zhmask.steps.read import RawDoc  # noqa: E402


def pd_lines(path: Path, held_out: bool) -> list[str]:
    out = []
    for i, ln in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if (i % 5 == 4) == held_out and ln.strip():
            out.append("".join(w.rsplit("/", 1)[0] for w in ln.split()))
    return out


def measure(raw: list[tuple[str, str]], options: dict, length: int, docs_per_shard: int) -> dict:
    cfg = BuildConfig(tasks=["ernie_gen"], masking="none", max_seq_length=length, options=dict(options),
                      docs_per_shard=docs_per_shard).validate()
    pipe = Pipeline(cfg)
    frag_tok, frag_words, span_words = [], [], []
    examples = 0
    for k in range(0, len(raw), docs_per_shard):  # one work unit at a time, as a build runs them
        docs = [d for d, _ in pipe.documents([RawDoc(i, t) for i, t in raw[k:k + docs_per_shard]]) if d is not None]
        for ex in pipe.examples(docs):
            examples += 1
            fb = np.asarray(ex.extra["fragment_bounds"]).reshape(-1, 2)
            ns = len(ex.extra["source_ids"])
            tw = np.asarray(ex.word_ids)[ns:ns + len(ex.extra["target_ids"])]
            off = np.concatenate([[0], np.cumsum(fb[:, 1] - fb[:, 0])])
            for a, b in zip(off[:-1], off[1:]):
                frag_tok.append(int(b - a))
                frag_words.append(len(np.unique(tw[a:b])))
            sb = np.asarray(ex.extra["span_bounds"])
            span_words.extend(len(np.unique(tw[a:b])) for a, b in zip(sb[:-1], sb[1:]))
    ft, sw = np.asarray(frag_tok), np.asarray(span_words)
    long = ft[ft > 4]
    return {"examples": examples, "fragments": len(ft), "fragment_tokens_mean": round(float(ft.mean()), 2),
            "fragments_up_to_4_tokens": round(float((ft <= 4).mean()), 4),
            "fragment_tokens_mean_over_4": round(float(long.mean()), 2) if len(long) else None,
            "fragment_tokens_max": int(ft.max()),
            "fragment_words_mean": round(float(np.mean(frag_words)), 2),
            "fragments_over_32_tokens": round(float((ft > 32).mean()), 4),
            "target_tokens_per_example": round(float(ft.sum() / examples), 1),
            "spans": len(sw), "multiword_span_share": round(float((sw > 1).mean()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", required=True, help="the shared directory (corpora/pd1998_pos_train.txt)")
    ap.add_argument("--modes", default="unit,table,table-train")
    ap.add_argument("--max-seq-length", type=int, default=512)
    ap.add_argument("--lines-per-doc", type=int, default=20)
    ap.add_argument("--docs-per-shard", type=int, default=1000)
    args = ap.parse_args()
    corpus = Path(args.shared) / "corpora" / "pd1998_pos_train.txt"
    held = pd_lines(corpus, True)
    n = args.lines_per_doc
    raw = [(f"pd-heldout:{k}", "\n".join(held[k:k + n])) for k in range(0, len(held), n)]
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            opts: dict = {"span_stats": mode}
            if mode == "table-train":
                from zhmask.generation.span_table import count_corpus, write_table

                src = Path(tmp) / "train.txt"
                src.write_text("\n".join(pd_lines(corpus, False)) + "\n", encoding="utf-8")
                table = Path(tmp) / "train_spans.tsv"
                summary = write_table(count_corpus(BuildConfig(inputs=[str(src)]).validate()), table)
                opts = {"span_stats": "table", "span_table": str(table)}
            res = measure(raw, opts, args.max_seq_length, args.docs_per_shard)
            res = {"mode": mode, **res}
            if mode == "table-train":
                res["table"] = {k: summary[k] for k in ("words", "bigrams", "trigrams", "keys_pruned")}
            print(json.dumps(res, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
