"""What ``--masking mac`` puts in place of the words of its *similar* units, on iNews dev.

Builds the iNews documents with ``split == "dev"`` (never used to build the similar-word table)
with ``--masking mac --mask-ratios 1,0,0`` (every unit a similar unit, so each predicted word
in the rows is one), reads the rows back and reports, over the words of similar units:

* the outcome of each word, from the manifest's counters (``mac_*``) and, for the Chinese words
  that fell back to a random word, why the table has no candidate for them (the filter of
  ``scripts/build_synonyms.py`` that removed them all: not in a Cilin ``=`` group, no synonym of
  the same length, none of the same part of speech, too rare in the tune split, below the
  similarity threshold);
* how often rjieba tags a table word inside a sentence with the POS class the table was built
  with (the word's jieba tag alone);
* (``--corpus pd``: the same on the held-out People's Daily lines, index % 5 == 4)
* a sample of ``--sample`` replacements (words changed), drawn with ``--seed``, written as TSV
  for judging by hand (``--sample-out``); with ``--judged FILE`` (the same TSV with its ``ok``
  column filled with 1 or 0), the share judged acceptable;
* with ``--positions FILE`` (a sample TSV written by this script), the words at that sample's
  positions (its ``row`` and ``start`` columns) instead of a fresh draw, so that two tables are
  judged on the same words: run it once per checkout (``PYTHONPATH``) with the same
  ``--positions``.

Runs with whichever ``zhmask`` is first on ``PYTHONPATH``, so the same command measures another
checkout (the reasons need this checkout's table format and are skipped otherwise):

    PYTHONPATH=$PWD python benchmarks/similar_words.py --shared ../shared \\
        --sample-out benchmarks/similar_words_sample_after.tsv
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

_CJK = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff]+$")
FIELDS = ["n", "doc_id", "row", "start", "outcome", "original", "replacement", "before", "after", "ok"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def dev_docs(shared: Path, out: Path, limit: int | None, corpus: str = "inews") -> int:
    """Write the held-out documents as JSONL: iNews ``split == "dev"``, or (``corpus == "pd"``)
    the People's Daily lines whose index % 5 == 4, as plain text."""
    from build_synonyms import pd_plain

    n = 0
    with open(out, "w", encoding="utf-8") as w:
        if corpus == "pd":
            with open(shared / "corpora" / "pd1998_pos_train.txt", encoding="utf-8") as fh:
                for i, line in enumerate(fh):
                    if i % 5 != 4 or not line.strip() or (limit and n >= limit):
                        continue
                    w.write(json.dumps({"id": f"pd{i}", "title": "", "text": pd_plain(line)}, ensure_ascii=False) + "\n")
                    n += 1
            return n
        with open(shared / "corpora" / "inews_docs.jsonl", encoding="utf-8") as fh:
            for line in fh:
                d = json.loads(line)
                if d.get("split") != "dev":
                    continue
                w.write(json.dumps({"id": d["id"], "title": d.get("title") or "", "text": d.get("text") or ""},
                                   ensure_ascii=False) + "\n")
                n += 1
                if limit and n >= limit:
                    break
    return n


def table_args(path: Path) -> dict | None:
    """The build_synonyms.py arguments recorded in the table's header (None: another format)."""
    head = path.read_text(encoding="utf-8").split("\n", 3)[:3]
    m = re.search(r"build_synonyms\.py \((--[^)]*)\)", " ".join(head))
    if m is None:
        return None
    a = m.group(1).split()
    kw = {"coarse": "--exact-pos" not in a}
    names = {"--min-sim": ("min_sim", float), "--topk": ("topk", int), "--window": ("window", int),
             "--contexts": ("n_contexts", int), "--min-count": ("min_count", int),
             "--w2v-min-sim": ("w2v_min_sim", float), "--w2v-min-count": ("w2v_min_count", int),
             "--w2v-window": ("w2v_window", int), "--w2v-topk": ("w2v_topk", int),
             "--rank-window": ("rank_window", int), "--rank-contexts": ("rank_contexts", int)}
    for i, x in enumerate(a):
        if x in names:
            k, f = names[x]
            kw[k] = f(a[i + 1])
    return kw


