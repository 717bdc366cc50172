"""The pretraining matrix: every masking strategy pretrained, fine-tuned downstream, against the control.

Models (one budget for all): bert with char, wwm, ngram, mac and knowledge masking (mlm), bert wwm
with SOP, and electra (whole-word positions); with ``--models ...,gpt`` also GPT-2 on ``--tasks clm``,
and with ``xlnet`` / ``xlnet-token`` XLNet on ``--tasks plm`` with word-aware or token-level
factorisation orders (issue 19). ``--seeds`` fine-tuning seeds each, from
``--pretrain-seeds`` pretraining runs (fine-tuning seed s starts from run s mod that number; by
default one run per seed). Every pretrained model is
fine-tuned on sentiment (``sentiment_train.tsv``, 10% of texts held out by hash) and on iNews
(``inews_docs.jsonl``, its train/dev splits, title + text); the control fine-tunes the same
architectures from random initialisation (``zhmask finetune --from-scratch``) under the same budget.

Pretraining text: People's Daily 1998 paragraphs (tags removed), iNews *train* documents and the
sentiment texts of the training side of the hash split (unlabelled; never a dev text), up to
``--text-mb``. Every step is a ``zhmask`` command (build-corpus, pretrain, finetune), run ``--jobs``
at a time; a finished run (its eval.json / results.json) is skipped when the script is rerun.

    python benchmarks/pretrain_matrix.py --shared ../shared --workdir /tmp/matrix --jobs 2 \\
        --out docs/trainers.md --img docs/img
    # a smoke run: --pretrain-steps 3 --train-limit 64 --dev-limit 64 --seeds 1 --text-mb 0.3 --layers 1 --hidden 32

Writes a table per task (mean, standard deviation and range over seeds; the gap to the control and
whether it exceeds the seed spread) between ``<!-- matrix:begin -->`` / ``<!-- matrix:end -->`` in
``--out``, and the loss curves and accuracies as PNG files (matplotlib) in ``--img``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _report import machine, write_section  # noqa: E402

# name -> (family, masking, tasks[, further build-corpus options])
MODELS = {
    "bert-char": ("bert", "char", "mlm"),
    "bert-wwm": ("bert", "wwm", "mlm"),
    "bert-ngram": ("bert", "ngram", "mlm"),
    "bert-mac": ("bert", "mac", "mlm"),
    "bert-knowledge": ("bert", "knowledge", "mlm"),
    "bert-wwm-sop": ("bert", "wwm", "mlm,sop"),
    "electra": ("electra", "wwm", "mlm"),
    "gpt": ("gpt", "none", "clm"),           # issue 19: causal LM on packed documents (not in the default set)
    "xlnet": ("xlnet", "none", "plm"),       # issue 19: word-aware factorisation orders (the default)
    "xlnet-token": ("xlnet", "none", "plm", ("--plm-units", "token")),   # XLNet's original token orders
}
AUTOREGRESSIVE = ("gpt", "xlnet", "xlnet-token")
DEFAULT_MODELS = [m for m in MODELS if m not in AUTOREGRESSIVE]   # issue 14's matrix
TASKS = ("sentiment", "inews")


def zhmask(*args: str) -> list[str]:
    return [sys.executable, "-m", "zhmask", *args]


def run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with log.open("w", encoding="utf-8") as f:
        f.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
        f.flush()
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if p.returncode:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}; see {log}")


def run_all(jobs: list, n: int) -> None:
    """Run ``(command, log)`` jobs ``n`` at a time; the first failure stops the script."""
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda j: run(*j), jobs))


def pretrain_job(run_dir: Path, family: str, build: Path, sets: list[str], seed: int, log: Path, *extra: str):
    """The ``(command, log)`` of one pretraining run, or None when it finished (its eval.json is
    there); the folder of an unfinished run is cleared so the run starts afresh."""
    if (run_dir / "eval.json").is_file():
        return None
    shutil.rmtree(run_dir, ignore_errors=True)
    return (zhmask("pretrain", family, "--data", str(build), "--out", str(run_dir), "-q", *extra,
                   *[f"--set={x}" for x in [*sets, f"seed={seed}"]]), log)


def pretraining_text(shared: Path, out: Path, mb: float) -> Path:
    """Plain paragraphs: People's Daily (tags removed), iNews train documents, sentiment training texts."""
    from trainers.finetune import stable_fraction

    if out.is_file():
        return out
    limit = int(mb * 1e6)
    paras: list[str] = []
    for line in (shared / "corpora" / "pd1998_pos_train.txt").read_text(encoding="utf-8").splitlines():
        words = [re.sub(r"/[A-Za-z]+$", "", t.split("]")[0]).lstrip("[") for t in line.split()]
        text = "".join(words)
        if len(text) > 10:
            paras.append(text)
    for line in (shared / "corpora" / "inews_docs.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        if d.get("split") == "train":
            paras.append(" ".join(f"{d['title']}。{d['text']}".split()))
    for i, line in enumerate((shared / "corpora" / "sentiment_train.tsv").read_text(encoding="utf-8").splitlines()):
        label, _, text = line.partition("\t")
        if i and text and stable_fraction(text) >= 0.1:   # finetune's dev texts (< 0.1) stay unseen
            paras.append(" ".join(text.split()))
    # interleave the three sources so that any prefix mixes them
    import random

    random.Random(0).shuffle(paras)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with out.open("w", encoding="utf-8") as f:
        for p in paras:
            f.write(p + "\n")
            size += len(p.encode("utf-8"))
            if size >= limit:
                break
    return out


def budget_arguments(ap: argparse.ArgumentParser, workdir: str) -> None:
    """The options of a pretrain-then-finetune benchmark (this one and ``ernie2_matrix.py``)."""
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--workdir", default=workdir)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--text-mb", type=float, default=4.0)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--pretrain-steps", type=int, default=2500)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=1000)
    ap.add_argument("--dev-limit", type=int, default=1000)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--ft-lr", type=float, default=3e-4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--task-set", action="append", default=[], metavar="TASK:KEY=VALUE",
                    help="a fine-tuning setting for one task only, after the shared ones (repeatable), "
                         "e.g. inews:max_length=192: iNews needs longer texts than sentiment")


