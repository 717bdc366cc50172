"""Peak memory of builds on growing inputs, and the scaling of ``--workers``.

    python benchmarks/memory.py --corpus ../shared/corpora/pd1998_pos_train.txt \\
        --corpus ../shared/corpora/inews_docs.jsonl --sizes 10,200 --out docs/performance.md

Inputs of each size (MB) are made by concatenating the corpora given (plain text, PKU
``word/tag`` text with the tags stripped, JSONL ``text`` fields: one document a line), repeated
as often as needed; a repeated document gets the same words, so the token cache stops growing
after the first pass (the distinct text is stated in the report).

Each build runs ``zhmask build-corpus FILE --masking wwm`` in a child process; its peak resident
memory is ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` read by a fresh wrapper process, i.e. the
largest single process of the build (with ``--workers N``, the largest worker or the parent).
``--scaling 40,5`` also times an input of each size with ``--workers 1`` and ``--workers 2``;
``--ray`` adds ``--engine ray --workers 2`` on the first of them, twice: with a local Ray of 2
CPUs that the build starts and stops, and on a running one (``ray start --head --num-cpus 2``,
then ``--ray-address auto``); it checks that their shards are byte-identical (sha256 of
``data/*.arrow``) to the local ones.  The
report ends with the issue-16 targets these figures decide (peak below 1 GB, flat within 20%,
``--workers 2`` at least 1.8 times ``--workers 1``, Ray identical and at least 1.6 times one local
worker), each met or not.  Speed-ups are wall-time ratios: on a shared machine they are only
meaningful near load 0, so the load average before and after each pair is given.

    python benchmarks/memory.py --corpus ../shared/corpora/pd1998_pos_train.txt \\
        --corpus ../shared/corpora/inews_docs.jsonl --sizes 10,200 --scaling 40,5 --ray --out docs/performance.md
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.throughput import machine, prepare_corpus, targets_table, write_section  # noqa: E402

_WRAPPER = r"""
import resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
secs = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(rc, secs, ru.ru_maxrss, ru.ru_utime + ru.ru_stime)
"""


def make_input(corpora: list[Path], mb: float, dest: Path, work: Path) -> tuple[Path, float]:
    """``mb`` MB of documents from ``corpora`` (repeated as needed); returns (path, distinct MB)."""
    parts = []
    for i, c in enumerate(corpora):
        parts.append(prepare_corpus(c, 1e6, work / f"part-{i}.txt").read_bytes())
    distinct = b"".join(parts)
    target = int(mb * 1_000_000)
    with open(dest, "wb") as fh:
        written = 0
        while written < target:
            chunk = distinct[: target - written]
            cut = chunk.rfind(b"\n") + 1 if len(chunk) < len(distinct) else len(chunk)
            if cut <= 0:
                break
            fh.write(chunk[:cut])
            written += cut
    return dest, min(len(distinct), target) / 1e6


def run_build(path: Path, out: Path, workers: int, extra: list[str]) -> tuple[float, int, dict, float]:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "zhmask.cli", "build-corpus", str(path), "--masking", "wwm", "--workers",
           str(workers), "--out", str(out), "-q", *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], env=env, cwd=str(ROOT), capture_output=True,
                         text=True, check=True)
    rc, secs, rss_kb, cpu = res.stdout.split()
    if rc != "0":
        raise SystemExit(f"build failed ({rc}): {res.stderr[-2000:]}")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return float(secs), int(rss_kb) * 1024, manifest, float(cpu)


def trace_build(path: Path, out: Path, every: float = 0.25) -> tuple[list[tuple[float, int]], float | None]:
    """(seconds since the start, resident bytes) of a ``--workers 1`` build's process, sampled from
    /proc every ``every`` seconds: where in the build the memory grows; and when the build-wide
    shuffle began (its first scatter file appeared in ``OUT/units``; None if never seen)."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "zhmask.cli", "build-corpus", str(path), "--masking", "wwm", "--out", str(out), "-q"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    samples, shuffle = [], None
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT))
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for ln in status.read_text().splitlines():
                if ln.startswith("VmRSS:"):
                    samples.append((time.perf_counter() - t0, int(ln.split()[1]) * 1024))
        except OSError:  # the process just ended
            pass
        if shuffle is None and any((out / "units").glob("scatter-*")):
            shuffle = time.perf_counter() - t0
        time.sleep(every)
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({proc.returncode})")
    return samples, shuffle


