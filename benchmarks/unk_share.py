"""[UNK] share and random replacements before and after issue 17, on held-out text.

Held-out splits (nothing was tuned on them): People's Daily lines whose 0-based index % 5 == 4
(``corpora/pd1998_pos_train.txt``, tags and spaces removed), and the iNews records of split
``dev`` (title and text).  Two measurements:

1. ``[UNK]`` share of the tokens the pipeline makes (normalise, segment, tokenise: the
   document stages of ``build-corpus``), with ``--keep-unmapped`` (before) and by default
   (after, characters the vocabulary lacks mapped to their equivalent in it), and the most
   frequent characters that still become ``[UNK]``;
2. a ``--masking wwm --tasks mlm`` build of the People's Daily held-out split, read back through
   the reader, with ``--random-tokens vocab`` (before) and ``unigram`` (after): among the
   random replacements (predicted positions holding neither ``[MASK]`` nor the original token)
   the share of ``##`` continuation pieces, of special or ``[unused]`` tokens, of tokens that
   occur elsewhere in their row, and of Latin/digit tokens.

    python benchmarks/unk_share.py --shared ../shared [--work /tmp/unk_share] [--json out.json]

Prints a Markdown table (docs/pipeline.md and docs/masking.md quote it).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zhmask.api import build_corpus  # noqa: E402
from zhmask.config import BuildConfig  # noqa: E402
from zhmask.pipeline import Pipeline  # noqa: E402
from zhmask.reader import Build  # noqa: E402
from zhmask.segquality.gold import parse_line  # noqa: E402
from zhmask.steps.read import RawDoc  # noqa: E402
from zhmask.view import iter_batches  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pd_heldout(shared: Path) -> list[str]:
    """People's Daily paragraphs of lines whose 0-based index % 5 == 4, as plain text."""
    out = []
    path = shared / "corpora" / "pd1998_pos_train.txt"
    for i, line in enumerate(path.read_text(encoding="utf-8").split("\n")):
        if i % 5 == 4 and line.strip():
            s = parse_line(line, "pku", lineno=i + 1)
            if s is not None and s.text:
                out.append(s.text)
    return out


