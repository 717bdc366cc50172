"""Library entry point: ``build_corpus(config) -> BuildResult``.

The input is cut into work units by the input alone (every ``docs_per_shard`` documents, or
1 MiB of input, in input order): the driver plans them as descriptors (file and byte or record ranges,
:mod:`zhmask.steps.plan`) and each worker reads its own; one unit becomes one shard named by
its index.  Engines run units in any order on any number of workers; the manifest is
assembled from the units' stats in unit order, so the output is the same for 1, 4 or 400
workers.  A unit whose shard and stats file exist is skipped on a rerun (resume).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from zhmask import __version__
from zhmask.config import BuildConfig
from zhmask.masking.unigram import TABLE_DIR
from zhmask.errors import ZhmaskError
from zhmask.pipeline import merge_stats, new_stats
from zhmask.registry import OUTPUT_KINDS, part_versions
from zhmask.rng import RNG_VERSION
from zhmask.schema import SCHEMA_VERSION
from zhmask.steps.plan import UnitDescriptor, plan_units, read_unit
from zhmask.steps.read import InputFile, RawDoc, check_input, list_inputs
from zhmask.write.shards import sha256_file, shard_file, shard_name, unit_dir, write_json_atomic

BUILD_FILE = "build.json"
MANIFEST = "manifest.json"
MAX_REPORTED = 100  # decode error locations and [UNK] characters listed in the manifest


@dataclass
class BuildResult:
    out_dir: Path
    manifest: dict[str, Any]
    seconds: float
    units_skipped: int

    @property
    def shards(self) -> list[Path]:
        return [self.out_dir / s["file"] for s in self.manifest["shards"]]

    def nothing_written(self) -> str | None:
        """Why a build that read documents wrote no example (every document rejected), else None.
        (A build of empty inputs reads nothing: an empty corpus, not a failure.)"""
        m = self.manifest
        if not m["documents_read"] or m["examples_written"]:
            return None
        rejected = m["documents_rejected"]
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])))
        what = (f"all {m['documents_read']:,} documents read were rejected ({reasons})" if not m["documents_written"]
                else f"{m['documents_written']:,} documents made no example of the tasks {', '.join(m['config']['tasks'])}")
        return f"no examples written: {what}; see {self.out_dir / MANIFEST}"


def _inputs(config: BuildConfig) -> tuple[list[InputFile], list[dict[str, str]]]:
    """(files to read, files skipped under directories and globs: Hugging Face dataset metadata)."""
    if not config.inputs:
        from zhmask.paths import default_corpus

        p = default_corpus()
        return [InputFile(p, p.name)], []
    return list_inputs(config.inputs, config.format)


def iter_units(config: BuildConfig, files: list[InputFile], bad_files: list[dict[str, str]]) -> Iterator[tuple[int, list[RawDoc]]]:
    """(unit index, raw records) in input order, read here (for commands that need the documents
    themselves, not a build: a build's workers read their own units); bad files are skipped
    with --skip-bad-files."""
    for desc in plan_units(config, files, bad_files):
        got = read_unit(config, desc)
        bad_files += got.bad_files
        yield desc.unit, got.raws


def input_state(files: list[InputFile]) -> dict[str, list[int]]:
    """Size and modification time of each input: a rerun on changed inputs must not reuse shards."""
    state = {}
    for f in files:
        try:
            st = f.path.stat()
            state[f.name] = [st.st_size, st.st_mtime_ns]
        except OSError:
            state[f.name] = [-1, -1]
    return state


def prepare_out_dir(config: BuildConfig, out: Path, files: list[InputFile] | None = None) -> None:
    """Refuse a directory built with another configuration, or from inputs that changed since,
    unless --overwrite."""
    build = out / BUILD_FILE
    fp = config.fingerprint()
    if out.exists() and not out.is_dir():
        raise ZhmaskError(f"--out {out} exists and is not a directory")
    try:
        _prepare(config, out, build, fp, input_state(files) if files is not None else None)
    except OSError as exc:
        raise ZhmaskError(f"cannot prepare output directory {out}: {exc.strerror or exc}") from None


def _prepare(config: BuildConfig, out: Path, build: Path, fp: str, inputs: dict[str, list[int]] | None) -> None:
    if out.exists() and any(out.iterdir()):
        existing, old_inputs = None, None
        if build.exists():
            try:
                data = json.loads(build.read_text(encoding="utf-8"))
                existing, old_inputs = data.get("fingerprint"), data.get("inputs")
            except (OSError, ValueError, AttributeError):
                existing = None
        changed = None
        if existing == fp and inputs is not None and old_inputs is not None and old_inputs != inputs:
            diff = sorted(set(old_inputs) ^ set(inputs)) or sorted(k for k in inputs if old_inputs.get(k) != inputs[k])
            changed = diff[0] if diff else "?"
        if (existing != fp or changed) and (existing is None or _holds_work(out)):
            if not config.overwrite:
                what = ("another configuration" if existing != fp else f"a build of other inputs ({changed} was added, "
                        "removed or modified since)") if existing else "files zhmask did not write"
                raise ZhmaskError(f"output directory {out} holds {what}; use --overwrite to replace it or pick another --out")
            for child in out.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"fingerprint": fp, "zhmask_version": __version__}
    if inputs is not None:
        record["inputs"] = inputs
    write_json_atomic(build, record)


def _holds_work(out: Path) -> bool:
    """Whether ``out`` holds more than the build record of a build that stopped before writing
    anything (then another configuration may take the directory without --overwrite)."""
    for child in out.iterdir():
        if child.name == BUILD_FILE:
            continue
        if child.name == "data" and child.is_dir() and not any(p.suffix in (".arrow", ".json") for p in child.iterdir()):
            continue  # at most partial temporary files, cleaned before the build starts
        return True
    return False


def unit_done(out: Path, unit: int, shuffle: bool = False) -> dict[str, Any] | None:
    stats_path = out / unit_dir(shuffle) / f"{shard_name(unit)}.stats.json"
    shard = out / unit_dir(shuffle) / shard_file(unit)
    if stats_path.exists() and shard.exists():
        try:
            stats = json.loads(stats_path.read_text(encoding="utf-8"))
            if stats.get("shard", {}).get("sha256") != sha256_file(shard):
                return None  # damaged since it was written: redo the unit
            table = stats.get("unigram")  # its unigram table (--random-tokens unigram)
            if table is not None and not _intact(out / table["file"], table["sha256"]):
                return None
            return stats
        except (OSError, ValueError, AttributeError):
            return None
    return None


def _intact(path: Path, sha256: str) -> bool:
    try:
        return sha256_file(path) == sha256
    except OSError:
        return False


def save_build_tokenizer(config: BuildConfig, out: Path) -> None:
    """The build's tokenizer beside its shards (vocab.txt, tokenizer.json, ...), so that
    ``AutoTokenizer.from_pretrained(out)`` decodes them (see zhmask.write.tokenizer)."""
    from zhmask.steps.tokenize import make_tokenizer
    from zhmask.write.tokenizer import write_tokenizer

    tok = make_tokenizer(config)
    write_tokenizer(tok, out, lowercase=config.lowercase, max_length=config.max_seq_length)


def build_corpus(config: BuildConfig, progress: Callable[[dict[str, Any]], None] | None = None) -> BuildResult:
    """Build shards and manifest for ``config``; see the module docstring."""
    t0 = time.time()
    config.validate()
    files, skipped_inputs = _inputs(config)
    bad_files: list[dict[str, str]] = []
    unreadable: list[tuple[InputFile, str]] = []
    for f in files:  # every input is checked before any work starts
        why = check_input(f.path)
        if why is not None:
            if not config.skip_bad_files:
                raise ZhmaskError(f"cannot read input {f.path}: {why} (use --skip-bad-files to skip it)")
            unreadable.append((f, why))
            bad_files.append({"file": str(f.path), "error": why})
    skipped_paths = {f.path for f, _ in unreadable}
    files = [f for f in files if f.path not in skipped_paths]
    out = Path(config.out)
    prepare_out_dir(config, out, files)
    finished = _finished_build(config, out)
    if finished is not None:  # a rerun of a finished shuffled build (its units are gone): nothing to do
        return BuildResult(out, finished, time.time() - t0, len(finished["shards"]))
    for folder in (out, out / "data", out / unit_dir(True), out / TABLE_DIR):
        for stale in [*folder.glob("*.tmp-*"), *folder.glob("*.tmp")] if folder.is_dir() else []:
            stale.unlink()  # partial files of a killed build never carry a final name; clean them
    results: dict[int, dict[str, Any]] = {}
    skipped = 0

    def units() -> Iterator[UnitDescriptor]:
        nonlocal skipped
        for desc in plan_units(config, files, bad_files):
            done = unit_done(out, desc.unit, config.shuffle)
            if done is not None:
                results[desc.unit] = done
                skipped += 1
                timing.append(_unit_timing(done, t0, reused=True))
                if progress:
                    progress(done)
                continue
            yield desc

    def collect(stats: dict[str, Any]) -> None:
        results[stats["unit"]] = stats
        timing.append(_unit_timing(stats, t0, reused=False))
        if progress:
            progress(stats)

    timing: list[dict[str, Any]] = []
    total_bytes = known_input_bytes(config, files)
    if progress and total_bytes is not None:
        progress({"input_bytes_total": total_bytes})  # lets a progress bar show a percentage and time left

    from zhmask.engines import ENGINES

    def finish(pmap: Callable[[Callable, list], list]) -> dict[str, Any]:
        """Once every unit is done, on the engine's workers: the manifest, and the shuffle."""
        manifest = assemble_manifest(config, files, results, bad_files, unreadable, skipped_inputs)
        return shuffle_build(config, out, results, manifest, pmap) if config.shuffle else manifest

    manifest = ENGINES.entry(config.engine).fn(config, units(), out, collect, finish)
    save_build_tokenizer(config, out)
    write_json_atomic(out / MANIFEST, manifest)
    if config.shuffle:
        shutil.rmtree(out / unit_dir(True), ignore_errors=True)
    seconds = time.time() - t0
    record_run(out, config, seconds, timing)
    return BuildResult(out, manifest, seconds, skipped)


def shuffle_build(config: BuildConfig, out: Path, results: dict[int, dict[str, Any]],
                  manifest: dict[str, Any], pmap: Callable[[Callable, list], list]) -> dict[str, Any]:
    """Spread the units' rows (``units/``) over the build's shards (``data/``), the jobs run by
    ``pmap`` (the engine's): see :mod:`zhmask.write.shuffle`.  Returns ``manifest`` with the
    shuffled shards."""
    from zhmask.reader import open_shard
    from zhmask.write.shuffle import shuffle_units

    out = out.resolve()  # the jobs may run in other directories (Ray tasks, other nodes)
    unit_shards = [out / results[u]["shard"]["file"] for u in sorted(results)]
    with open_shard(unit_shards[0]) as r:  # every unit's schema, metadata included, is the build's
        schema = r.schema
    entries = shuffle_units(out, unit_shards, config.seed, schema, config.compression, config.workers, pmap)
    adjacent = sum(e.pop("adjacent_same_document") for e in entries)
    return {**manifest, "shards": entries, "shuffle": {"adjacent_same_document": adjacent}}


def _finished_build(config: BuildConfig, out: Path) -> dict[str, Any] | None:
    """The manifest of a finished shuffled build of this configuration in ``out`` whose shards
    are intact (sha256), else None."""
    if not config.shuffle or not (out / MANIFEST).is_file() or (out / unit_dir(True)).exists():
        return None
    try:
        m = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        if m.get("fingerprint") != config.fingerprint() or not m.get("shards"):
            return None
        for e in [*m["shards"], *m.get("unigram_tables", [])]:
            if sha256_file(out / e["file"]) != e["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return m


def known_input_bytes(config: BuildConfig, files: list[InputFile]) -> int | None:
    """The bytes the units' ``bytes`` counters add up to, when known in advance: every input
    an uncompressed text or JSONL file (their records' sizes sum to the file sizes); else None."""
    from zhmask.steps.read import detect_format

    total = 0
    for f in files:
        if f.path.suffix.lower() in (".gz", ".zst", ".zstd") or detect_format(f.path, config.format) not in ("text", "jsonl"):
            return None
        try:
            total += f.path.stat().st_size
        except OSError:
            return None
    return total


def _unit_timing(stats: dict[str, Any], t0: float, reused: bool) -> dict[str, Any]:
    return {"unit": stats.get("unit"), "done_s": round(time.time() - t0, 3), "bytes": stats.get("bytes", 0),
            "documents": stats.get("documents_read", 0), "reused": reused}


def record_run(out: Path, config: BuildConfig, seconds: float, timing: list[dict[str, Any]]) -> None:
    """The last run's timing in ``build.json`` (``run``: seconds, workers, engine, and when each
    unit finished): the throughput ``zhmask report`` plots.  Not in the manifest, which stays
    the same for every run of the same build."""
    path = out / BUILD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(record, dict):
        return
    record["run"] = {"seconds": round(seconds, 3), "workers": config.workers, "engine": config.engine,
                     "units": sorted(timing, key=lambda u: u["done_s"])}
    try:
        write_json_atomic(path, record)
    except (OSError, ZhmaskError):
        pass  # timing is informative: a build that wrote its manifest has succeeded


def ranges_checksum(ranges: list[dict[str, Any]]) -> dict[str, Any]:
    """An input's checksum from its units' ranges, as the workers hashed them while reading:
    ``sha256_of_ranges`` is the sha256 of the ranges' sha256 digests (32 bytes each, in input
    order), and ``ranges`` how many there are; empty unless the ranges cover the input from its
    start without a gap (a file skipped part-way has none).  Not the file's sha256:
    the input is never read a second time to hash it (docs/schema.md)."""
    import hashlib

    ranges = sorted(ranges, key=lambda r: (r["start"], r["end"]))
    if not ranges or ranges[0]["start"] != 0 or any(a["end"] != b["start"] for a, b in zip(ranges, ranges[1:])):
        return {}  # no range, or some not read (a bad file skipped part-way): no checksum of the input
    h = hashlib.sha256()
    for r in ranges:
        h.update(bytes.fromhex(r["sha256"]))
    return {"sha256_of_ranges": h.hexdigest(), "ranges": len(ranges)}


def assemble_manifest(config: BuildConfig, files: list[InputFile], results: dict[int, dict[str, Any]],
                      bad_files: list[dict[str, str]],
                      unreadable: list[tuple[InputFile, str]] = (),  # type: ignore[assignment]
                      skipped_inputs: list[dict[str, str]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    total = new_stats()
    shards = []
    tables = []
    ranges: dict[str, list[dict[str, Any]]] = {}
    bad_files = list(bad_files)
    for unit in sorted(results):
        st = dict(results[unit])
        shard = st.pop("shard")
        st.pop("unit", None)
        for r in st.pop("input_ranges", []):
            ranges.setdefault(r["name"], []).append(r)
        bad_files += [b for b in st.pop("bad_files", []) if b["file"] not in {x["file"] for x in bad_files}]
        table = st.pop("unigram", None)
        if table is not None:
            tables.append({"unit": unit, **table})
        merge_stats(total, st)
        shards.append(shard)
    cfg = config.to_dict()
    inputs = []
    errors = {b["file"]: b["error"] for b in bad_files}
    for f in files:
        entry: dict[str, Any] = {"file": str(f.path), "name": f.name}
        try:
            entry["size"] = f.path.stat().st_size
        except OSError as exc:
            entry["error"] = f"cannot stat {f.path}: {exc.strerror or exc}"
        entry.update(ranges_checksum(ranges.get(f.name, [])))
        if str(f.path) in errors:
            entry["error"] = errors[str(f.path)]
        inputs.append(entry)
    for f, why in unreadable:
        inputs.append({"file": str(f.path), "name": f.name, "error": why})
    return {
        "zhmask_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "config": cfg,
        "fingerprint": config.fingerprint(),
        # name@version of the parts that make the output (zhmask.registry), as the fingerprint hashes
        # them; not in the shards (the engine: config.engine)
        "parts": part_versions(config, OUTPUT_KINDS),
        "rng": RNG_VERSION,  # the scheme of random values (zhmask.rng), also in the fingerprint
        "inputs": inputs,
        "inputs_skipped": list(skipped_inputs),
        "bad_files": bad_files,
        "documents_read": total["documents_read"],
        "documents_written": total["documents_written"],
        "documents_rejected": dict(sorted(total["documents_rejected"].items())),
        "examples_written": sum(s["rows"] for s in shards),
        "examples_by_task": total["examples"],
        "tokens_written": total["tokens"],
        "unk_tokens": total["unk_tokens"],
        "input_bytes": total["bytes"],
        "label_counts": total["labels"],
        "masking": total["masking"],
        "events": dict(sorted(total["events"].items())),
        "decode_errors": total.get("decode_errors", [])[:MAX_REPORTED],
        "unk_chars": dict(sorted(total.get("unk_chars", {}).items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_REPORTED]),
        "mapped_chars": dict(sorted(total.get("mapped_chars", {}).items(), key=lambda kv: (-kv[1], kv[0]))),
        "mapped_chars_total": sum(total.get("mapped_chars", {}).values()),
        "shards": shards,
        **({"unigram_tables": tables} if tables else {}),  # --random-tokens unigram: docs/masking.md
    }
