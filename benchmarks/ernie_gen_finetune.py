"""ERNIE-GEN title generation on iNews: pretrained vs random initialisation vs a lead baseline,
and word-by-word only vs span-by-span + word-by-word pretraining (the paper's ablation).

Pretraining text: the `text` of iNews training documents (split == "train"), built with the
`ernie-gen` pipeline; fine-tuning: iNews train text -> title; scores: character ROUGE-1/2/L F1
(rouge-score) on the first --dev-limit dev documents (split == "dev"), nothing tuned on them.
The lead baseline's length (characters of the text taken as the title) is the median title length
of the fine-tuning training titles.

    PYTHONPATH=$PWD python benchmarks/ernie_gen_finetune.py --shared ../shared --out /tmp/egbench

Writes OUT/results.json and prints a Markdown table (mean and standard deviation over seeds).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", required=True, help="the shared directory (corpora/inews_docs.jsonl)")
    ap.add_argument("--out", required=True, help="work directory")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--pretrain-docs", type=int, default=2000, help="iNews train documents for pretraining")
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--train-limit", type=int, default=1000, help="iNews train documents for fine-tuning")
    ap.add_argument("--finetune-steps", type=int, default=200)
    ap.add_argument("--dev-limit", type=int, default=100)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--model", default="num_layers=2,hidden_size=128,num_heads=2,intermediate_size=512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--variants", default="pretrained,word_only,scratch",
                    help="pretrained (word+span flows), word_only (the ablation), scratch (random init)")
    args = ap.parse_args()

    import torch

    from trainers.common import make_config, train
    from trainers.ernie_gen import TASKS, make_collator, make_model
    from trainers.finetune_gen import finetune_gen, rouge
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs = [json.loads(x) for x in (Path(args.shared) / "corpora" / "inews_docs.jsonl").open(encoding="utf-8")]
    train_docs = [d for d in docs if d.get("split") == "train"]
    dev_docs = [d for d in docs if d.get("split") == "dev"][:args.dev_limit]

    def write(path: Path, rows) -> Path:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path

    pre_in = write(out / "pretrain.jsonl", [{"text": d["text"]} for d in train_docs[:args.pretrain_docs]])
    ft_train = write(out / "ft_train.jsonl", train_docs[:args.train_limit])
    ft_dev = write(out / "ft_dev.jsonl", dev_docs)
    model = [s.strip() for s in args.model.split(",") if s.strip()]
    common = [*model, f"threads={args.threads}", f"batch_size={args.batch_size}", "save_every=0", "eval_every=0", "eval_batches=5"]
    t0 = time.time()
    build = out / "pretrain-build"
    if not (build / "manifest.json").is_file():
        build_corpus(BuildConfig(inputs=[str(pre_in)], out=str(build), tasks=["ernie_gen"], masking="none",
                                 max_seq_length=args.max_seq_length))
    checkpoints = {}
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for name, flows in (("pretrained", "word,span"), ("word_only", "word")):
        if name not in variants:
            continue
        run = out / f"pretrain-{name}"
        if not (run / "final" / "config.json").is_file():
            cfg = make_config(None, [*common, f"max_steps={args.pretrain_steps}", "lr=1e-3", f"gen_flows={flows}"])
            train("ernie_gen", make_model, build, run, cfg, quiet=True, usable_tasks=TASKS, make_collator=make_collator)
        checkpoints[name] = run / "final"
    pretrain_s = time.time() - t0
    base = checkpoints.get("pretrained") or checkpoints.get("word_only")
    results: dict[str, list[dict]] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in variants:
            ck = base if name == "scratch" else checkpoints[name]
            r = finetune_gen(str(ck), str(ft_train), str(ft_dev), str(out / f"ft-{name}-{seed}"),
                             sets=(f"max_steps={args.finetune_steps}", f"seed={seed}", f"threads={args.threads}",
                                   f"batch_size={args.batch_size}", "lr=5e-4"),
                             from_scratch=name == "scratch", beam_size=args.beam, max_length=32,
                             max_seq_length=args.max_seq_length, max_target_length=32, quiet=True)
            results.setdefault(name, []).append(r)
    # the lead baseline: the first N characters of the text, N the median training title length
    n = int(statistics.median(len(d["title"]) for d in train_docs[:args.train_limit]))
    lead = rouge([d["text"][:n] for d in dev_docs], [d["title"] for d in dev_docs])
    table = ["| model | ROUGE-1 | ROUGE-2 | ROUGE-L | seeds |", "|---|---|---|---|---|"]
    for name, rs in results.items():
        cells = []
        for k in ("rouge1", "rouge2", "rougeL"):
            v = [r[k] for r in rs]
            cells.append(f"{statistics.mean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.2f}")
        table.append(f"| {name} | " + " | ".join(cells) + f" | {len(rs)} |")
    table.append(f"| lead-{n} (first {n} characters) | {lead['rouge1']:.2f} | {lead['rouge2']:.2f} | {lead['rougeL']:.2f} | - |")
    summary = {"table": table, "lead_chars": n, "lead": lead, "pretrain_seconds": round(pretrain_s, 1),
               "seconds": round(time.time() - t0, 1), "args": vars(args),
               "runs": {k: [{m: r[m] for m in ("rouge1", "rouge2", "rougeL", "steps", "seconds", "examples")} for r in v]
                        for k, v in results.items()}}
    (out / "results.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    print("\n".join(table))
    print(f"pretraining {pretrain_s:.0f} s, total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