def pretrain_sets(args) -> list[str]:
    """``--set`` values of every pretraining run of the budget (the seed aside)."""
    return [f"num_layers={args.layers}", f"hidden_size={args.hidden}", f"num_heads={args.heads}",
            f"intermediate_size={4 * args.hidden}", f"batch_size={args.batch}", f"lr={args.lr}",
            f"max_steps={args.pretrain_steps}", "warmup=0.04", f"threads={args.threads}", "validation=0.02",
            "eval_batches=10", f"eval_every={max(1, args.pretrain_steps // 10)}", "save_every=0", "keep_checkpoints=1"]


def task_sets(args, task: str) -> list[str]:
    """The ``--task-set`` values of ``task`` (``TASK:KEY=VALUE`` -> ``KEY=VALUE``)."""
    out = []
    for x in args.task_set:
        name, sep, kv = x.partition(":")
        if not sep or "=" not in kv or name not in TASKS:
            raise SystemExit(f"--task-set {x!r}: expected TASK:KEY=VALUE with TASK one of {', '.join(TASKS)}")
        if name == task:
            out.append(kv)
    return out


def finetune_sets(args, task: str) -> list[str]:
    """``--set`` values of every fine-tuning run of ``task`` (the seed aside); later values win."""
    return [f"epochs={args.finetune_epochs}", f"train_limit={args.train_limit}", f"dev_limit={args.dev_limit}",
            f"max_length={args.max_length}", f"lr={args.ft_lr}", f"threads={args.threads}", *task_sets(args, task)]


def finetune_tag(args) -> str:
    """The folder name of a fine-tuning budget: every shared setting and every per-task one."""
    tag = f"e{args.finetune_epochs}-n{args.train_limit}-d{args.dev_limit}-len{args.max_length}-lr{args.ft_lr:g}"
    return tag + "".join(f"-{x.replace(':', '.').replace('=', '')}" for x in args.task_set)


def finetune_budget(args) -> str:
    """The fine-tuning budget in words, per-task settings included."""
    extra = "".join(f"; {t}: {', '.join(task_sets(args, t))}" for t in TASKS if task_sets(args, t))
    return (f"fine-tuning {args.finetune_epochs} epoch(s) on {args.train_limit} examples, {args.max_length} tokens, "
            f"lr {args.ft_lr}, dev {args.dev_limit} examples{extra}")


def finetune_tasks(shared: Path) -> dict[str, list[str]]:
    """The ``zhmask finetune`` data arguments of the two downstream tasks."""
    return {
        "sentiment": ["--train", str(shared / "corpora" / "sentiment_train.tsv")],
        "inews": ["--train", str(shared / "corpora" / "inews_docs.jsonl"), "--dev", str(shared / "corpora" / "inews_docs.jsonl"),
                  "--set=train_split=train", "--set=dev_split=dev", "--set=title_field=title"],
    }