def lex_words(path: Path) -> list[str]:
    """The head words of a ranked table (``word<TAB>candidates`` lines)."""
    return [line.split("\t", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()
            if "\t" in line and not line.startswith("#")]


def words_of_rows(build):
    """(doc_id, original ids, input ids, word starts/ends of predicted words) per row, streamed
    in the build's row order (the same for any table: masking does not change the rows' tokens)."""
    from zhmask.reader import open_shard, original_ids

    for p in build.shards:
        with open_shard(p) as r:
            for batch in r:
                doc = batch.column("doc_id").to_pylist()
                inp = batch.column("input_ids").to_pylist()
                lab = batch.column("labels").to_pylist()
                wid = batch.column("word_ids").to_pylist()
                for d, i, lb, w in zip(doc, inp, lab, wid):
                    i, lb, w = np.asarray(i), np.asarray(lb), np.asarray(w)
                    orig = original_ids(i, lb)
                    pred = np.flatnonzero(lb != -100)
                    spans = []
                    for k in np.unique(w[pred]).tolist():
                        pos = np.flatnonzero(w == k)
                        spans.append((int(pos[0]), int(pos[-1]) + 1))
                    yield d, orig, i, spans


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", required=True, help="the shared folder (corpora/inews_docs.jsonl)")
    ap.add_argument("--work", default="/tmp/zhmask-similar-words")
    ap.add_argument("--corpus", choices=("inews", "pd"), default="inews",
                    help="inews: iNews dev; pd: People's Daily lines with index %% 5 == 4")
    ap.add_argument("--docs", type=int, default=0, help="only the first N dev documents (0: all)")
    ap.add_argument("--sample", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-out", default=None, help="write the sample of replacements here (TSV)")
    ap.add_argument("--reasons", default=None,
                    help="the word<TAB>reason file of build_synonyms.py --reasons-out for the shipped table "
                         "(else the table's filters are recomputed, minutes)")
    ap.add_argument("--judged", default=None, help="a judged sample TSV: report its share of ok == 1")
    ap.add_argument("--positions", default=None,
                    help="a sample TSV of this script: write the words at its positions (row, start) instead of a draw")
    ap.add_argument("--no-reasons", action="store_true", help="skip the fallback reasons and the POS agreement")
    a = ap.parse_args()

    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig
    from zhmask.masking.similar_word import default_synonyms_path, lexicon_for
    from zhmask.pipeline import Pipeline
    from zhmask.reader import Build

    shared, work = Path(a.shared), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    n_docs = dev_docs(shared, work / "dev.jsonl", a.docs or None, a.corpus)
    cfg = BuildConfig(inputs=[str(work / "dev.jsonl")], title_field="title", masking="mac",
                      mask_ratios=(1.0, 0.0, 0.0), out=str(work / "build"), overwrite=True)
    name = "iNews dev" if a.corpus == "inews" else "People's Daily held-out"
    log(f"building {n_docs} {name} documents with --masking mac --mask-ratios 1,0,0")
    t0 = time.time()
    build_corpus(cfg)
    log(f"built in {time.time() - t0:.0f} s")
    b = Build(work / "build")
    m = b.manifest["masking"]
    n_sim = m["mac_words_similar"]
    print(f"{name}: {n_docs} documents, {n_sim:,} words in similar units")
    for k in sorted(m):
        if k.startswith("mac_") and k not in ("mac_words_similar", "mac_words_random", "mac_words_keep"):
            print(f"  {k}: {m[k]:,} ({m[k] / n_sim:.1%})")

    tok = b.tokenizer
    pipe = Pipeline(BuildConfig(masking="mac"))
    lex = lexicon_for(pipe.config, pipe.ctx)

    def text(ids) -> str:
        return "".join(t[2:] if t.startswith("##") else t for t in (tok.id_to_token[i] for i in ids))

    def outcome(o: np.ndarray, r: np.ndarray) -> str:
        s = text(o)
        if not _CJK.match(s):
            if (o == r).all():
                return "kept_non_chinese"
            return "non_chinese_to_chinese" if _CJK.search(text(r[o != r])) else "non_chinese_same_kind"
        k = lex.key_to_word.get(tuple(o.tolist()))
        if k is not None and r.tolist() in [list(lex.words[j]) for j in lex.similar(k).tolist()]:
            return "similar"
        return "fallback"

    outcomes: Counter = Counter()
    fallback_words: Counter = Counter()
    replacements = []
    wanted = None
    if a.positions:
        with open(a.positions, encoding="utf-8") as fh:
            wanted = {(int(r["row"]), int(r["start"])): None for r in csv.DictReader(fh, delimiter="\t")}
    for row, (doc, orig, inp, spans) in enumerate(words_of_rows(b)):
        for s, e in spans:
            o, r = orig[s:e], inp[s:e]
            oc = outcome(o, r)
            outcomes[oc] += 1
            if oc == "fallback":
                fallback_words[text(o)] += 1
            if wanted is not None and (row, s) in wanted:
                wanted[row, s] = (doc, row, oc, s, e, orig, inp)
            if not (o == r).all():
                replacements.append((doc, row, oc, s, e, orig, inp))
    total = sum(outcomes.values())
    print(f"from the rows: {total:,} predicted words; " + ", ".join(
        f"{k} {v:,} ({v / total:.1%})" for k, v in outcomes.most_common()))
    print("most frequent fallback words: " + " ".join(f"{w}:{c}" for w, c in fallback_words.most_common(30)))

    kw = table_args(default_synonyms_path())
    if kw is not None and not a.no_reasons:
        import rjieba
        from build_synonyms import build_table, pos_class, word_pos

        if a.reasons:
            why = dict(line.split("\t") for line in Path(a.reasons).read_text(encoding="utf-8").splitlines())
            table = {w: None for w in lex_words(default_synonyms_path())}
            pos = {w: pos_class(t, kw["coarse"]) for w, t in word_pos(sorted(table)).items()}
        else:
            log("recomputing the table's filters (scripts/build_synonyms.py) for the reasons")
            table, why, pos = build_table(shared, **kw)
        reasons: Counter = Counter()
        for w, c in fallback_words.items():
            reasons[why.get(w, "unseen_in_tune_split" if kw.get("w2v_min_sim") is not None else "no_cilin_entry")] += c
        print(f"fallback reasons (share of the {total:,} similar-unit words): " + ", ".join(
            f"{k} {v:,} ({v / total:.1%})" for k, v in reasons.most_common()))
        agree = seen = 0
        for line in (work / "dev.jsonl").read_text(encoding="utf-8").splitlines():
            for w, t in rjieba.tag(json.loads(line)["text"]):
                if w in table:
                    seen += 1
                    agree += pos_class(t, kw["coarse"]) == pos[w]
        print(f"POS: rjieba's tag in the sentence has the table's POS class for {agree:,} of {seen:,} "
              f"occurrences of table words ({agree / max(seen, 1):.2%})")

    if wanted is not None:
        missing = [k for k, v in wanted.items() if v is None]
        if missing:
            raise SystemExit(f"--positions: no predicted word at (row, start) {missing[:5]} (another corpus or --docs?)")
        sample = list(wanted.values())
    else:
        rng = np.random.default_rng(a.seed)
        pick = rng.choice(len(replacements), size=min(a.sample, len(replacements)), replace=False)
        sample = [replacements[i] for i in sorted(pick.tolist())]
    if a.sample_out:
        with open(a.sample_out, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(FIELDS)
            for n, (doc, row, oc, s, e, orig, inp) in enumerate(sample):
                w.writerow([n, doc, row, s, oc, text(orig[s:e]), text(inp[s:e]), text(orig[max(1, s - 15):s]),
                            text(orig[e:e + 15]).replace("[SEP]", " | "), ""])
        log(f"wrote {len(sample)} replacements to {a.sample_out}")
    if a.judged:
        with open(a.judged, encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        ok = [r for r in rows if r["ok"].strip() == "1"]
        by = Counter(r["outcome"] for r in rows)
        by_ok = Counter(r["outcome"] for r in ok)
        print(f"judged {a.judged}: {len(ok)} of {len(rows)} acceptable ({len(ok) / max(len(rows), 1):.0%}); by outcome: "
              + ", ".join(f"{k} {by_ok[k]}/{v}" for k, v in by.most_common()))
        from build_synonyms import cilin_groups

        mates: dict[str, set[str]] = {}
        for g in cilin_groups(shared / "lexicons" / "cilin_extended.txt"):
            for x in g:
                mates.setdefault(x, set()).update(g)
        tier = Counter("cilin" if r["replacement"] in mates.get(r["original"], ()) else "word2vec"
                       for r in rows if r["outcome"] == "similar")
        tier_ok = Counter("cilin" if r["replacement"] in mates.get(r["original"], ()) else "word2vec"
                          for r in ok if r["outcome"] == "similar")
        print("  similar words by source (a Cilin = group mate or not): "
              + ", ".join(f"{k} {tier_ok[k]}/{v}" for k, v in tier.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
