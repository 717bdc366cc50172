"""``zhmask verify DIR``: check a finished build against its manifest and the row invariants.

Build level: every shard listed in ``manifest.json`` exists, has the listed row count and
sha256, carries the schema version this zhmask reads and the build's configuration; no
unlisted shard or temporary file lies in ``data/``; the accounting identity
``documents_read == documents_written + sum(documents_rejected)`` holds, and the counts the
manifest reports (examples, examples per task, labels per class, distinct documents written)
match the rows actually in the shards.  A ``--random-tokens unigram`` build's unit tables
(``unigram/``) are listed with their sha256 and token counts, every row names a listed unit,
and every random replacement is a token of its unit's table.

Row level, for every row: the per-token columns have one value per token and at most
``max_seq_length`` tokens; ids are inside the vocabulary; special tokens carry word id -1 and
nothing else does; word ids are numbered from 0, never decrease and step by at most one
(rows of generation tasks, which move target fragments after the source, are checked by their
task's reassembly check instead); a label is only on a word token, is a real token id, and
every [MASK] in the input carries one; sentence labels are -100 or a class the task declares;
entity and ``chinese_ref`` positions lie inside the sequence on word tokens; a column that not
every row has is filled only where the row's task or the build's masking strategy declares it
(:data:`zhmask.schema.DECLARED_COLUMNS`).  Then the checks the row's task and the build's
masking strategy declare in their registries (:func:`zhmask.checks.row_checks`).

The library entry point is :func:`verify_build` (a list of violations, empty when the build is
sound).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click
import numpy as np

from zhmask.cli import CONTEXT, cli
from zhmask.errors import ZhmaskError
from zhmask.masking.unigram import TABLE_DIR
from zhmask.record import NO_LABEL, SENTENCE_LABEL

EXEC_KEYS = ("workers", "engine", "ray_address", "out", "overwrite", "skip_bad_files")
MAX_PER_KIND = 20  # row violations reported per (task, message) before they are only counted


def _ints(v: Any) -> np.ndarray:
    return np.asarray(v if v is not None else [], dtype=np.int64)


def row_context(config: dict[str, Any]) -> dict[str, Any]:
    """Vocabulary facts the row checks need, from the build's configuration."""
    from zhmask.steps.tokenize import WordTokenizer

    tok = WordTokenizer(config.get("vocab"), config.get("tokenizer"), lowercase=config.get("lowercase", True))
    return {
        "vocab_size": tok.vocab_size,
        "cls_id": tok.cls_id,
        "sep_id": tok.sep_id,
        "mask_id": tok.mask_id,
        "pad_id": tok.pad_id,
        "unk_id": tok.unk_id,
        "special_ids": set(int(x) for x in tok.special_ids.tolist()),
        "bracketed_ids": np.array(sorted(i for t, i in tok.vocab.items() if t.startswith("[") and t.endswith("]"))),
        "max_seq_length": int(config.get("max_seq_length", 1 << 30)),
        "config": config,
        "tok": tok,
    }


