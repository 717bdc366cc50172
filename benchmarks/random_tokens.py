"""Random replacements (the 10% branch of 80/10/10) before and after the unit unigram tables (issue 17).

Held-out text only (nothing was tuned on it): People's Daily lines whose 0-based index % 5 == 4
(``corpora/pd1998_pos_train.txt``, tags removed) and the texts of the iNews records of split
``dev``.  For each corpus, one ``--masking wwm --tasks mlm`` build per ``--random-tokens``:
``vocab`` (BERT), ``row`` (the row's own tokens: what ``unigram`` drew before unit tables) and
``unigram`` (the unit's table), read back through the reader.  Among the random replacements
(predicted positions holding neither ``[MASK]`` nor the original token):

* ``##``: the share of continuation pieces;
* ``in row``: the share equal to a token found elsewhere in the same row (its original tokens),
  and ``predicted``: the share the unit tables predict for a draw from them (per replacement, the
  probability that a draw from its unit's table without the original hits one of the row's other
  tokens), so the two can be compared;
* ``TV``: the total-variation distance between the replacements' token distribution and the
  build's token distribution (the sum of the unit tables), and ``TV floor``: the same distance for
  as many tokens drawn from the build's distribution itself (the sampling noise of that many
  draws: a draw that follows the distribution exactly scores this, not 0).

Then the build time (CPU seconds of the build process, best of ``--repeat``) on ``--timing-mb`` of
held-out text (the People's Daily paragraphs, then iNews dev texts, one per line) of ``--random-tokens
unigram`` with this checkout against ``row`` (the previous default's draw; this checkout), and,
with ``--before-code DIR`` (a checkout of the code before, e.g. ``git archive f233bc8 | tar -x -C
DIR``), against that code's default build.

    python benchmarks/random_tokens.py --shared ../shared [--before-code DIR] [--work DIR] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from unk_share import inews_dev_records, log, parse_args, pd_heldout  # noqa: E402

from zhmask.api import build_corpus  # noqa: E402
from zhmask.config import BuildConfig  # noqa: E402
from zhmask.masking.unigram import BuildTables  # noqa: E402
from zhmask.reader import Build  # noqa: E402
from zhmask.view import iter_batches  # noqa: E402

MODES = ("vocab", "row", "unigram")


def build(src: Path, out: Path, random_tokens: str) -> Path:
    cfg = BuildConfig(inputs=[str(src)], masking="wwm", tasks=["mlm"], random_tokens=random_tokens, out=str(out),
                      overwrite=True, workers=1).validate()
    build_corpus(cfg)
    return out


def build_distribution(out: Path) -> np.ndarray:
    """The build's token counts: the sum of its unit tables."""
    b = Build(out)
    tables = BuildTables(out, b.manifest["unigram_tables"], b.vocab_size)
    counts = np.zeros(b.vocab_size, dtype=np.int64)
    for u in tables.files:
        t = tables.get(u)
        counts[t.ids] += t.counts
    return counts


def measure(out: Path, dist: np.ndarray, tables: BuildTables) -> dict:
    """The random replacements of the build in ``out``, classified (``tables``: the unigram
    build's tables of the same text, for the share a draw from them predicts)."""
    b = Build(out)
    tok = b.tokenizer
    cont = np.array([t.startswith("##") for t in tok.id_to_token])
    drawn: list[np.ndarray] = []
    in_row = 0
    predicted = 0.0
    for batch in iter_batches(b.shards):
        for r in batch.to_pylist():
            inp = np.asarray(r["input_ids"], dtype=np.int64)
            lab = np.asarray(r["labels"], dtype=np.int64)
            pred = lab != -100
            orig = np.where(pred, lab, inp)
            rnd = np.flatnonzero(pred & (inp != tok.mask_id) & (inp != lab))
            if not len(rnd):
                continue
            drawn.append(inp[rnd])
            t = tables.get(r["unit"])
            p = np.zeros(b.vocab_size)
            p[t.ids] = t.counts
            for i in rnd.tolist():
                others = np.delete(orig, i)
                in_row += int(inp[i] in others)
                q = p.copy()
                q[orig[i]] = 0  # the draw leaves the original out
                if q.sum():
                    mask = np.zeros(b.vocab_size, dtype=bool)
                    mask[others] = True
                    predicted += q[mask].sum() / q.sum()
    d = np.concatenate(drawn) if drawn else np.zeros(0, dtype=np.int64)
    n = len(d)
    p_build = dist / dist.sum()
    p_repl = np.bincount(d, minlength=len(dist)) / max(n, 1)
    floor = np.random.default_rng(0).multinomial(n, p_build) / max(n, 1)
    return {"random": n, "continuation": float(cont[d].mean()) if n else 0.0, "in_row": in_row / max(n, 1),
            "predicted_in_row": predicted / max(n, 1), "tv": 0.5 * float(np.abs(p_repl - p_build).sum()),
            "tv_floor": 0.5 * float(np.abs(floor - p_build).sum())}