def pretrain_counts(spec: str, seeds: int, models: list[str]) -> dict[str, int]:
    """``--pretrain-seeds``: ``N`` for every model, then ``MODEL=N`` for some (``""``: ``seeds``)."""
    out = dict.fromkeys(models, seeds)
    for part in filter(None, (x.strip() for x in str(spec).split(","))):
        name, eq, n = part.rpartition("=")
        if eq and name not in models:
            raise SystemExit(f"--pretrain-seeds {spec!r}: {name!r} is not one of --models ({', '.join(models)})")
        if not n.isdigit() or not 1 <= int(n) <= seeds:
            raise SystemExit(f"--pretrain-seeds {spec!r}: counts must be between 1 and --seeds ({seeds})")
        for m in ([name] if eq else models):
            out[m] = int(n)
    return out


def pretrain_counts_text(n_pre: dict[str, int]) -> str:
    """``{"a": 1, "b": 3}`` -> ``"1 pretraining run(s) per model (b: 3)"``."""
    common = max(set(n_pre.values()), key=list(n_pre.values()).count)
    other = ", ".join(f"{m}: {n}" for m, n in n_pre.items() if n != common)
    return f"{common} pretraining run(s) per model" + (f" ({other})" if other else "")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    budget_arguments(ap, "/tmp/zhmask-matrix")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help=f"any of {', '.join(MODELS)}")
    ap.add_argument("--out", help="Markdown file for the table (between <!-- matrix:begin/end -->)")
    ap.add_argument("--img", help="folder for the PNG plots")
    ap.add_argument("--pretrain-seeds", default="", metavar="N[,MODEL=N...]",
                    help="pretraining runs per model (default: --seeds), optionally other counts for some "
                         "models, e.g. 1,bert-wwm=3; fine-tuning seed s uses run s mod N")
    args = ap.parse_args(argv)

    shared, work = Path(args.shared), Path(args.workdir)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    seeds = list(range(args.seeds))
    n_pre = pretrain_counts(args.pretrain_seeds, args.seeds, models)   # model -> its pretraining runs
    t0, host = time.time(), machine()
    # every folder is named after the settings that make its content, so a changed budget never
    # picks up the results of another one
    text_tag = f"text{args.text_mb:g}MB-seq{args.seq}"
    pre_tag = f"{text_tag}-L{args.layers}-H{args.hidden}-h{args.heads}-b{args.batch}-lr{args.lr:g}-st{args.pretrain_steps}"
    ft_tag = finetune_tag(args)
    runs_dir = work / "runs" / pre_tag
    ft_dir = work / "finetune" / f"{pre_tag}--{ft_tag}"
    text = pretraining_text(shared, work / f"pretrain-{args.text_mb:g}MB.txt", args.text_mb)

    # (a) one build per (masking, tasks)
    builds = {}
    for m in models:
        _, masking, tasks, *more = MODELS[m]
        extra = list(more[0]) if more else []
        key = f"{masking}-{tasks.replace(',', '+')}" + "".join(f"-{x.lstrip('-')}" for x in extra)
        b = work / "builds" / f"{key}-{text_tag}"
        if not (b / "manifest.json").is_file():
            run(zhmask("build-corpus", str(text), "--masking", masking, "--tasks", tasks, "--max-seq-length",
                       str(args.seq), *extra, "--out", str(b), "--overwrite", "-q"), work / "logs" / f"build-{key}.log")
        builds[m] = b

    # (b) pretraining runs
    sets = pretrain_sets(args)
    pre_jobs = [pretrain_job(runs_dir / f"{m}-s{s}", MODELS[m][0], builds[m], sets, s,
                             work / "logs" / f"pretrain-{m}-s{s}.log") for m in models for s in range(n_pre[m])]
    run_all([j for j in pre_jobs if j], args.jobs)
    t_pre = time.time() - t0

    # (c) fine-tuning: every pretrained run, and the controls (random init, same architecture)
    def ckpt(m, s):
        """The checkpoint fine-tuning seed ``s`` starts from (pretraining run ``s`` mod the model's count)."""
        r = runs_dir / f"{m}-s{s % n_pre[m]}" / "final"
        return r / "discriminator" if MODELS[m][0] == "electra" else r

    def ft_out(task, name, s, scratch):
        """A fine-tuning run's folder; pretrained cells name their pretraining run where it is not ``s``."""
        key = name.replace(" ", "_").replace("(", "").replace(")", "")
        k = 0 if scratch else s % n_pre[name]
        return ft_dir / task / (f"{key}-s{s}" + ("" if scratch or k == s else f"-from-s{k}"))

    task_args = finetune_tasks(shared)
    # one control per family: the architecture of its first model, from random initialisation
    controls = {f"control ({fam})": next((m for m in models if MODELS[m][0] == fam), None)
                for fam in dict.fromkeys(MODELS[m][0] for m in MODELS)}
    cells = [(m, m, False) for m in models] + [(c, src, True) for c, src in controls.items() if src]
    ft_jobs = []
    for name, src, scratch in cells:
        for s in seeds:
            for task in TASKS:
                o = ft_out(task, name, s, scratch)
                if not (o / "results.json").is_file():
                    cmd = zhmask("finetune", str(ckpt(src, s)), "--out", str(o), "-q", *task_args[task],
                                 *[f"--set={x}" for x in [*finetune_sets(args, task), f"seed={s}"]], *(["--from-scratch"] if scratch else []))
                    ft_jobs.append((cmd, work / "logs" / f"finetune-{task}-{o.name}.log"))
    run_all(ft_jobs, args.jobs)
    t_all = time.time() - t0

    # (d) the tables
    def results(name, task):
        scratch = name.startswith("control")
        return [json.loads((ft_out(task, name, s, scratch) / "results.json").read_text()) for s in seeds]

    def majority(task):
        """Accuracy of always answering the dev set's most frequent label: a collapsed model scores this."""
        from collections import Counter

        from trainers.finetune import make_finetune_config, read_examples, stable_fraction

        if task == "sentiment":
            rows = read_examples(shared / "corpora" / "sentiment_train.tsv", make_finetune_config())
            dev = [r for r in rows if stable_fraction(r[1]) < 0.1]
        else:
            dev = read_examples(shared / "corpora" / "inews_docs.jsonl", make_finetune_config(["title_field=title"]),
                                "dev")
        dev = dev[:args.dev_limit] if args.dev_limit else dev
        return Counter(r[0] for r in dev).most_common(1)[0][1] / len(dev)

    def stats(vals):
        m = statistics.mean(vals)
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return m, sd, min(vals), max(vals)

    def fmt(vals):
        m, sd, lo, hi = stats(vals)
        return f"{100 * m:.1f} ± {100 * sd:.1f} [{100 * lo:.1f}–{100 * hi:.1f}]"

    lines = []
    cmd = "python benchmarks/pretrain_matrix.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines.append(f"Command: `{cmd.strip()}`  \nMachine: {host}; "
                 f"{args.jobs} runs at a time with {args.threads} thread(s) each; {time.strftime('%Y-%m-%d')}; "
                 f"pretraining {t_pre / 60:.0f} min, everything {t_all / 60:.0f} min.  \n"
                 f"Budget per model: {args.layers} layers, hidden {args.hidden}, {args.heads} heads, "
                 f"{args.pretrain_steps} steps of {args.batch} rows of up to {args.seq} tokens, lr {args.lr} "
                 f"({args.text_mb:g} MB of text); {finetune_budget(args)}; "
                 f"fine-tuning seeds {', '.join(map(str, seeds))}, "
                 + ("each from the pretraining run of the same seed." if set(n_pre.values()) == {len(seeds)} else
                    f"from {pretrain_counts_text(n_pre)} (seed s starts from run s mod N); the "
                    f"controls' seeds set their random initialisation."))
    lines.append("")
    for task in TASKS:
        lines.append(f"**{task}** — dev accuracy and macro-F1 in %, mean ± standard deviation [min–max] over "
                     f"{len(seeds)} seeds; *gap*: mean accuracy minus the control's; *beyond spread*: the gap "
                     f"exceeds the larger of the two seed ranges (max − min).")
        lines.append("")
        lines.append("| model | accuracy | macro-F1 | gap | beyond spread | held-out pretraining metric |")
        lines.append("|---|---|---|---:|---|---|")
        ctl = {c: [r["accuracy"] for r in results(c, task)] for c, src in controls.items() if src}
        for name, src, scratch in cells:
            rs = results(name, task)
            acc = [r["accuracy"] for r in rs]
            f1 = [r["macro_f1"] for r in rs]
            if scratch:
                gap = beyond = "—"
                metric = "—"
            else:
                c = ctl[f"control ({MODELS[name][0]})"]
                g = statistics.mean(acc) - statistics.mean(c)
                spread = max(max(acc) - min(acc), max(c) - min(c))
                gap, beyond = f"{100 * g:+.1f}", ("yes" if g > spread else "no")
                evs = [json.loads((runs_dir / f"{name}-s{s}" / "eval.json").read_text()) for s in range(n_pre[name])]
                if MODELS[name][0] == "electra":
                    metric = (f"replaced-token AUC {statistics.mean(e['replaced_auc'] for e in evs):.3f}, generator "
                              f"MLM accuracy {100 * statistics.mean(e['generator_mlm_accuracy'] for e in evs):.1f}%")
                elif MODELS[name][0] == "gpt":
                    metric = (f"next-token accuracy {100 * statistics.mean(e['clm_accuracy'] for e in evs):.1f}%, "
                              f"perplexity {statistics.mean(e['clm_perplexity'] for e in evs):.0f}")
                elif MODELS[name][0] == "xlnet":
                    metric = (f"permuted-LM accuracy {100 * statistics.mean(e['plm_accuracy'] for e in evs):.1f}%, "
                              f"perplexity {statistics.mean(e['plm_perplexity'] for e in evs):.0f}")
                else:
                    metric = (f"MLM accuracy {100 * statistics.mean(e['mlm_accuracy'] for e in evs):.1f}%, perplexity "
                              f"{statistics.mean(e['mlm_perplexity'] for e in evs):.0f}")
                    if "sentence_accuracy" in evs[0]:
                        metric += f", SOP accuracy {100 * statistics.mean(e['sentence_accuracy'] for e in evs):.1f}%"
            lines.append(f"| {name} | {fmt(acc)} | {fmt(f1)} | {gap} | {beyond} | {metric} |")
        lines.append(f"| majority class (always the most frequent dev label) | {100 * majority(task):.1f} | | | | |")
        lines.append("")
    table = "\n".join(lines)
    print(table)

    if args.img:
        img = Path(args.img)
        img.mkdir(parents=True, exist_ok=True)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.5))
        for m in models:
            key = {"electra": "loss_generator", "gpt": "loss_clm", "xlnet": "loss_plm"}.get(MODELS[m][0], "loss_mlm")
            curves = []
            for s in range(n_pre[m]):
                recs = [json.loads(x) for x in (runs_dir / f"{m}-s{s}" / "log.jsonl").read_text().splitlines()]
                curves.append([r[key] for r in recs if "eval" not in r])
            n = min(map(len, curves))
            mean = [statistics.mean(c[i] for c in curves) for i in range(n)]
            w = max(1, n // 50)
            smooth = [statistics.mean(mean[max(0, i - w):i + 1]) for i in range(n)]
            ax.plot(range(1, n + 1), smooth, label=m + {"electra": " (generator)", "gpt": " (next token)",
                                                        "xlnet": " (permuted)"}.get(MODELS[m][0], ""))
        ax.set_xlabel("step")
        ax.set_ylabel("training loss: MLM (generator for electra), next-token for gpt, permuted LM for xlnet; mean over seeds, smoothed", fontsize=7)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(img / "pretrain_loss.png", dpi=110)
        plt.close(fig)

        fig, axes = plt.subplots(1, len(TASKS), figsize=(10, 4.5), sharey=False)
        for ax, task in zip(axes, TASKS):
            names = [c[0] for c in cells]
            accs = [[100 * r["accuracy"] for r in results(n_, task)] for n_ in names]
            ax.bar(range(len(names)), [statistics.mean(a) for a in accs],
                   yerr=[[statistics.mean(a) - min(a) for a in accs], [max(a) - statistics.mean(a) for a in accs]],
                   color=["#999" if "control" in n_ else "#4c72b0" for n_ in names], capsize=3)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{task}: dev accuracy (%), range over seeds")
            lo = min(min(a) for a in accs)
            ax.set_ylim(max(0, lo - 5), None)
        fig.tight_layout()
        fig.savefig(img / "finetune_accuracy.png", dpi=110)
        plt.close(fig)
        print(f"wrote {img / 'pretrain_loss.png'} and {img / 'finetune_accuracy.png'}")

    if args.out:
        write_section(Path(args.out), "matrix", table)

if __name__ == "__main__":
    main()
