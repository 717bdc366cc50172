"""Entity quality of the default build (rjieba + lexicon entities) against People's Daily gold tags.

Splits ``corpora/pd1998_pos_train.txt`` by 0-based line index: lines with ``index % 5 == 4`` are
the held-out split (reported), the others the tune split (anything zhmask ships was derived on
it only).  The gold lines' plain texts (tags, brackets and spaces removed) go through the real
document stages of ``build-corpus`` (:func:`zhmask.segquality.entities.score_entities`) and the
predicted PER/LOC/ORG spans are compared with the gold ones by character offsets, exact match.
Then a ``--masking knowledge`` build of the same plain text is read back and the share of entity
units its labels predict is reported (:func:`zhmask.segquality.entities.masked_entity_share`).

    python benchmarks/entity_quality.py --shared ../shared                 # this checkout
    python benchmarks/entity_quality.py --shared ../shared --checkout ../main   # another one (before)

``--checkout`` imports ``zhmask`` from another checkout (the scoring code is this one's), so the
same measurement runs on an older version.  ``--docs`` writes the table into docs/masking.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN GENERATED: benchmarks/entity_quality.py -->", "<!-- END GENERATED -->"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def split_lines(lines: list[str], split: str) -> list[str]:
    """The held-out (``index % 5 == 4``) or tune (the rest) lines of the corpus."""
    return [ln for i, ln in enumerate(lines) if (i % 5 == 4) == (split == "heldout")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", required=True, help="the shared folder (holds corpora/pd1998_pos_train.txt)")
    ap.add_argument("--split", choices=("heldout", "tune"), default="heldout")
    ap.add_argument("--checkout", default=str(ROOT), help="the checkout whose zhmask is measured")
    ap.add_argument("--limit", type=int, default=None, help="only the first N lines of the split")
    ap.add_argument("--no-build", action="store_true", help="skip the knowledge-masking build (masked share)")
    ap.add_argument("--errors", type=int, default=0, help="print the N most frequent false spans per type")
    ap.add_argument("--json", default=None, help="write the figures as JSON here")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(args.checkout).resolve()))
    from zhmask.config import BuildConfig
    from zhmask.pipeline import Pipeline
    from zhmask.segquality.gold import parse_gold_lines

    spec = importlib.util.spec_from_file_location("_entity_eval", ROOT / "zhmask" / "segquality" / "entities.py")
    ev = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = ev
    spec.loader.exec_module(ev)  # type: ignore[union-attr]

    corpus = Path(args.shared) / "corpora" / "pd1998_pos_train.txt"
    lines = split_lines(corpus.read_text(encoding="utf-8").splitlines(), args.split)[: args.limit]
    gold = parse_gold_lines(lines, "pku", path=str(corpus))
    log(f"{args.split}: {len(gold.sentences)} paragraphs, {len(gold.skipped)} skipped; zhmask from {args.checkout}")
    t0 = time.time()
    # --keep-unmapped: the gold offsets are of the text as it is (mapping … to ... moves them)
    scores = ev.score_entities(gold, Pipeline(BuildConfig(keep_unmapped=True)), keep_errors=args.errors)
    log(f"scored in {time.time() - t0:.0f}s")
    out: dict = {"split": args.split, "checkout": args.checkout, "entities": scores.to_dict()}
    print("| type | gold | predicted | precision | recall | F1 | no entity at all |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for t, p in scores.per_type.items():
        print(f"| {t} | {p.gold} | {p.pred} | {p.precision:.3f} | {p.recall:.3f} | {p.f1:.3f} | "
              f"{scores.no_entity[t] / p.pred if p.pred else 0:.3f} |")
    for t, c in scores.errors.items():
        print(t, " ".join(f"{w}:{n}" for w, n in c.most_common(args.errors)))
    if not args.no_build:
        from zhmask.api import build_corpus

        with tempfile.TemporaryDirectory() as tmp:
            txt = Path(tmp) / "plain.txt"
            txt.write_text("\n".join(s.text for s in gold.sentences) + "\n", encoding="utf-8")
            cfg = BuildConfig(inputs=[str(txt)], masking="knowledge", out=str(Path(tmp) / "out"))
            t0 = time.time()
            build_corpus(cfg)
            log(f"knowledge build in {time.time() - t0:.0f}s")
            share = ev.masked_entity_share(cfg.out)
        out["masked"] = share
        print(f"entity units masked: {share['entity_units_masked']} of {share['entity_units']} = "
              f"{share['share_masked']:.3f} (predicted tokens / candidate tokens: {share['predicted_token_share']:.3f},"
              f" masked_lm_prob {share['masked_lm_prob']})")
        print("per type: " + ", ".join(f"{t} {v['share']:.3f} of {v['units']}" for t, v in share["per_type"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