def trace_row(size: float, samples: list[tuple[float, int]], shuffle: float | None) -> str:
    """RSS at (the sample nearest) each tenth of the build's time, when the peak came, and the
    highest RSS before the shuffle began."""
    if not samples:
        return f"| {size:.1f} MB | (no samples) |"
    end = samples[-1][0]
    cells = []
    for k in range(1, 11):
        t_k, r_k = min(samples, key=lambda x: abs(x[0] - end * k / 10))
        cells.append(f"{r_k / 2**20:.0f}")
    t_peak, peak = max(samples, key=lambda x: x[1])
    if shuffle is None:
        units = "(not seen)"
    else:
        before = [r for t, r in samples if t < shuffle]
        units = f"{max(before) / 2**20:.0f} MiB; shuffle from {shuffle / end:.0%}" if before else "(no samples)"
    return (f"| {size:.1f} MB | " + " | ".join(cells) + f" | {peak / 2**20:.0f} MiB at {t_peak / end:.0%} of "
            f"{end:.0f} s | {units} |")


def shard_hashes(out: Path) -> dict[str, str]:
    """sha256 of each ``data/*.arrow`` shard of a build, by file name."""
    from zhmask.write.shards import sha256_file

    return {shard.name: sha256_file(shard) for shard in sorted((out / "data").glob("*.arrow"))}