def cpu_seconds(code: Path, src: Path, out: Path, random_tokens: str | None) -> float:
    """CPU seconds (user + system) of a fresh ``zhmask build-corpus`` run by the code in ``code``."""
    shutil.rmtree(out, ignore_errors=True)  # (a build of the same configuration would be reused)
    args = [sys.executable, "-m", "zhmask.cli", "build-corpus", str(src), "--out", str(out), "--masking", "wwm",
            "--tasks", "mlm", "--workers", "1", "--overwrite", "-q"]
    if random_tokens:
        args += ["--random-tokens", random_tokens]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, check=True, env={**os.environ, "PYTHONPATH": str(code)}, cwd=str(code))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def added_work(src: Path, work: Path, repeat: int) -> dict:
    """CPU seconds, in this process, of what ``--random-tokens`` changes in a build of ``src`` (one
    unit: its documents made once): masking every example (``Pipeline.masked_block``, batches of
    ``MASK_BATCH``) with ``row`` and with ``unigram``, and counting and writing the unit's table
    (``unigram``); best of ``repeat``, interleaved."""
    from zhmask.masking.unigram import write_table
    from zhmask.pipeline import MASK_BATCH, Pipeline
    from zhmask.rng import DrawsBatch
    from zhmask.steps.read import RawDoc

    lines = src.read_text(encoding="utf-8").splitlines()
    pipes = {m: Pipeline(BuildConfig(masking="wwm", tasks=["mlm"], random_tokens=m, docs_per_shard=len(lines))
                         .validate()) for m in ("row", "unigram")}
    docs = [d for d, _ in pipes["row"].documents([RawDoc(f"t:{i}", t) for i, t in enumerate(lines)]) if d]
    best: dict = {"mask row": [], "mask unigram": [], "table (count + write)": []}
    for _ in range(repeat):
        for m, pipe in pipes.items():
            exs = list(pipe.examples(docs, 0))
            rngs = DrawsBatch()
            t0 = time.process_time()
            for i in range(0, len(exs), MASK_BATCH):
                batch = exs[i:i + MASK_BATCH]
                rngs.prepare(pipe.mask_keys(batch))
                pipe.masked_block(batch, rngs)
            best[f"mask {m}"].append(time.process_time() - t0)
        t0 = time.process_time()
        write_table(work / "table.arrow", pipes["unigram"].unit_table(docs))
        best["table (count + write)"].append(time.process_time() - t0)
    return {"tokens": int(sum(len(d.tokens) for d in docs)), "examples": len(exs),
            **{k: min(v) for k, v in best.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before-code", default=None, help="a checkout of the code before, for the build time")
    ap.add_argument("--repeat", type=int, default=3, help="build-time runs per variant (the best counts)")
    ap.add_argument("--timing-mb", type=float, default=2.0, help="size of the build-time input (MB)")
    a, shared, work = parse_args(ap, "random_tokens.")
    pd = work / "pd_heldout.txt"
    pd.write_text("\n".join(pd_heldout(shared)) + "\n", encoding="utf-8")
    inews = work / "inews_dev.jsonl"
    inews.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n"
                             for r in inews_dev_records(shared) if r.get("text")), encoding="utf-8")
    res: dict = {"corpora": {}, "cpu_s": {}}
    for name, src in (("People's Daily (index % 5 == 4)", pd), ("iNews dev", inews)):
        log(f"{name}: {src.stat().st_size / 1e6:.2f} MB")
        outs = {m: build(src, work / f"{src.stem}-{m}", m) for m in MODES}
        tables_out = outs["unigram"]
        tables = BuildTables(tables_out, Build(tables_out).manifest["unigram_tables"])
        dist = build_distribution(tables_out)
        res["corpora"][name] = {m: measure(outs[m], dist, tables) for m in MODES}
        res["corpora"][name]["tokens"] = int(dist.sum())
    timing = work / "timing.txt"
    lines, size = [], 0
    texts = pd.read_text(encoding="utf-8").splitlines() + [" ".join(r["text"].split()) for r in inews_dev_records(shared)
                                                           if r.get("text")]
    for t in texts:
        if size >= a.timing_mb * 1e6:
            break
        lines.append(t)
        size += len(t.encode("utf-8")) + 1
    timing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    variants = [("row (this code)", ROOT, "row"), ("unigram (this code)", ROOT, "unigram")]
    if a.before_code:
        variants.insert(0, ("default (code before)", Path(a.before_code).resolve(), None))
    times: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    for _ in range(a.repeat):  # interleaved, so that a busy moment of the machine hits every variant
        for label, code, rt in variants:
            times[label].append(cpu_seconds(code, timing, work / "timing", rt))
    for label, t in times.items():
        res["cpu_s"][label] = min(t)
        log(f"{label}: {t}")
    res["added"] = added_work(timing, work, a.repeat)
    print("| corpus | --random-tokens | random replacements | `##` pieces | elsewhere in the row | "
          "predicted by the unit tables | TV to the build's tokens | TV floor |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, by in res["corpora"].items():
        for m in MODES:
            v = by[m]
            print(f"| {name} | {m} | {v['random']:,} | {100 * v['continuation']:.1f}% | {100 * v['in_row']:.1f}% | "
                  f"{100 * v['predicted_in_row']:.1f}% | {v['tv']:.3f} | {v['tv_floor']:.3f} |")
    print()
    print(f"| build of {timing.stat().st_size / 1e6:.2f} MB of held-out text (wwm, mlm, 1 worker) | CPU s (best of {a.repeat}) |")
    print("|---|---:|")
    for label, s in res["cpu_s"].items():
        print(f"| {label} | {s:.2f} |")
    ad = res["added"]
    print()
    print(f"| the same text as one unit ({ad['tokens']:,} tokens, {ad['examples']:,} examples), in process | "
          f"CPU s (best of {a.repeat}) |")
    print("|---|---:|")
    for k in ("mask row", "mask unigram", "table (count + write)"):
        print(f"| {k} | {ad[k]:.3f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
