"""Throughput of zhmask against the floor and the recipe users run today, one process, and the
issue-16 targets computed from the figures of that one run.

    python benchmarks/throughput.py --corpus ../shared/corpora/pd1998_pos_train.txt --mb 5 \\
        --repeat 3 --build-repeat 3 --profile --out docs/performance.md

Measures MB of UTF-8 input per second per process, all on the same text:

(a) rjieba alone: ``rjieba.cut`` (and ``rjieba.tag``, which zhmask uses) over every line: the
    floor any segmentation-aware pipeline sits on;
(b) the transformers whole-word recipe: jieba segmentation, words joined by spaces,
    ``BertTokenizerFast`` (zhmask's bundled vocab.txt) with offsets and overflow into
    sequences of ``--max-seq-length`` tokens (padded to it: the collator does not pad offsets),
    ``DataCollatorForLanguageModeling(
    whole_word_mask=True)`` over batches of 64;
(c) ``zhmask build-corpus`` end to end in a fresh process (start-up included), ``--workers 1``,
    shards written: ``--masking wwm`` and ``--masking ngram``, each with ``--tasks mlm`` and
    ``--tasks mlm,sop`` (when the ``sop`` task is registered), and ``--pipeline ernie2``; each
    also on the first 20 documents (its start-up), which is subtracted for the rate on a large
    input;
(d) each zhmask stage alone, in process (read, normalise, sentences, segment, entities,
    tokenise, pack, mask, write), so the bottleneck is visible.

Then the targets of issue 16 (``TARGETS`` below): each one's figure from this run, its
threshold, met or not.  Ratios use MB per CPU-second (of all the build's processes for (c)).

``--corpus`` takes plain text (one document a line), the PKU ``word/tag`` format (tags and spaces
are stripped, as ``sed -E 's#/[a-zA-Z]+##g; s/ +//g; s/\\[|\\]//g'`` does) or JSONL (``text``
field).  The first ``--mb`` MB of documents are written to a temporary file that every
measurement reads.  ``--profile`` adds a cProfile of an in-process build of ``wwm --tasks
mlm,sop`` and of ``--pipeline ernie2``.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _report import machine, write_section  # noqa: E402,F401  (memory.py imports them from here)

_POS_TAG = re.compile(r"/[a-zA-Z]+")
_POS_LINE = re.compile(r"^\S+/[a-zA-Z]+(\s|$)")


def prepare_corpus(path: Path, mb: float, dest: Path) -> Path:
    """The first ``mb`` MB of documents of ``path`` as plain text, one a line."""
    limit = int(mb * 1_000_000)
    out, size = [], 0
    jsonl = path.suffix in (".jsonl", ".json", ".ndjson")
    with open(path, encoding="utf-8") as fh:
        first = True
        pos = False
        for line in fh:
            if jsonl:
                try:
                    text = json.loads(line).get("text") or ""
                except ValueError:
                    continue
                text = " ".join(text.split())  # one document a line
            else:
                if first:
                    pos = bool(_POS_LINE.match(line.strip()))
                text = line.rstrip("\n")
                if pos:
                    text = re.sub(r"\[|\]", "", re.sub(r" +", "", _POS_TAG.sub("", text)))
            first = False
            if not text.strip():
                continue
            out.append(text)
            size += len(text.encode("utf-8")) + 1
            if size >= limit:
                break
    dest.write_text("\n".join(out) + "\n", encoding="utf-8")
    return dest


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def timed(fn, repeat: int = 1) -> tuple[float, float]:
    """(wall, CPU) seconds of ``repeat`` calls: the run with the median CPU time.  CPU time is what
    one process costs whatever else shares the cores; wall time is what a user waits."""
    ts = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append((time.process_time() - c0, time.perf_counter() - t0))
    ts.sort()
    cpu, wall = ts[len(ts) // 2]
    return wall, cpu


# ---------------------------------------------------------------------- (a) the floor
def bench_rjieba(lines: list[str], repeat: int) -> dict[str, float]:
    import rjieba

    jb = rjieba.Jieba()
    jb.cut("预热")

    def cut():
        for ln in lines:
            jb.cut(ln, False)

    def tag():
        for ln in lines:
            jb.tag(ln, False)

    return {"cut": timed(cut, repeat), "tag": timed(tag, repeat)}


# ---------------------------------------------------------------------- (b) the transformers recipe
def bench_recipe(lines: list[str], max_len: int, batch: int = 64) -> tuple[tuple[float, float], dict[str, float], int]:
    import logging
    import warnings

    import jieba
    from transformers import BertTokenizerFast, DataCollatorForLanguageModeling

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()  # loading the dictionary is not counted
    tok = BertTokenizerFast(str(ROOT / "zhmask" / "data" / "vocab.txt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random replacement is not supported with whole word masking"
        coll = DataCollatorForLanguageModeling(tok, mlm=True, whole_word_mask=True, mlm_probability=0.15, seed=0)
    parts: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    spaced = [" ".join(jieba.cut(ln, HMM=False)) for ln in lines]
    t1 = time.perf_counter()
    n_seq = 0
    t_tok = t_coll = 0.0
    step = 1024
    for i in range(0, len(spaced), step):
        ta = time.perf_counter()
        # padded to max_len here: the collator pads input_ids but not offset_mapping
        enc = tok(spaced[i:i + step], truncation=True, max_length=max_len, return_overflowing_tokens=True,
                  padding="max_length", return_offsets_mapping=True, return_special_tokens_mask=True)
        feats = [{"input_ids": ids, "attention_mask": am, "special_tokens_mask": stm, "offset_mapping": off}
                 for ids, am, stm, off in zip(enc["input_ids"], enc["attention_mask"], enc["special_tokens_mask"],
                                              enc["offset_mapping"])]
        tb = time.perf_counter()
        for j in range(0, len(feats), batch):
            coll(feats[j:j + batch])
        tc = time.perf_counter()
        t_tok += tb - ta
        t_coll += tc - tb
        n_seq += len(feats)
    total = (time.perf_counter() - t0, time.process_time() - c0)
    parts = {"jieba + join": t1 - t0, "tokenizer (offsets)": t_tok, "collator (wwm)": t_coll}
    return total, parts, n_seq


# ---------------------------------------------------------------------- (c) end to end
# name -> build-corpus options; the targets below refer to these names
BUILDS: dict[str, tuple[str, ...]] = {
    "wwm mlm": ("--masking", "wwm", "--tasks", "mlm"),
    "wwm mlm,sop": ("--masking", "wwm", "--tasks", "mlm,sop"),
    "ngram mlm": ("--masking", "ngram", "--tasks", "mlm"),
    "ngram mlm,sop": ("--masking", "ngram", "--tasks", "mlm,sop"),
    "ernie2": ("--pipeline", "ernie2"),
}


def sop_registered() -> bool:
    from zhmask.labels import TASKS

    return "sop" in TASKS


def bench_build(corpus: Path, options: tuple[str, ...], work: Path, workers: int = 1) -> tuple[tuple[float, float], dict]:
    """(wall, CPU of the build's processes) seconds and the manifest of ``build-corpus CORPUS OPTIONS``."""
    import resource
    import shutil

    out = work / f"build-{workers}"
    cmd = [sys.executable, "-m", "zhmask.cli", "build-corpus", str(corpus), *options,
           "--workers", str(workers), "--out", str(out), "--overwrite", "-q"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if out.exists():
        shutil.rmtree(out)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=str(ROOT))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    secs = (time.perf_counter() - t0, ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return secs, manifest


def median_build(corpus: Path, options: tuple[str, ...], work: Path, repeat: int) -> tuple[tuple[float, float], dict]:
    """The run with the median CPU time of ``repeat`` runs of ``bench_build``."""
    runs = sorted((bench_build(corpus, options, work) for _ in range(max(1, repeat))), key=lambda r: r[0][1])
    return runs[len(runs) // 2]


# ---------------------------------------------------------------------- the targets
def targets(rate: dict[str, float], large: dict[str, float], startup_cpu: dict[str, float], floor: float,
            recipe: float | None) -> list[tuple[str, str, str, bool | None]]:
    """Issue 16's single-process targets as (target, figure, threshold, met) from this run's figures:
    ``rate`` MB per CPU-s of each (c) build (start-up included), ``large`` the same with its start-up
    subtracted, ``startup_cpu`` CPU-s of each build on 20 documents, ``floor`` rjieba ``cut``'s MB per
    CPU-s, ``recipe`` the transformers recipe's (None: not measured).  Met is None when a figure
    is missing."""
    rows: list[tuple[str, str, str, bool | None]] = []
    for name in ("wwm mlm", "wwm mlm,sop"):
        if name not in rate:
            continue
        cmd = f"`--masking wwm --tasks {name.split()[1]}`"
        if recipe:
            x = rate[name] / recipe
            rows.append((f"{cmd}, whole process: vs the transformers recipe (b)", f"{x:.1f}x", ">= 12x", x >= 12))
        else:
            rows.append((f"{cmd}, whole process: vs the transformers recipe (b)", "(b) not run", ">= 12x", None))
        x = rate[name] / floor
        rows.append((f"{cmd}, whole process: share of rjieba `cut` (a)", f"{x:.1%}", ">= 20%", x >= 0.20))
        x = large[name] / floor
        rows.append((f"{cmd}, start-up subtracted: share of rjieba `cut` (a)", f"{x:.1%}", ">= 25%", x >= 0.25))
    for tasks in ("mlm", "mlm,sop"):
        if f"ngram {tasks}" in rate and f"wwm {tasks}" in rate:
            x = rate[f"ngram {tasks}"] / rate[f"wwm {tasks}"]
            rows.append((f"`--masking ngram --tasks {tasks}` within 15% of `wwm` (rate ngram / wwm)", f"{x:.2f}",
                         ">= 0.85", x >= 0.85))
    if "ernie2" in rate and "wwm mlm" in rate:
        x = rate["wwm mlm"] / rate["ernie2"]
        rows.append(("`--pipeline ernie2` within 3 times of `wwm` mlm (how many times slower)",
                     f"{x:.1f}x ({rate['ernie2']:.2f} MB/CPU-s)", "<= 3x", x <= 3))
    if "wwm mlm" in startup_cpu:
        x = startup_cpu["wwm mlm"]
        rows.append(("start-up: `--masking wwm --tasks mlm` on 20 documents", f"{x:.2f} CPU-s", "<= 0.3 CPU-s",
                     x <= 0.3))
    return rows


def targets_table(rows: list[tuple[str, str, str, bool | None]]) -> str:
    out = ["| target | figure | threshold | status |", "|---|---:|---:|---|"]
    for what, fig, thr, met in rows:
        status = "n/a" if met is None else ("met" if met else "**not met**")
        out.append(f"| {what} | {fig} | {thr} | {status} |")
    return "\n".join(out)


# ---------------------------------------------------------------------- (d) stages
def bench_stages(corpus: Path, masking: str, tasks: list[str], work: Path) -> dict[str, tuple[float, float]]:
    from zhmask.config import BuildConfig
    from zhmask.pipeline import Pipeline, new_stats
    from zhmask.record import Document
    from zhmask.schema import schema_with_metadata
    from zhmask.steps.read import InputFile, read_file
    from zhmask.write.shards import ShardWriter

    cfg = BuildConfig(inputs=[str(corpus)], masking=masking, tasks=tasks, out=str(work / "stages"))
    t: dict[str, tuple[float, float]] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    pipe = Pipeline(cfg)
    if hasattr(pipe, "documents"):  # tables the batched stages build at first use (the lexicon's)
        from zhmask.steps.read import RawDoc

        pipe.documents([RawDoc("warm-up", "北京大学")])
    t["(set-up, once a process)"] = (time.perf_counter() - t0, time.process_time() - c0)

    try:  # the garbage collector's setting while a build runs a unit
        from zhmask.pipeline import fewer_collections
    except ImportError:  # a zhmask without it
        from contextlib import nullcontext as fewer_collections

    def stage(name, fn):
        with fewer_collections():
            a, c = time.perf_counter(), time.process_time()
            r = fn()
            t[name] = (time.perf_counter() - a, time.process_time() - c)
        return r

    raws = stage("read", lambda: list(read_file(InputFile(corpus, corpus.name), fmt="auto", doc_sep="line",
                                                text_field="text", title_field=None, on_decode_error="replace")))
    texts = stage("normalise", lambda: [pipe.normalizer(r.text) for r in raws])
    per = cfg.docs_per_shard
    if hasattr(pipe, "documents"):  # the build's batched stages, unit by unit, each stage timed
        pipe.stage_times = {}
        with fewer_collections():
            docs = [d for i in range(0, len(raws), per) for d, _ in pipe.documents(raws[i:i + per]) if d is not None]
        for name, (wall, cpu) in pipe.stage_times.items():
            t[name] = (wall, cpu)
        pipe.stage_times = None
    else:  # a zhmask without them (it still has the per-document functions): each stage over every document
        from zhmask.steps.segment import split_at_sentences
        from zhmask.steps.sentences import split_sentences

        keep = [i for i, x in enumerate(texts) if x]
        texts = [texts[i] for i in keep]
        raws = [raws[i] for i in keep]
        sents = stage("sentences", lambda: [split_sentences(x) for x in texts])

        def seg():
            out = []
            for x, s in zip(texts, sents):
                w, _ = split_at_sentences(pipe.segmenter.segment(x), s)
                out.append(pipe.tok.align(x, w)[0])
            return out

        words = stage("segment (+ POS, align)", seg)
        ents = stage("entities", lambda: [pipe.entities.detect(x, w) for x, w in zip(texts, words)])
        toks = stage("tokenise", lambda: [pipe.tok.tokenize(x, w) for x, w in zip(texts, words)])
        docs = []
        for r, x, s, w, e, k in zip(raws, texts, sents, words, ents, toks):
            d = Document(r.id, x)
            d.sentences, d.words, d.entities, d.tokens = s, w, e, k
            if len(k):
                docs.append(d)
    exs = stage("pack (examples: " + ",".join(tasks) + ")",
                lambda: [ex for i in range(0, len(docs), per) for ex in pipe.examples(docs[i:i + per])])
    stats = new_stats()

    def mask():
        if not hasattr(pipe, "mask_keys"):  # a zhmask without batched generators
            return [row for ex in exs for row in pipe.rows(ex, stats)]
        from zhmask.pipeline import MASK_BATCH
        from zhmask.rng import DrawsBatch

        rngs, out, n = DrawsBatch(), [], cfg.dupe_factor
        for i in range(0, len(exs), MASK_BATCH):  # as run_unit does
            batch = exs[i:i + MASK_BATCH]
            if hasattr(pipe, "mask_batch"):  # column blocks (or rows where a strategy has no batched path)
                out += pipe.mask_batch(batch, rngs, stats)
                continue
            rngs.prepare(pipe.mask_keys(batch))
            for k, ex in enumerate(batch):
                out += pipe.rows(ex, stats, rngs, k * n)
        return out

    rows = stage(f"mask ({masking}, chinese_ref)", mask)
    schema = schema_with_metadata(pipe.config_for_metadata(), "bench", pipe.tok.vocab_size)

    def write():
        # about docs_per_shard rows a shard (items are row dicts or column blocks of many rows)
        w, shard, count = None, 0, 0
        for item in rows:
            if w is None:
                w = ShardWriter(work / "stages" / "data" / f"shard-{shard:05d}.arrow", schema, pipe.config.compression).__enter__()
            if isinstance(item, dict):
                w.write(item)
                count += 1
            else:
                w.write_block(item)
                count += len(item)
            if count >= per:
                w.__exit__(None, None, None)
                w, shard, count = None, shard + 1, 0
        if w is not None:
            w.__exit__(None, None, None)

    stage("write", write)
    return t


def profile_build(corpus: Path, options: tuple[str, ...], work: Path, top: int = 25) -> str:
    """cProfile of an in-process build with the options of a (c) row (``--pipeline P`` or
    ``--masking M --tasks T``), by own time and by cumulative time."""
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig

    opts = dict(zip(options[::2], options[1::2]))
    common = dict(inputs=[str(corpus)], out=str(work / "profile"), overwrite=True)
    if "--pipeline" in opts:
        cfg = BuildConfig.from_preset(opts["--pipeline"], **common)
    else:
        cfg = BuildConfig(masking=opts["--masking"], tasks=opts["--tasks"].split(","), **common)
    prof = cProfile.Profile()
    prof.enable()
    build_corpus(cfg)
    prof.disable()
    out = []
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats(key).print_stats(top)
        text = buf.getvalue()
        text = text[text.find("ncalls"):] if "ncalls" in text else text
        text = text.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")
        out.append(f"By {key} (top {top}):\n\n```\n" + "\n".join(ln.rstrip() for ln in text.strip().splitlines())
                   + "\n```\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, type=Path)
    ap.add_argument("--mb", type=float, default=4.0, help="MB of the corpus to use (default 4)")
    ap.add_argument("--out", type=Path, default=None, help="write the report (Markdown) here")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the fast measurements; the median is kept")
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--build-repeat", type=int, default=3,
                    help="runs of each (c) build and of its start-up build; the median by CPU is kept (default 3)")
    ap.add_argument("--builds", default="; ".join(BUILDS), metavar="NAMES",
                    help="the (c) builds, names separated by ';' (default all: " + "; ".join(BUILDS) + ")")
    ap.add_argument("--skip-recipe", action="store_true", help="skip (b), the slow one")
    ap.add_argument("--profile", action="store_true",
                    help="add a cProfile of an in-process `wwm --tasks mlm,sop` build and of `--pipeline ernie2`")
    args = ap.parse_args(argv)

    unknown = [n for n in _names(args.builds) if n not in BUILDS]
    if unknown or not _names(args.builds):
        raise SystemExit(f"--builds: unknown build {unknown[0] if unknown else args.builds!r}; "
                         f"known: {'; '.join(BUILDS)}")
    wanted = [n for n in BUILDS if n in _names(args.builds)]
    if not args.corpus.is_file():
        raise SystemExit(f"--corpus: no such file: {args.corpus}")
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    work = Path(tempfile.mkdtemp(prefix="zhmask-bench-"))
    corpus = prepare_corpus(args.corpus, args.mb, work / "corpus.txt")
    nbytes = corpus.stat().st_size
    mb = nbytes / 1e6
    lines = lines_of(corpus)
    print(f"corpus: {args.corpus} -> {len(lines)} documents, {mb:.2f} MB of UTF-8; {host}", flush=True)

    notes = ["MB/s (CPU) is MB per CPU-second of the process (of all the build's processes for (c)): "
             "what one process does on a core of its own; ratios use it, since other jobs share the cores."]
    if not sop_registered():
        wanted = [n for n in wanted if "sop" not in n]
        notes.append("The `sop` task is not registered in this checkout: the `--tasks mlm,sop` builds are left out.")
        print("note: the sop task is not registered: no --tasks mlm,sop builds", flush=True)

    a = bench_rjieba(lines, args.repeat)
    print(f"(a) rjieba cut {mb / a['cut'][1]:.1f} MB/CPU-s, tag {mb / a['tag'][1]:.1f} MB/CPU-s", flush=True)
    b_secs, b_parts, b_seq = (None, {}, 0)
    if not args.skip_recipe:
        b_secs, b_parts, b_seq = bench_recipe(lines, args.max_seq_length)
        print(f"(b) transformers recipe {mb / b_secs[1]:.3f} MB/CPU-s ({b_seq} sequences)", flush=True)
    # each build on the whole input, and the same command on the first 20 documents (imports,
    # dictionaries, the vocabulary, one shard and the manifest): what remains is the input's cost
    tiny = work / "tiny.txt"
    tiny.write_text("\n".join(lines[:20]) + "\n", encoding="utf-8")
    builds, startups = {}, {}
    for name in wanted:
        secs, man = median_build(corpus, BUILDS[name], work, args.build_repeat)
        builds[name] = (secs, man)
        startups[name] = median_build(tiny, BUILDS[name], work, args.build_repeat)[0]
        print(f"(c) build {name}: {secs[0]:.2f} s wall, {secs[1]:.2f} CPU s, {mb / secs[1]:.2f} MB/CPU-s, "
              f"{man['examples_written']} examples; start-up {startups[name][1]:.2f} CPU s", flush=True)
    stage_tasks = ["mlm", "sop"] if sop_registered() else ["mlm"]
    stages = bench_stages(corpus, "wwm", stage_tasks, work)
    print("(d) " + ", ".join(f"{k} {v[1]:.2f}s" for k, v in stages.items()), flush=True)

    floor = mb / a["cut"][1]
    recipe = mb / b_secs[1] if b_secs else None

    def line(what: str, wc: tuple[float, float], ratio: bool = True) -> str:
        wall, cpu = wc
        rate = mb / cpu if cpu > 0 else float("inf")
        r_a = f"{rate / floor:.1%}" if ratio else ""
        r_b = (f"{rate / recipe:.1f}x" if recipe else "n/a") if ratio else ""
        return f"| {what} | {wall:.2f} | {cpu:.2f} | {mb / wall:.2f} | {rate:.2f} | {r_a} | {r_b} |"

    def command(name: str) -> str:
        return "`zhmask build-corpus " + " ".join(BUILDS[name]) + "`"

    table = ["| measurement | wall s | CPU s | MB/s (wall) | MB/s (CPU) | share of (a) | vs (b) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    table.append(line("(a) rjieba `cut` alone (the floor)", a["cut"]))
    table.append(line("(a') rjieba `tag` alone (POS: what zhmask calls)", a["tag"]))
    if b_secs:
        table.append(line(f"(b) transformers whole-word recipe, {b_seq} sequences of <= {args.max_seq_length}", b_secs))
        for k, v in b_parts.items():
            table.append(f"| &nbsp;&nbsp;(b) {k} | {v:.2f} | | {mb / v:.2f} | | | |")
    large = {}
    for name, (secs, man) in builds.items():
        table.append(line(f"(c) {command(name)} (new process, {man['examples_written']} examples)", secs))
    for name, (secs, man) in builds.items():
        st = startups[name]
        table.append(f"| &nbsp;&nbsp;(c) start-up: {command(name)} on 20 documents | {st[0]:.2f} | {st[1]:.2f} "
                     "| | | | |")
    for name, (secs, man) in builds.items():
        st = startups[name]
        large[name] = mb / max(secs[1] - st[1], 1e-9)
        table.append(line(f"&nbsp;&nbsp;(c) {name}, start-up subtracted (the rate on a large input)",
                          (secs[0] - st[0], secs[1] - st[1])))
    total_cpu = sum(v[1] for v in stages.values())
    for k, v in stages.items():
        table.append(line(f"(d) {k}, `wwm --tasks {','.join(stage_tasks)}` ({v[1] / total_cpu:.0%} of stage CPU)",
                          v, ratio=False))
    report = "\n".join(table)
    rate = {name: mb / secs[1] for name, (secs, _) in builds.items()}
    goals = targets_table(targets(rate, large, {n: s[1] for n, s in startups.items()}, floor, recipe))
    print()
    print(report)
    print()
    print(goals)
    if args.out:
        cmd = "python benchmarks/throughput.py " + shlex.join(argv if argv is not None else sys.argv[1:])
        profs = []
        if args.profile:
            for name in ("wwm mlm,sop", "ernie2"):
                if name in wanted:
                    print(f"profiling {name} ...", flush=True)
                    profs.append((name, profile_build(corpus, BUILDS[name], work)))
        try:
            load = f"{os.getloadavg()[0]:.2f}"
        except OSError:
            load = "unknown"
        text = [f"<!-- generated by benchmarks/throughput.py on {when} -->",
                f"Command: `{cmd}`  ", f"Date: {when}  ", f"Machine: {host}; at the end {load}  ",
                f"Input: the first {args.mb:g} MB of `{args.corpus}` ({len(lines)} documents, {mb:.2f} MB of "
                f"UTF-8), one process.", "", report, ""]
        text += [f"Note: {n}" for n in notes]
        text += ["", "### The issue-16 targets, from the figures above", "",
                 "Rates are MB per CPU-second (start-up included unless said); (a) is rjieba `cut`, (b) the "
                 "transformers recipe, both from the table above.", "", goals, ""]
        for name, prof in profs:
            text += ["", f"### Profile of an in-process {command(name)} build (cProfile)", "", prof]
        write_section(args.out, "throughput", "\n".join(text))
        print(f"wrote {args.out}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)  # the corpus copy and the builds


def _names(spec: str) -> list[str]:
    """``--builds``: names separated by ';' (a name may hold a comma: ``wwm mlm,sop``)."""
    return [n.strip() for n in spec.split(";") if n.strip()]


if __name__ == "__main__":
    main()
