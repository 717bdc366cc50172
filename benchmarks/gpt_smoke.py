"""GPT smoke run: held-out perplexity of a tiny GPT-2 before and after N steps of ``zhmask pretrain gpt``.

Two ``--tasks clm`` builds from iNews records: one of the ``split == "train"`` records (trained
on), one of the ``split == "dev"`` records (only evaluated: perplexity over every predicted token
of its rows, attention reset at document boundaries, as the trainer evaluates).  By default the
test fixture (tests/fixtures/inews_150.jsonl, which has no split field: record i is dev when
i % 5 == 4); ``--shared PATH`` reads PATH/corpora/inews_docs.jsonl
(the first ``--docs`` records of each split).  Nothing is tuned: the settings are the gpt preset's
with a tiny model.

    python benchmarks/gpt_smoke.py [--shared ../shared] [--docs 400] [--steps 200] [--out /tmp/gpt_smoke]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TINY = ["num_layers=2", "hidden_size=64", "num_heads=2", "intermediate_size=256", "batch_size=16", "validation=0",
        "save_every=0", "eval_every=0", "threads=2", "max_position_embeddings=128", "seed=0"]


def split_records(src: Path, split: str, limit: int, dst: Path) -> int:
    n = 0
    with src.open(encoding="utf-8") as f, dst.open("w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("split", "dev" if i % 5 == 4 else "train") == split:  # (no split field: every 5th is dev)
                g.write(json.dumps({"id": rec.get("id", n), "text": rec["text"]}, ensure_ascii=False) + "\n")
                n += 1
                if n >= limit:
                    break
    return n


def split_builds(args, **build_kw):
    """The input file, the output directory and a build per split ("train", "dev") of the records
    ``split_records`` picks (``args``: shared, docs, max_seq_length, out; ``build_kw``: the
    BuildConfig's task settings; benchmarks/xlnet_smoke.py too)."""
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig
    from zhmask.reader import Build

    src = Path(args.shared) / "corpora" / "inews_docs.jsonl" if args.shared else ROOT / "tests" / "fixtures" / "inews_150.jsonl"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    builds = {}
    for split in ("train", "dev"):
        n = split_records(src, split, args.docs, out / f"{split}.jsonl")
        res = build_corpus(BuildConfig(inputs=[str(out / f"{split}.jsonl")], out=str(out / f"build-{split}"),
                                       overwrite=True, text_field="text", max_seq_length=args.max_seq_length,
                                       **build_kw))
        builds[split] = Build(res.out_dir)
        print(f"{split}: {n} records, {builds[split].rows} rows", file=sys.stderr)
    return src, out, builds


def perplexity(model, build, batch_size: int = 32, collate=None, task: str = "clm") -> tuple[float, int]:
    """Held-out perplexity of ``model`` over every row of ``build`` and the tokens it predicted
    (``collate``: the family's collator, by default the reader's; benchmarks/xlnet_smoke.py too)."""
    import torch
    from torch.utils.data import DataLoader

    from zhmask.reader import Collator, ShardDataset

    ds = ShardDataset(build, split=None)
    acc: dict = {}
    model.eval()
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=batch_size, collate_fn=collate or Collator(pad_id=build.pad_id)):
            model.evaluate(batch, acc)
    m = model.metrics(acc)
    return m[f"{task}_perplexity"], m[f"{task}_tokens"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=None, help="The shared data directory (default: the test fixture).")
    ap.add_argument("--docs", type=int, default=400, help="Records of each split, at most.")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--out", default="/tmp/gpt_smoke")
    args = ap.parse_args()

    import torch

    from _report import machine
    from trainers import gpt
    from trainers.common import make_config, train

    src, out, builds = split_builds(args, tasks=["clm"])
    torch.set_num_threads(2)
    cfg = gpt.check_config(make_config("gpt", TINY + [f"max_steps={args.steps}"]))
    torch.manual_seed(cfg.seed)
    before = gpt.make_model(cfg, builds["train"], ["clm"])
    ppl0, n_tok = perplexity(before, builds["dev"])
    t0 = time.time()
    run = out / "run"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    res = train("gpt", gpt.make_model, builds["train"].out, run, cfg, quiet=True, usable_tasks=gpt.TASKS)
    secs = time.time() - t0
    ppl1, _ = perplexity(res.model, builds["dev"])
    print(json.dumps({"input": str(src), "train_rows": builds["train"].rows, "dev_rows": builds["dev"].rows,
                      "dev_tokens_predicted": n_tok, "steps": args.steps, "train_seconds": round(secs, 1),
                      "perplexity_before": round(ppl0, 1), "perplexity_after": round(ppl1, 1),
                      "uniform_perplexity": builds["train"].vocab_size, "machine": machine()}, ensure_ascii=False))
    assert math.isfinite(ppl1)


if __name__ == "__main__":
    main()