def check_row(row: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    """Violations of the invariants common to every row (empty when the row is sound)."""
    bad: list[str] = []
    ids = _ints(row.get("input_ids"))
    n = len(ids)
    if n == 0:
        return ["input_ids is empty"]
    tt, wid, labels = _ints(row.get("token_type_ids")), _ints(row.get("word_ids")), _ints(row.get("labels"))
    if not (len(tt) == len(wid) == len(labels) == n):
        return [f"per-token columns differ in length: input_ids {n}, token_type_ids {len(tt)}, "
                f"word_ids {len(wid)}, labels {len(labels)}"]
    if n > ctx["max_seq_length"]:
        bad.append(f"{n} tokens, more than max_seq_length {ctx['max_seq_length']}")
    V = ctx["vocab_size"]
    if ids.min() < 0 or ids.max() >= V:
        bad.append("input_ids outside the vocabulary")
    cls_id, sep_id, pad_id, mask_id = ctx["cls_id"], ctx["sep_id"], ctx["pad_id"], ctx["mask_id"]
    causal = row.get("doc_bounds") is not None  # clm: no [CLS], labels are the inputs ([SEP] too)
    if ids[0] != cls_id and not causal:
        bad.append("first token is not [CLS]")
    structural = np.isin(ids, [cls_id, sep_id])
    if (wid[structural] != -1).any():
        bad.append("a [CLS]/[SEP] token has a word id")
    minus = wid == -1
    if (minus & ~np.isin(ids, [cls_id, sep_id, pad_id])).any():
        bad.append("a token other than [CLS]/[SEP]/[PAD] has no word (word id -1)")
    if (wid < -1).any():
        bad.append("word id below -1")
    generation = row.get("source_ids") is not None
    if not generation:
        w = wid[wid >= 0]
        if len(w):
            d = np.diff(w)
            if w[0] != 0 or (d < 0).any() or (d > 1).any():
                bad.append("word ids do not start at 0 and rise by steps of 0 or 1")
    if (tt < 0).any() or (np.diff(tt) < 0).any():
        bad.append("token_type_ids negative or decreasing")
    lab = labels != -100
    if lab.any():
        lv = labels[lab]
        if lv.min() < 0 or lv.max() >= V:
            bad.append("labels outside the vocabulary (and not -100)")
        if (wid[lab] < 0).any() and not (causal and (ids[lab & (wid < 0)] == sep_id).all()):
            bad.append("a label on a special token")
        if np.isin(lv, [cls_id, pad_id, mask_id] if causal else [cls_id, sep_id, pad_id, mask_id]).any():
            bad.append("a label that is itself a special token")
    if not generation and ((ids == mask_id) & ~lab).any():
        bad.append("a [MASK] in input_ids without a label (corrupted but not predicted)")
    label = row.get(SENTENCE_LABEL)
    if label is None or (label < 0 and label != NO_LABEL):
        bad.append(f"{SENTENCE_LABEL} {label!r} is not {NO_LABEL} or a class")
    for e in row.get("entities") or []:
        s, t = e["start"], e["end"]
        if not (0 <= s < t <= n) or (wid[s:t] < 0).any():
            bad.append(f"entity [{s}, {t}) {e.get('type')} not on word tokens inside the sequence")
            break
    ref = row.get("chinese_ref")
    if ref is not None:
        r = _ints(ref)
        if len(r) and ((np.diff(r) <= 0).any() or r[0] <= 0 or r[-1] >= n):
            bad.append("chinese_ref not strictly increasing positions inside the sequence")
        elif len(r) and not generation and ((wid[r] < 0) | (wid[r] != wid[r - 1])).any():
            bad.append("chinese_ref marks a token that does not continue a word")
    tl = row.get("token_labels")
    if tl is not None and len(tl) != n:
        bad.append(f"token_labels has {len(tl)} values for {n} tokens")
    return bad


def declared_columns(task: str, masking: str | None) -> frozenset[str] | None:
    """The columns beyond every row's that rows of ``task`` may fill in a build masked with
    ``masking``: what the task and the strategy declare (None for an unknown task)."""
    from zhmask.labels import TASKS
    from zhmask.masking import STRATEGIES

    entry = TASKS.entries.get(task)
    if entry is None:
        return None
    strategy = STRATEGIES.entries.get(masking or "")
    return frozenset(entry.columns) | frozenset(strategy.columns if strategy is not None else ())


def verify_build(out: str | Path, progress=None) -> list[str]:
    """Every violation found in the build at ``out`` (empty when it is sound)."""
    import pyarrow as pa

    from zhmask.reader import listed_shards, open_shard, read_manifest, shard_schema_problems
    from zhmask.schema import SCHEMA_VERSION, undeclared_columns

    out = Path(out)
    if not out.is_dir():
        raise ZhmaskError(f"{out} is not a directory")
    try:  # the reader's manifest: one line when it is missing or unreadable
        m = read_manifest(out)
    except ZhmaskError as exc:
        return [str(exc)]
    bad: list[str] = []
    need = ("schema_version", "config", "shards", "documents_read", "documents_written", "documents_rejected",
            "examples_written", "examples_by_task")
    missing = [k for k in need if k not in m]
    if missing:
        return [f"manifest lacks {', '.join(missing)}"]
    if str(m["schema_version"]) != SCHEMA_VERSION:
        bad.append(f"manifest schema version {m['schema_version']} (this zhmask reads {SCHEMA_VERSION})")
    rejected = m["documents_rejected"]
    if m["documents_read"] != m["documents_written"] + sum(rejected.values()):
        bad.append(f"accounting: documents_read {m['documents_read']} != documents_written {m['documents_written']} "
                   f"+ rejected {sum(rejected.values())}")
    if any(v < 0 for v in rejected.values()) or m["documents_written"] < 0:
        bad.append("accounting: negative document counts")
    cfg = m["config"]
    cfg_meta = {k: v for k, v in cfg.items() if k not in EXEC_KEYS}
    dupe = int(cfg.get("dupe_factor", 1))
    full_packing = cfg.get("packing", "document") == "full"
    try:
        ctx = row_context(cfg)
    except ZhmaskError as exc:
        return bad + [f"cannot load the build's vocabulary to check ids: {exc}"]
    from zhmask.checks import row_checks
    from zhmask.labels import TASKS

    checks: dict[str, list] = {}  # task -> the row checks its registry entry and the strategy's declare
    masking = cfg.get("masking", "none")
    declared: dict[str, frozenset[str] | None] = {}  # task -> the columns it may fill (declared_columns)
    unknown_tasks: set[str] = set()
    listed = set()
    rows_total = 0
    by_task: Counter = Counter()
    labels_seen: dict[str, Counter] = {}
    doc_ids: set[str] = set()
    example_ids: set[str] = set()
    dup_examples = 0
    row_bad: Counter = Counter()
    row_examples: dict[tuple[str, str], str] = {}
    tables = _unigram_tables(out, m, cfg, ctx, bad)
    for rel, path, entry in listed_shards(out, m):
        listed.add(rel)
        if not _listed_file_intact(rel, path, entry, bad):
            continue
        try:
            with open_shard(path) as reader:  # memory-mapped record batches, as trainers read them
                for p in shard_schema_problems(reader.schema):
                    bad.append(f"{rel}: {p}")
                meta = reader.schema.metadata or {}
                try:
                    shard_cfg = json.loads(meta.get(b"zhmask.config", b"{}"))
                except ValueError:
                    shard_cfg = None
                if shard_cfg != cfg_meta:
                    bad.append(f"{rel}: configuration in the shard's metadata differs from the manifest's")
                n_rows = 0
                for batch in reader:
                    n_rows += batch.num_rows
                    for row in batch.to_pylist():
                        task = row["task"]
                        by_task[task] += 1
                        if row[SENTENCE_LABEL] is not None and row[SENTENCE_LABEL] >= 0:
                            labels_seen.setdefault(task, Counter())[str(row[SENTENCE_LABEL])] += 1
                        doc_ids.add(row["doc_id"])
                        if full_packing or row.get("doc_bounds") is not None:  # a row filled across documents holds every document it lists
                            doc_ids.update(src["doc_id"] for src in row["segment_sources"] or ())
                        if row["example_id"] in example_ids:
                            dup_examples += 1
                        example_ids.add(row["example_id"])
                        problems = check_row(row, ctx)
                        if tables is not None:
                            problems += _check_random_tokens(row, tables, ctx)
                        if task not in declared:
                            declared[task] = declared_columns(task, masking)
                        if declared[task] is not None:
                            problems += [f"column {c} is filled, but neither task {task} nor masking {masking} declares it"
                                         for c in undeclared_columns(row, declared[task])]
                        if task not in checks:
                            checks[task] = row_checks(task, masking)
                            if task not in TASKS.entries:
                                unknown_tasks.add(task)
                        for fn in checks[task]:
                            try:
                                problems += fn(row, ctx)
                            except Exception as exc:  # a check that crashes is a violation, not a traceback
                                problems.append(f"check {fn.__name__} crashed: {type(exc).__name__}: {exc}")
                        for msg in problems:
                            key = (task, msg)
                            row_bad[key] += 1
                            row_examples.setdefault(key, f"{rel} {row['example_id']}")
        except (pa.ArrowInvalid, OSError) as exc:
            bad.append(f"{rel}: not a readable Arrow stream ({exc})")
            continue
        rows_total += n_rows
        if n_rows != entry.get("rows"):
            bad.append(f"{rel}: {n_rows} rows, the manifest says {entry.get('rows')}")
        if progress:
            progress(rel)
    data = out / "data"
    if data.is_dir():
        for p in sorted(data.iterdir()):
            rel = p.relative_to(out).as_posix()
            if ".tmp-" in p.name:
                bad.append(f"{rel}: temporary file left behind (a build was killed or is still running)")
            elif p.suffix == ".arrow" and rel not in listed and not p.name.startswith("cache-"):  # datasets' map cache
                bad.append(f"{rel}: shard not listed in the manifest")
    folder = out / TABLE_DIR
    if folder.is_dir():
        names = {e.get("file") for e in m.get("unigram_tables") or [] if isinstance(e, dict)}
        for p in sorted(folder.iterdir()):
            rel = p.relative_to(out).as_posix()
            if ".tmp-" in p.name:
                bad.append(f"{rel}: temporary file left behind (a build was killed or is still running)")
            elif rel not in names:
                bad.append(f"{rel}: unigram table not listed in the manifest")
    for (task, msg), count in sorted(row_bad.items()):
        bad.append(f"{count} row(s) of task {task}: {msg} (first: {row_examples[(task, msg)]})")
    for task in sorted(unknown_tasks):
        bad.append(f"rows of unknown task {task!r}")
    if rows_total != m["examples_written"]:
        bad.append(f"examples_written {m['examples_written']} but the shards hold {rows_total} rows")
    expect_rows = {t: int(v) * dupe for t, v in m["examples_by_task"].items() if v}
    if dict(by_task) != expect_rows:
        bad.append(f"rows per task {dict(sorted(by_task.items()))} differ from examples_by_task x dupe_factor "
                   f"{dict(sorted(expect_rows.items()))}")
    want_labels = {t: {k: int(v) * dupe for k, v in c.items() if v} for t, c in (m.get("label_counts") or {}).items()}
    want_labels = {t: c for t, c in want_labels.items() if c}
    got_labels = {t: dict(c) for t, c in labels_seen.items()}
    if got_labels != want_labels:
        bad.append(f"class labels in the rows {got_labels} differ from label_counts x dupe_factor {want_labels}")
    if len(doc_ids) != m["documents_written"]:
        bad.append(f"documents_written {m['documents_written']} but the rows come from {len(doc_ids)} documents")
    if dup_examples:
        bad.append(f"{dup_examples} duplicate example_id(s)")
    return bad


def _listed_file_intact(rel: str, path: Path, entry: dict[str, Any], bad: list[str]) -> bool:
    """Whether a file the manifest lists exists (False: reported); a sha256 other than the
    listed one is reported too (the file is still read, to report what else is wrong)."""
    from zhmask.write.shards import sha256_file

    if not path.is_file():
        bad.append(f"{rel}: listed in the manifest but missing")
        return False
    if sha256_file(path) != entry.get("sha256"):
        bad.append(f"{rel}: sha256 differs from the manifest (damaged or rewritten)")
    return True


def _unigram_tables(out: Path, m: dict[str, Any], cfg: dict[str, Any], ctx: dict[str, Any], bad: list[str]):
    """A ``--random-tokens unigram`` build's tables (:class:`~zhmask.masking.unigram.BuildTables`)
    after checking the manifest's listing against the files (sha256, token counts); None for
    other builds.  Problems go to ``bad``."""
    from zhmask.masking.unigram import BuildTables, read_table

    if cfg.get("random_tokens") != "unigram":
        return None
    listing = m.get("unigram_tables")
    if not isinstance(listing, list):
        bad.append("manifest lists no unigram_tables, which a --random-tokens unigram build draws from")
        return None
    try:
        tables = BuildTables(out, listing, ctx["vocab_size"])
    except ZhmaskError as exc:
        bad.append(str(exc))
        return None
    for e in listing:
        path = out / e["file"]
        if not _listed_file_intact(e["file"], path, e, bad):
            continue
        try:
            t = read_table(path, ctx["vocab_size"])
        except ZhmaskError as exc:
            bad.append(str(exc))
            continue
        if t.total != e.get("tokens") or len(t.ids) != e.get("distinct"):
            bad.append(f"{e['file']}: {t.total} tokens of {len(t.ids)} ids, the manifest says {e.get('tokens')} "
                       f"of {e.get('distinct')}")
    from zhmask.masking import STRATEGIES

    # a strategy without the trait random_tokens (mac: similar words, its fallback vocabulary
    # words) draws no replacement from the tables
    return tables if STRATEGIES.has(cfg.get("masking", "none"), "random_tokens", unknown=True) else None


def _check_random_tokens(row: dict[str, Any], tables, ctx: dict[str, Any]) -> list[str]:
    """The row names a listed unit, and its random replacements (predicted positions holding
    neither [MASK] nor the original) are tokens of that unit's table."""
    unit = row.get("unit")
    if unit is None:
        return ["no unit: its random tokens cannot be traced to a unigram table"]
    if int(unit) not in tables.files:
        return [f"unit {unit} has no unigram table in the manifest"]
    lab = _ints(row["labels"])
    if not len(lab):
        return []
    inp = _ints(row["input_ids"])
    rnd = (lab != -100) & (inp != lab) & (inp != ctx["mask_id"])
    if rnd.any():
        try:
            t = tables.get(unit)
        except ZhmaskError:  # reported once, for the table
            return []
        if not np.isin(inp[rnd], t.ids).all():
            return ["random replacement that is not a token of its unit's unigram table"]
    return []


VERIFY_HELP = """Check a finished build: shards against the manifest, schema, row invariants, accounting.

Exit code 0 when every check holds; otherwise a list of violations and exit code 1.

\b
Example:
  zhmask build-corpus corpus/ --masking wwm --out out/
  zhmask verify out/
"""


@cli.command("verify", help=VERIFY_HELP, context_settings=CONTEXT)
@click.argument("directory")
@click.option("--quiet", "-q", is_flag=True, help="Print violations only.")
def verify_cmd(directory: str, quiet: bool) -> None:
    import sys

    from zhmask.reader import check_versions

    check_versions(directory)  # another schema version: one line, exit code 2 (ZhmaskError)
    problems = verify_build(directory)
    if problems:
        click.echo(f"zhmask verify: {len(problems)} violation(s) in {directory}:", err=True)
        for p in problems:
            click.echo(f"  - {p}", err=True)
        sys.exit(1)
    if not quiet:
        m = json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))
        click.echo(f"zhmask verify: OK {directory}: {len(m['shards'])} shard(s), {m['examples_written']:,} rows, "
                   f"documents read {m['documents_read']:,} = written {m['documents_written']:,} + rejected "
                   f"{sum(m['documents_rejected'].values()):,}")
