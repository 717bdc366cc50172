"""Precision of ``discourse_relation`` labels, judged by hand on held-out text (issue 17).

A label is right when the removed connective states the relation *between A and B*; it is wrong
when the connective governs a clause inside B (由于破损严重，管线暂停运行: the cause is inside B) or
is no connective there at all.  This script builds the task's examples with the library (the
same generator ``zhmask build-corpus --tasks discourse_relation`` runs) on text the rule was not
derived from: People's Daily paragraphs whose 0-based line index % 5 == 4 and the iNews ``dev``
split.  It draws a fixed sample per class group (the pairs with the smallest sha256 of their
key, so that a sample after a change re-uses the judgements of the pairs it shares with the
sample before) and writes it as TSV, the judgement column filled from ``--judgements`` where a
pair was judged already.  With judgements it prints precision per group.

    python benchmarks/discourse_precision.py --shared ../shared \\
        --judgements benchmarks/discourse_judgements.tsv --out benchmarks/discourse_sample_after.tsv

Run it with ``PYTHONPATH`` at a checkout of main (the rule before) to get the sample before.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

GROUPS = {  # class group -> classes (zhmask.labels.discourse_relation.RELATIONS names)
    "cause+condition": ("cause", "condition"),
    "contrast": ("contrast",),
    "addition+sequence": ("progression", "coordination", "temporal", "elaboration"),
}
COLUMNS = ["key", "group", "class", "connective", "judgement", "A", "B_original"]


def held_out_docs(shared: Path, limit: int | None = None):
    """(id, text, title) of the held-out text: PD lines with index % 5 == 4, iNews dev."""
    from zhmask.segquality.gold import parse_line

    pd = shared / "corpora" / "pd1998_pos_train.txt"
    with pd.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % 5 == 4:
                s = parse_line(line, "pku")
                if s is not None and s.text:
                    yield f"pd:{i}", s.text, None
    with (shared / "corpora" / "inews_docs.jsonl").open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["split"] == "dev":
                yield f"inews:{r['id']}", r["text"], r.get("title")


def labelled_pairs(shared: Path):
    """Every labelled pair of the held-out text: (key, class name, connective, A, original B)."""
    from zhmask.config import BuildConfig
    from zhmask.labels import TASKS
    from zhmask.labels.discourse_relation import RELATIONS
    from zhmask.pipeline import Pipeline
    from zhmask.steps.read import RawDoc

    pipe = Pipeline(BuildConfig(tasks=["discourse_relation"]).validate())
    raws = [RawDoc(i, t, title=ti) for i, t, ti in held_out_docs(shared)]
    out = []
    for k in range(0, len(raws), 500):
        docs = [d for d, _ in pipe.documents(raws[k:k + 500]) if d is not None]
        by_id = {d.id: d for d in docs}
        for ex in TASKS["discourse_relation"](docs, pipe.ctx):
            sa, sb = ex.extra["segment_sources"]
            doc = by_id[ex.doc_id]
            sents = doc.sentences
            ia = int((sents[:, 0] <= sa["start"]).sum()) - 1
            ib = int((sents[:, 0] <= sb["start"]).sum()) - 1
            a = doc.text[sents[ia, 0]:sents[ia, 1]].strip()
            b = doc.text[sents[ib, 0]:sents[ib, 1]].strip()
            name = RELATIONS[ex.label][0]
            conn = next(c for c in sorted(RELATIONS[ex.label][2], key=len, reverse=True) if b.startswith(c))
            key = f"{ex.doc_id}@{int(sents[ib, 0])}"
            out.append((key, name, conn, a, b))
    return out, pipe.ctx.events


def read_judgements(path: Path | None) -> dict[str, str]:
    if path is None or not path.exists():
        return {}
    out = {}
    for ln in path.read_text(encoding="utf-8").splitlines()[1:]:
        f = ln.split("\t")
        if len(f) >= 5 and f[4] in ("1", "0"):
            out[f[0]] = f[4]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", required=True, type=Path, help="the shared/ folder (corpora/...)")
    ap.add_argument("--per-group", type=int, default=100)
    ap.add_argument("--judgements", type=Path, help="TSV of judged pairs (this script's output, judgement 1/0)")
    ap.add_argument("--out", type=Path, required=True, help="TSV sample to write")
    args = ap.parse_args(argv)
    pairs, events = labelled_pairs(args.shared)
    judged = read_judgements(args.judgements)
    group_of = {c: g for g, cs in GROUPS.items() for c in cs}
    by_group: dict[str, list] = defaultdict(list)
    for p in pairs:
        by_group[group_of[p[1]]].append(p)
    rows = []
    print(f"labelled pairs on the held-out text: {len(pairs)} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(Counter(p[1] for p in pairs).items()))})")
    print(f"events: {dict(sorted((k, v) for k, v in events.items() if k.startswith('discourse')))}")
    print("| group | labelled pairs | sampled | judged | right | precision |")
    print("|---|---|---|---|---|---|")
    for g in GROUPS:
        cand = sorted(by_group[g], key=lambda p: hashlib.sha256(p[0].encode()).hexdigest())[:args.per_group]
        js = [judged.get(p[0], "") for p in cand]
        n_j = sum(j != "" for j in js)
        right = sum(j == "1" for j in js)
        prec = f"{right / n_j:.2f}" if n_j else "-"
        print(f"| {g} | {len(by_group[g])} | {len(cand)} | {n_j} | {right} | {prec} |")
        for p, j in zip(cand, js):
            rows.append([p[0], g, p[1], p[2], j, p[3], p[4]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        f.write("\t".join(COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join(str(x).replace("\t", " ").replace("\n", " ") for x in r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
