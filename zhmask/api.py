"""Library entry point: ``build_corpus(config) -> BuildResult``.

The input is cut into work units by the input alone (every ``docs_per_shard`` documents, in
input order); one unit becomes one shard named by its index.  Engines run units in any order
on any number of workers; the manifest is assembled from the units' stats in unit order, so
the output is the same for 1, 4 or 400 workers.  A unit whose shard and stats file exist is
skipped on a rerun (resume).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from zhmask import __version__
from zhmask.config import BuildConfig
from zhmask.errors import BadInputFile, ZhmaskError
from zhmask.pipeline import merge_stats, new_stats
from zhmask.schema import SCHEMA_VERSION
from zhmask.steps.read import InputFile, RawDoc, expand_inputs, file_fingerprint, read_file
from zhmask.write.shards import shard_name, write_json_atomic

BUILD_FILE = "build.json"
MANIFEST = "manifest.json"


@dataclass
class BuildResult:
    out_dir: Path
    manifest: dict[str, Any]
    seconds: float
    units_skipped: int

    @property
    def shards(self) -> list[Path]:
        return [self.out_dir / s["file"] for s in self.manifest["shards"]]


def _inputs(config: BuildConfig) -> list[InputFile]:
    if not config.inputs:
        from zhmask.paths import default_corpus

        p = default_corpus()
        return [InputFile(p, p.name)]
    return expand_inputs(config.inputs)


def iter_units(config: BuildConfig, files: list[InputFile], bad_files: list[dict[str, str]]) -> Iterator[tuple[int, list[RawDoc]]]:
    """(unit index, raw records) in input order; bad files are skipped with --skip-bad-files."""
    unit, buf = 0, []
    for f in files:
        try:
            for raw in read_file(f, fmt=config.format, doc_sep=config.doc_sep,
                                 text_field=config.source_field or config.text_field,  # seq2seq: source is the text
                                 title_field=config.title_field, on_decode_error=config.on_decode_error):
                buf.append(raw)
                if len(buf) >= config.docs_per_shard:
                    yield unit, buf
                    unit, buf = unit + 1, []
        except BadInputFile as exc:
            if not config.skip_bad_files:
                raise
            bad_files.append({"file": str(f.path), "error": str(exc)})
    if buf or unit == 0:
        yield unit, buf


def prepare_out_dir(config: BuildConfig, out: Path) -> None:
    """Refuse a directory built with another configuration unless --overwrite."""
    build = out / BUILD_FILE
    fp = config.fingerprint()
    if out.exists() and any(out.iterdir()):
        existing = None
        if build.exists():
            try:
                existing = json.loads(build.read_text(encoding="utf-8")).get("fingerprint")
            except (OSError, ValueError):
                existing = None
        if existing != fp:
            if not config.overwrite:
                what = "another configuration" if existing else "files zhmask did not write"
                raise ZhmaskError(f"output directory {out} holds {what}; use --overwrite to replace it or pick another --out")
            for child in out.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(build, {"fingerprint": fp, "zhmask_version": __version__})


def unit_done(out: Path, unit: int) -> dict[str, Any] | None:
    stats_path = out / "data" / f"{shard_name(unit)}.stats.json"
    shard = out / "data" / f"{shard_name(unit)}.arrow"
    if stats_path.exists() and shard.exists():
        try:
            return json.loads(stats_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return None


def build_corpus(config: BuildConfig, progress: Callable[[dict[str, Any]], None] | None = None) -> BuildResult:
    """Build shards and manifest for ``config``; see the module docstring."""
    t0 = time.time()
    config.validate()
    files = _inputs(config)
    out = Path(config.out)
    prepare_out_dir(config, out)
    for stale in (out / "data").glob("*.tmp-*") if (out / "data").exists() else []:
        stale.unlink()  # partial shards of a killed build never carry a final name; clean them
    bad_files: list[dict[str, str]] = []
    results: dict[int, dict[str, Any]] = {}
    skipped = 0

    def units() -> Iterator[tuple[int, list[RawDoc]]]:
        nonlocal skipped
        for unit, raws in iter_units(config, files, bad_files):
            done = unit_done(out, unit)
            if done is not None:
                results[unit] = done
                skipped += 1
                if progress:
                    progress(done)
                continue
            yield unit, raws

    def collect(stats: dict[str, Any]) -> None:
        results[stats["unit"]] = stats
        if progress:
            progress(stats)

    if config.engine == "ray":
        from zhmask.engines.ray_engine import run_units_ray

        run_units_ray(config, units(), out, collect)
    else:
        from zhmask.engines.local import run_units_local

        run_units_local(config, units(), out, collect)

    manifest = assemble_manifest(config, files, results, bad_files)
    write_json_atomic(out / MANIFEST, manifest)
    return BuildResult(out, manifest, time.time() - t0, skipped)


def assemble_manifest(config: BuildConfig, files: list[InputFile], results: dict[int, dict[str, Any]],
                      bad_files: list[dict[str, str]]) -> dict[str, Any]:
    total = new_stats()
    shards = []
    for unit in sorted(results):
        st = dict(results[unit])
        shard = st.pop("shard")
        st.pop("unit", None)
        merge_stats(total, st)
        shards.append(shard)
    cfg = config.to_dict()
    inputs = []
    for f in files:
        entry = {"file": str(f.path), "name": f.name}
        try:
            entry.update(file_fingerprint(f.path))
        except BadInputFile as exc:
            entry["error"] = str(exc)
        inputs.append(entry)
    return {
        "zhmask_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "config": cfg,
        "fingerprint": config.fingerprint(),
        "inputs": inputs,
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
        "shards": shards,
    }