def load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", type=Path, required=True)
    ap.add_argument("--sizes", default="10,200", help="input sizes in MB, comma-separated")
    ap.add_argument("--workers", type=int, default=1, help="workers of the memory builds")
    ap.add_argument("--scaling", default="", metavar="MB[,MB...]",
                    help="also time --workers 1 vs 2 on an input of each of these sizes (MB, comma-separated)")
    ap.add_argument("--ray", action="store_true",
                    help="also time --engine ray --workers 2 on the first --scaling input and compare its shards "
                         "with the local build's (skipped, with a note, when ray is not importable)")
    ap.add_argument("--trace", action="store_true",
                    help="instead of the table: sample the build's resident memory over time (/proc, --workers 1) "
                         "for each --sizes input: the RSS at each tenth of the build's time, and the peak")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        sizes = [float(x) for x in args.sizes.split(",") if x.strip()]
        scaling = [float(x) for x in args.scaling.split(",") if x.strip()]
    except ValueError:
        raise SystemExit("--sizes and --scaling take sizes in MB separated by commas, e.g. 10,200") from None
    if args.ray and not scaling:
        raise SystemExit("--ray needs --scaling (it runs on the first scaling input)")

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    work = Path(tempfile.mkdtemp(prefix="zhmask-mem-"))
    lines = ["| input | distinct text | workers | seconds | MB/s | peak RSS (largest process) | examples |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    goals: list[tuple[str, str, str, bool | None]] = []
    peaks = []
    if args.trace:
        rows = ["| input | " + " | ".join(f"{k}0%" for k in range(1, 11)) + " | peak | peak before the shuffle |",
                "|---:|" + "---:|" * 12]
        for mb in sizes:
            path, _ = make_input(args.corpus, mb, work / f"in-{mb:g}.txt", work)
            rows.append(trace_row(path.stat().st_size / 1e6, *trace_build(path, work / f"out-{mb:g}")))
            print(rows[-1], flush=True)
            path.unlink()
            shutil.rmtree(work / f"out-{mb:g}")
        print("\nMiB, the resident memory of the build's process at each tenth of its wall time:\n")
        print("\n".join(rows))
        shutil.rmtree(work, ignore_errors=True)
        return
    for mb in sizes:
        path, distinct = make_input(args.corpus, mb, work / f"in-{mb:g}.txt", work)
        size = path.stat().st_size / 1e6
        secs, peak, man, _ = run_build(path, work / f"out-{mb:g}", args.workers, [])
        peaks.append(peak)
        row = (f"| {size:.1f} MB | {distinct:.1f} MB | {args.workers} | {secs:.1f} | {size / secs:.2f} | "
               f"{peak / 2**20:.0f} MiB | {man['examples_written']} |")
        print(row, flush=True)
        lines.append(row)
        goals.append((f"peak RSS below 1 GB, {size:.1f} MB input", f"{peak / 2**20:.0f} MiB", "< 1 GB (954 MiB)",
                      peak < 1e9))
        path.unlink()
        shutil.rmtree(work / f"out-{mb:g}")
    text = [f"<!-- generated by benchmarks/memory.py on {when} -->",
            f"Command: `python benchmarks/memory.py {shlex.join(argv if argv is not None else sys.argv[1:])}`  ",
            f"Date: {when}  ", f"Machine: {host}", "", *((lines + [""]) if peaks else [])]
    if len(peaks) >= 2:
        ratio = max(peaks) / min(peaks)
        text.append(f"Largest peak / smallest peak: {ratio:.2f}.")
        goals.append((f"peak RSS flat from {min(sizes):g} MB to {max(sizes):g} MB (largest / smallest)",
                      f"{ratio:.2f}", "<= 1.20", ratio <= 1.2))
    for k, mb in enumerate(scaling):
        path, _ = make_input(args.corpus, mb, work / f"scale-{mb:g}.txt", work)
        size = path.stat().st_size / 1e6
        t, cpu = {}, {}
        load0 = load()
        for w in (1, 2):
            t[w], _, _, cpu[w] = run_build(path, work / f"scale-{w}", w, [])
            print(f"{size:.1f} MB, workers {w}: {t[w]:.1f} s wall, {cpu[w]:.1f} CPU s", flush=True)
        load1 = load()
        same = shard_hashes(work / "scale-1") == shard_hashes(work / "scale-2")
        text += [""] * bool(peaks or k) + [
            f"Scaling on {size:.1f} MB: `--workers 1` {t[1]:.1f} s wall ({size / t[1]:.2f} MB/s, {cpu[1]:.1f} CPU s), "
            f"`--workers 2` {t[2]:.1f} s wall ({size / t[2]:.2f} MB/s, {cpu[2]:.1f} CPU s, all processes): "
            f"{t[1] / t[2]:.2f}x wall; at most {2 * cpu[1] / cpu[2]:.2f}x on two idle cores (2 x the CPU ratio); "
            f"shards {'byte-identical' if same else 'DIFFERENT'}; load average {load0:.2f} before, {load1:.2f} "
            "after (other processes share the cores: the wall ratio is only meaningful near load 0)."]
        goals.append((f"`--workers 2` vs `--workers 1` on {size:.1f} MB (wall; load {load0:.1f} -> {load1:.1f})",
                      f"{t[1] / t[2]:.2f}x", ">= 1.8x", t[1] / t[2] >= 1.8))
        if args.ray and k == 0:
            if importlib.util.find_spec("ray") is None:
                text.append("Ray: not run (`ray` is not importable here; `pip install 'zhmask[ray]'`).")
            else:
                load0 = load()
                t_ray, _, _, _ = run_build(path, work / "scale-ray", 2, ["--engine", "ray"])
                load1 = load()
                print(f"{size:.1f} MB, --engine ray --workers 2: {t_ray:.1f} s wall", flush=True)
                same = shard_hashes(work / "scale-ray") == shard_hashes(work / "scale-1")
                # Ray's own start-up and shut-down: the same command on the first 20 documents
                tiny = work / "tiny.txt"
                with open(path, encoding="utf-8") as fh:
                    tiny.write_text("".join(next(fh) for _ in range(20)), encoding="utf-8")
                t_tiny = {e: run_build(tiny, work / f"tiny-{e}", w, ["--engine", e])[0] for e, w in (("ray", 2),
                                                                                                    ("local", 1))}
                print(f"20 documents: --engine ray {t_tiny['ray']:.1f} s, local {t_tiny['local']:.1f} s", flush=True)
                text.append("")
                text.append(f"Ray on {size:.1f} MB: `--engine ray --workers 2` (a local Ray of 2 CPUs, its start-up "
                            f"included) {t_ray:.1f} s wall ({size / t_ray:.2f} MB/s): {t[1] / t_ray:.2f}x "
                            f"`--engine local --workers 1`; shards {'byte-identical' if same else 'DIFFERENT'} "
                            f"(sha256 of data/*.arrow); load average {load0:.2f} before, {load1:.2f} after. The same "
                            f"commands on 20 documents (start-up and shut-down): Ray {t_tiny['ray']:.1f} s, local "
                            f"{t_tiny['local']:.1f} s wall; with both subtracted, "
                            f"{(t[1] - t_tiny['local']) / max(t_ray - t_tiny['ray'], 1e-9):.2f}x.")
                # a running local instance, as a user's `ray start --head` (or a cluster) gives it:
                # the build connects (--ray-address auto) instead of starting and stopping Ray
                env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                           RAY_USAGE_STATS_ENABLED="0")
                ray_cli = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]
                subprocess.run([*ray_cli, "start", "--head", "--num-cpus", "2", "--include-dashboard=false",
                                "--disable-usage-stats"], env=env, capture_output=True, check=True)
                try:
                    load2 = load()
                    t_run = run_build(path, work / "scale-ray-running", 2, ["--engine", "ray", "--ray-address",
                                                                             "auto"])[0]
                    load3 = load()
                finally:
                    subprocess.run([*ray_cli, "stop"], env=env, capture_output=True)
                same_run = shard_hashes(work / "scale-ray-running") == shard_hashes(work / "scale-1")
                print(f"{size:.1f} MB, --engine ray --workers 2 on a running Ray: {t_run:.1f} s wall", flush=True)
                text.append(f"On a running local Ray of 2 CPUs (`ray start --head --num-cpus 2`, then `--ray-address "
                            f"auto`): {t_run:.1f} s wall, {t[1] / t_run:.2f}x `--engine local --workers 1`; shards "
                            f"{'byte-identical' if same_run else 'DIFFERENT'}; load average {load2:.2f} before, "
                            f"{load3:.2f} after.")
                goals.append((f"Ray, local 2-CPU instance, on {size:.1f} MB: byte-identical to local",
                              "identical" if same and same_run else "different", "identical", same and same_run))
                goals.append((f"Ray, a running local 2-CPU instance, on {size:.1f} MB: vs one local worker (wall; load "
                              f"{load2:.1f} -> {load3:.1f})", f"{t[1] / t_run:.2f}x", ">= 1.6x", t[1] / t_run >= 1.6))
                goals.append((f"Ray, a local 2-CPU instance started and stopped by the build, on {size:.1f} MB: vs one "
                              f"local worker (wall; load {load0:.1f} -> {load1:.1f})", f"{t[1] / t_ray:.2f}x", ">= 1.6x",
                              t[1] / t_ray >= 1.6))
                shutil.rmtree(work / "scale-ray")
                shutil.rmtree(work / "scale-ray-running")
        path.unlink()
        for w in (1, 2):
            shutil.rmtree(work / f"scale-{w}")
    if goals:
        text += ["", "The issue-16 targets these figures decide:", "", targets_table(goals)]
    report = "\n".join(text)
    print(report)
    if args.out:  # a scaling-only run (--sizes "") has its own section
        write_section(args.out, "memory" if peaks else "scaling", report)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
