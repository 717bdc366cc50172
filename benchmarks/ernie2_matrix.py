"""ERNIE 2.0 learning methods under one budget: MLM only, all tasks at once, the sequential stage plan.

Pretraining data: one ``zhmask build-corpus --pipeline ernie2`` build of the iNews *train*
documents (title + text; never a dev document), up to ``--text-mb``. Three arms share the build,
the model size and ``--pretrain-steps`` (the one total budget), each ``--seeds`` seeds:

* ``mlm``: the knowledge-masked LM alone (``--plan ernie2_mlm``),
* ``multitask``: every task from the first step (``--plan ernie2_multitask``),
* ``sequential``: the default stage plan (``--plan ernie2_stages``).

Each is fine-tuned (``zhmask finetune``) on sentiment (``sentiment_train.tsv``, 10% of texts held
out by hash) and iNews classification (its train/dev splits, title + text), beside the control:
the same architecture from random initialisation under the same fine-tuning budget.

    python benchmarks/ernie2_matrix.py --shared ../shared --workdir /tmp/e2m --out docs/ernie2.md
    # the smoke budget of docs/ernie2.md:
    python benchmarks/ernie2_matrix.py --shared ../shared --workdir /tmp/e2m-smoke2 --seeds 3 --text-mb 0.3 \\
        --seq 64 --layers 1 --hidden 32 --heads 2 --batch 8 --pretrain-steps 8 --finetune-epochs 1 \\
        --train-limit 64 --dev-limit 64 --max-length 64 --out docs/ernie2.md

Writes the tables (mean ± standard deviation [min–max] over seeds, the gap to the control and
whether it exceeds the seed spread, and each arm's held-out accuracy per pretraining head) between
``<!-- ernie2:begin -->`` and ``<!-- ernie2:end -->`` in ``--out``; finished runs are reused.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import machine, write_section  # noqa: E402
from pretrain_matrix import (TASKS, budget_arguments, finetune_budget, finetune_sets, finetune_tag,  # noqa: E402
                             finetune_tasks, pretrain_job, pretrain_sets, run, run_all, task_sets, zhmask)

ARMS = {"mlm": "ernie2_mlm", "multitask": "ernie2_multitask", "sequential": "ernie2_stages"}
HEADS = ("capitalization", "token_document_relation", "sentence_reorder", "sentence_distance",
         "discourse_relation", "ir_relevance")


def pretraining_docs(shared: Path, out: Path, mb: float) -> Path:
    """iNews train documents as JSONL (title, text), up to ``mb`` MB of text, in file order."""
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    size, limit = 0, int(mb * 1e6)
    with (shared / "corpora" / "inews_docs.jsonl").open(encoding="utf-8") as f, out.open("w", encoding="utf-8") as w:
        for line in f:
            d = json.loads(line)
            if d.get("split") != "train":
                continue
            w.write(json.dumps({"title": d["title"], "text": d["text"]}, ensure_ascii=False) + "\n")
            size += len(d["text"].encode("utf-8"))
            if size >= limit:
                break
    return out


def spread(vals: list[float]) -> str:
    m = statistics.mean(vals)
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * sd:.1f} [{100 * min(vals):.1f}–{100 * max(vals):.1f}]"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    budget_arguments(ap, "/tmp/zhmask-ernie2")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--out", help="Markdown file for the tables (between <!-- ernie2:begin/end -->)")
    args = ap.parse_args(argv)

    shared, work = Path(args.shared), Path(args.workdir)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if [a for a in arms if a not in ARMS]:
        raise SystemExit(f"unknown arm(s) in {args.arms}; known: {', '.join(ARMS)}")
    seeds = list(range(args.seeds))
    t0, host = time.time(), machine()
    # folders are named after the settings that make their content: a changed budget never reuses another's
    data_tag = f"inews{args.text_mb:g}MB-seq{args.seq}"
    # positions for the longest fine-tuning input too (a --task-set max_length such as iNews' 192)
    longest = max([args.seq, args.max_length] + [int(kv.split("=", 1)[1]) for task in TASKS
                                                 for kv in task_sets(args, task) if kv.startswith("max_length=")])
    pre_tag = (f"{data_tag}-L{args.layers}-H{args.hidden}-h{args.heads}-b{args.batch}-lr{args.lr:g}"
               f"-st{args.pretrain_steps}-pos{longest}")
    ft_tag = finetune_tag(args)
    runs, ft_dir = work / "runs" / pre_tag, work / "finetune" / f"{pre_tag}--{ft_tag}"

    docs = pretraining_docs(shared, work / f"inews-train-{args.text_mb:g}MB.jsonl", args.text_mb)
    build = work / "builds" / data_tag
    if not (build / "manifest.json").is_file():
        run(zhmask("build-corpus", "--pipeline", "ernie2", str(docs), "--text-field", "text", "--title-field", "title",
                   "--max-seq-length", str(args.seq), "--out", str(build), "--overwrite", "-q"),
            work / "logs" / f"build-{data_tag}.log")

    sets = [x for x in pretrain_sets(args) if not x.startswith("eval_every=")]
    sets += ["eval_every=0", f"max_position_embeddings={longest}"]
    jobs = [pretrain_job(runs / f"{a}-s{s}", "ernie2", build, sets, s, work / "logs" / f"pretrain-{pre_tag}-{a}-s{s}.log",
                         "--plan", ARMS[a]) for a in arms for s in seeds]
    run_all([j for j in jobs if j], args.jobs)
    t_pre = time.time() - t0

    tasks = finetune_tasks(shared)
    cells = [(a, a, False) for a in arms] + [("control", arms[0], True)]
    jobs = []
    for name, src, scratch in cells:
        for s in seeds:
            for task, targs in tasks.items():
                o = ft_dir / task / f"{name}-s{s}"
                if not (o / "results.json").is_file():
                    jobs.append((zhmask("finetune", str(runs / f"{src}-s{s}" / "final"), "--out", str(o), "-q", *targs,
                                        *[f"--set={x}" for x in [*finetune_sets(args, task), f"seed={s}"]],
                                        *(["--from-scratch"] if scratch else [])),
                                 work / "logs" / f"finetune-{task}-{name}-s{s}.log"))
    run_all(jobs, args.jobs)
    t_all = time.time() - t0

    def accs(name: str, task: str) -> list[float]:
        return [json.loads((ft_dir / task / f"{name}-s{s}" / "results.json").read_text())["accuracy"] for s in seeds]

    cmd = "python benchmarks/ernie2_matrix.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"Command: `{cmd.strip()}`  \nMachine: {host}; {args.jobs} runs at a time, {args.threads} thread(s) "
             f"each; {time.strftime('%Y-%m-%d')}; pretraining {t_pre / 60:.1f} min, everything {t_all / 60:.1f} min.  \n"
             f"Budget per arm: {args.layers} layers, hidden {args.hidden}, {args.heads} heads, {args.pretrain_steps} "
             f"steps of {args.batch} rows of up to {args.seq} tokens, lr {args.lr} ({args.text_mb:g} MB of iNews train "
             f"text); {finetune_budget(args)}; seeds {', '.join(map(str, seeds))}.", ""]
    for task in tasks:
        ctl = accs("control", task)
        lines += [f"**{task}**: dev accuracy in %, mean ± sd [min–max] over {len(seeds)} seeds; *gap*: minus the "
                  "control's mean; *beyond spread*: the gap exceeds the larger seed range (max − min) of the two.", "",
                  "| arm | accuracy | gap | beyond spread |", "|---|---|---:|---|"]
        for name, _, scratch in cells:
            a = accs(name, task)
            if scratch:
                lines.append(f"| control (random init) | {spread(a)} | — | — |")
                continue
            g = statistics.mean(a) - statistics.mean(ctl)
            beyond = "yes" if g > max(max(a) - min(a), max(ctl) - min(ctl)) else "no"
            lines.append(f"| {name} | {spread(a)} | {100 * g:+.1f} | {beyond} |")
        lines.append("")
    lines += ["**Pretraining heads** on held-out rows (accuracy in %, mean over seeds; in brackets the share of the "
              "most frequent class, what a constant answer scores; — where the arm has no such head).", "",
              "| arm | MLM | " + " | ".join(HEADS) + " |", "|---|---:|" + "---:|" * len(HEADS)]
    for a in arms:
        ev = [json.loads((runs / f"{a}-s{s}" / "eval.json").read_text()) for s in seeds]
        # a run whose text left too few held-out rows for a head reports no accuracy for it
        mlm = [e["mlm_accuracy"] for e in ev if "mlm_accuracy" in e]
        row = [f"{100 * statistics.mean(mlm):.1f}" if mlm else "—"]
        for h in HEADS:
            have = [e for e in ev if f"{h}_accuracy" in e]
            row.append(f"{100 * statistics.mean(e[f'{h}_accuracy'] for e in have):.1f} "
                       f"({100 * statistics.mean(e[f'{h}_majority'] for e in have):.0f})" if have else "—")
        lines.append(f"| {a} | " + " | ".join(row) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        write_section(Path(args.out), "ernie2", table)


if __name__ == "__main__":
    main()
