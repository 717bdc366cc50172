"""Build the bundled ERNIE-GEN span table, zhmask/data/span_table.tsv, from text the repo has.

Input: the paragraphs of zhmask/data/pd1998_sample.txt that are NOT in the People's Daily
held-out split (lines of ``--shared``/corpora/pd1998_pos_train.txt whose 0-based index % 5 ==
4: the bundled sample comes from the same corpus, and the held-out split is what
benchmarks/ernie_gen_stats.py reports on), and the 150 iNews training documents of
tests/fixtures/inews_150.jsonl (title and text).  Counted and written by the library behind
``zhmask span-table`` with the default build settings (rjieba, T-test threshold 2.576).

    PYTHONPATH=$PWD python scripts/build_span_table.py --shared ../shared
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zhmask.config import BuildConfig  # noqa: E402
from zhmask.generation.span_table import count_corpus, write_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", required=True, help="the shared directory (corpora/pd1998_pos_train.txt)")
    ap.add_argument("--out", default=str(ROOT / "zhmask" / "data" / "span_table.tsv"))
    args = ap.parse_args()
    pd = (Path(args.shared) / "corpora" / "pd1998_pos_train.txt").read_text(encoding="utf-8").splitlines()
    held = {"".join(w.rsplit("/", 1)[0] for w in ln.split()) for i, ln in enumerate(pd) if i % 5 == 4}
    sample = [ln.strip() for ln in (ROOT / "zhmask" / "data" / "pd1998_sample.txt").read_text(encoding="utf-8").splitlines()
              if ln.strip()]
    keep = [ln for ln in sample if ln not in held]
    news = [json.loads(ln) for ln in (ROOT / "tests" / "fixtures" / "inews_150.jsonl").read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "span_table_input.jsonl"
        with src.open("w", encoding="utf-8") as fh:
            for i, text in enumerate(keep):
                fh.write(json.dumps({"id": f"pd:{i}", "text": text}, ensure_ascii=False) + "\n")
            for d in news:
                body = "\n".join(x for x in (d.get("title"), d.get("text")) if x)
                fh.write(json.dumps({"id": d["id"], "text": body}, ensure_ascii=False) + "\n")
        cfg = BuildConfig(inputs=[str(src)], text_field="text").validate()
        summary = write_table(count_corpus(cfg), args.out)
    summary.update(pd_sample_paragraphs=len(keep), pd_sample_held_out_dropped=len(sample) - len(keep),
                   inews_documents=len(news))
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