def inews_dev_records(shared: Path) -> list[dict]:
    """The iNews records of split ``dev``."""
    out = []
    splits: Counter = Counter()
    for line in (shared / "corpora" / "inews_docs.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        splits[r["split"]] += 1
        if r["split"] == "dev":
            out.append(r)
    if not out:
        raise SystemExit(f"no record of split 'dev' in inews_docs.jsonl (splits: {dict(splits)})")
    return out


def inews_dev(shared: Path) -> list[str]:
    """Titles and texts of the iNews records of split ``dev``."""
    return [t for r in inews_dev_records(shared) for t in (r.get("title"), r.get("text")) if t]


def unk_share(texts: list[str], keep_unmapped: bool) -> dict:
    """Tokens, [UNK] tokens and the characters behind them, through the pipeline's document stages."""
    pipe = Pipeline(BuildConfig(keep_unmapped=keep_unmapped).validate())
    unk_id = pipe.tok.unk_id
    n = unk = 0
    chars: Counter = Counter()
    for s in range(0, len(texts), 500):
        raws = [RawDoc(f"t:{s + k}", t) for k, t in enumerate(texts[s:s + 500])]
        for doc, _ in pipe.documents(raws):
            if doc is None:
                continue
            ids = doc.tokens.ids
            n += len(ids)
            hit = np.flatnonzero(ids == unk_id)
            unk += len(hit)
            for i in hit.tolist():
                chars[doc.text[int(doc.tokens.starts[i]):int(doc.tokens.ends[i])]] += 1
    return {"tokens": n, "unk": unk, "share": unk / max(n, 1), "top": chars.most_common(12),
            "mapped": dict(pipe.normalizer.mapped.most_common())}


def random_replacements(lines: list[str], work: Path, random_tokens: str) -> dict:
    """Random replacements of a wwm mlm build of ``lines``, classified."""
    src = work / "pd_heldout.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = work / f"wwm-{random_tokens}"
    cfg = BuildConfig(inputs=[str(src)], masking="wwm", tasks=["mlm"], random_tokens=random_tokens, out=str(out),
                      overwrite=True, workers=1).validate()
    build_corpus(cfg)
    b = Build(out)
    tok = b.tokenizer
    names = tok.id_to_token
    cont = np.array([t.startswith("##") for t in names])
    bracket = np.array([t.startswith("[") and t.endswith("]") for t in names])
    latin = np.array([any(c.isascii() and c.isalnum() for c in t) for t in names])
    c: Counter = Counter()
    for batch in iter_batches(b.shards):
        ids_col, lab_col = batch.column("input_ids"), batch.column("labels")
        for inp, lab in zip(ids_col.to_numpy(zero_copy_only=False), lab_col.to_numpy(zero_copy_only=False)):
            inp = np.asarray(inp)
            lab = np.asarray(lab)
            pred = lab != -100
            orig = np.where(pred, lab, inp)
            rnd = pred & (inp != tok.mask_id) & (inp != lab)
            k = int(rnd.sum())
            if not k:
                continue
            drawn = inp[rnd]
            c["random"] += k
            c["continuation"] += int(cont[drawn].sum())
            c["special_or_unused"] += int(bracket[drawn].sum())
            c["latin_or_digit"] += int(latin[drawn].sum())
            rest = Counter(orig.tolist())
            c["in_row"] += sum(1 for t in drawn.tolist() if rest[t] > 0)
        c["predicted"] += int(sum(int((np.asarray(x) != -100).sum()) for x in lab_col.to_numpy(zero_copy_only=False)))
    r = c["random"] or 1
    return {"random": c["random"], "predicted": c["predicted"],
            **{k: c[k] / r for k in ("continuation", "special_or_unused", "latin_or_digit", "in_row")}}


def parse_args(ap: argparse.ArgumentParser, prefix: str) -> tuple[argparse.Namespace, Path, Path]:
    """``--shared``, ``--work`` and ``--json`` added to ``ap``, then (arguments, shared/, the work
    directory: a temporary one named ``prefix...`` unless given)."""
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"), help="the shared/ directory (corpora/...)")
    ap.add_argument("--work", default=None, help="directory for the builds (default: a temporary one)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    a = ap.parse_args()
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    return a, Path(a.shared), work


def main() -> None:
    a, shared, work = parse_args(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), "unk_share.")
    pd, inews = pd_heldout(shared), inews_dev(shared)
    log(f"held out: People's Daily {len(pd):,} paragraphs, iNews dev {len(inews):,} titles and texts")
    res: dict = {"unk": {}, "random": {}}
    for name, texts in (("People's Daily (index % 5 == 4)", pd), ("iNews dev", inews)):
        for label, keep in (("before (--keep-unmapped)", True), ("after (default)", False)):
            log(f"[UNK] share: {name}, {label}")
            res["unk"][f"{name} | {label}"] = unk_share(texts, keep)
    for rt in ("vocab", "unigram"):
        log(f"random replacements: --random-tokens {rt}")
        res["random"][rt] = random_replacements(pd, work, rt)
    print("| corpus | [UNK] handling | tokens | [UNK] | share | most frequent [UNK] characters |")
    print("|---|---|---:|---:|---:|---|")
    for key, v in res["unk"].items():
        name, label = key.split(" | ")
        top = " ".join(f"{ch} {n}" for ch, n in v["top"][:8]) or "none"
        print(f"| {name} | {label} | {v['tokens']:,} | {v['unk']:,} | {100 * v['share']:.3f}% | {top} |")
    print()
    print("| --random-tokens | random replacements | `##` pieces | special/[unused] | Latin/digit | "
          "occur elsewhere in the row |")
    print("|---|---:|---:|---:|---:|---:|")
    for rt, v in res["random"].items():
        print(f"| {rt} | {v['random']:,} | {100 * v['continuation']:.1f}% | {100 * v['special_or_unused']:.2f}% | "
              f"{100 * v['latin_or_digit']:.1f}% | {100 * v['in_row']:.1f}% |")
    if a.json:
        Path(a.json).write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
