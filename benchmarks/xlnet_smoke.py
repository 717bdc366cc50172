"""XLNet smoke run: held-out perplexity of a tiny XLNet before and after N steps of ``zhmask pretrain xlnet``.

Two ``--tasks plm`` builds from iNews records (as benchmarks/gpt_smoke.py splits them): one of
the ``split == "train"`` records (trained on), one of the ``split == "dev"`` records (only
evaluated: perplexity over the predicted tokens of its rows, each row's stored factorisation
order and count).  By default the test fixture (tests/fixtures/inews_150.jsonl: record i is dev
when i % 5 == 4); ``--shared PATH`` reads PATH/corpora/inews_docs.jsonl.  ``--plm-units``
word (default) or token.  Nothing is tuned: the settings are the xlnet preset's with a tiny model.

    python benchmarks/xlnet_smoke.py [--shared ../shared] [--docs 400] [--steps 100] [--plm-units word] [--out /tmp/xlnet_smoke]
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TINY = ["num_layers=2", "hidden_size=64", "num_heads=2", "intermediate_size=256", "batch_size=16", "validation=0",
        "save_every=0", "eval_every=0", "threads=2", "seed=0"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=None, help="The shared data directory (default: the test fixture).")
    ap.add_argument("--docs", type=int, default=400, help="Records of each split, at most.")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--plm-units", default="word", choices=["word", "token"])
    ap.add_argument("--out", default="/tmp/xlnet_smoke")
    args = ap.parse_args()

    import torch

    from _report import machine
    from gpt_smoke import perplexity, split_builds
    from trainers import xlnet
    from trainers.common import make_config, train

    src, out, builds = split_builds(args, tasks=["plm"], plm_units=args.plm_units)
    torch.set_num_threads(2)
    cfg = xlnet.check_config(make_config("xlnet", TINY + [f"max_steps={args.steps}"]))
    collate = xlnet.make_collator(builds["dev"], cfg)
    torch.manual_seed(cfg.seed)
    before = xlnet.make_model(cfg, builds["train"], ["plm"])
    ppl0, n_tok = perplexity(before, builds["dev"], collate=collate, task="plm")
    t0 = time.time()
    run = out / "run"
    if run.exists():
        shutil.rmtree(run)
    res = train("xlnet", xlnet.make_model, builds["train"].out, run, cfg, quiet=True, usable_tasks=xlnet.TASKS,
                make_collator=xlnet.make_collator)
    secs = time.time() - t0
    ppl1, _ = perplexity(res.model, builds["dev"], collate=collate, task="plm")
    print(json.dumps({"input": str(src), "plm_units": args.plm_units, "train_rows": builds["train"].rows,
                      "dev_rows": builds["dev"].rows, "dev_tokens_predicted": n_tok, "steps": args.steps,
                      "train_seconds": round(secs, 1), "perplexity_before": round(ppl0, 1),
                      "perplexity_after": round(ppl1, 1), "uniform_perplexity": builds["train"].vocab_size,
                      "machine": machine()}, ensure_ascii=False))
    assert math.isfinite(ppl1)


if __name__ == "__main__":
    main()
