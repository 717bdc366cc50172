"""The build-wide shuffle: rows of every unit spread over every shard, in a random order fixed by
the seed, with bounded memory.

google-research/bert shuffles all its instances in memory before writing them; a large build
cannot.  zhmask shuffles in two passes over the units' shards (written to ``units/`` when
shuffling is on), each pass holding one unit's (or one output shard's) rows at a time:

1. **scatter**, per unit: every row gets a key, the first 8 bytes of
   ``blake2b(seed, example_id)``; the row goes to output shard ``key % n`` (``n`` = the number of
   units), and the unit's rows are written sorted by (shard, key), one record batch per output
   shard, to ``units/scatter-NNNNN.arrow`` (an Arrow IPC file: random access to a batch).
2. **gather**, per output shard: its batch from every unit's scatter file, rows sorted by key,
   then reordered so that no two neighbours come from the same document (``--dupe-factor`` copies
   and a document's rows of other tasks are never adjacent inside a shard: a row that would sit
   next to one of its document is held back until a row of another document has been placed;
   only a shard that is mostly one document keeps neighbours, and they are counted), written to
   ``data/shard-NNNNN.arrow``.

The key depends on the seed and the example only, and ``n`` on the input only, so the shards are
the same for any ``--workers`` and either engine, and a rerun reproduces them.  The unit shards
are removed once the manifest is written.  Both passes run in this machine's processes (with the
Ray engine too: its workers write the units' shards to the shared ``--out``).
"""
from __future__ import annotations

import hashlib
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.write.arrays import prim_array, take_rows  # arrays from numpy buffers (pa.array on numpy imports pandas)

UNITS_DIR = "units"  # the units' shards while a shuffled build runs
KEY = "__shuffle_key"  # the scatter files' extra column (never in a final shard)


def row_keys(example_ids: Sequence[str], seed: int) -> np.ndarray:
    """The shuffle key of each row: uint64 from ``blake2b(example_id, key=seed)``."""
    salt = f"zhmask-shuffle-{int(seed)}".encode()
    return np.fromiter((int.from_bytes(hashlib.blake2b(e.encode("utf-8"), digest_size=8, key=salt).digest(), "little")
                        for e in example_ids), dtype=np.uint64, count=len(example_ids))


def _read(path: Path):
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path)) as src:
        return ipc.open_stream(src).read_all()


def scatter(unit_shard: Path, dest: Path, n_out: int, seed: int) -> None:
    """Write ``dest``: the rows of ``unit_shard`` sorted by (output shard, key), record batch
    ``b`` holding the rows for output shard ``b`` (empty when none), with their keys."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = _read(unit_shard)
    keys = row_keys(table.column("example_id").to_pylist(), seed)
    bucket = (keys % np.uint64(n_out)).astype(np.int64)
    order = np.lexsort((keys, bucket))
    table = take_rows(table, order).append_column(KEY, prim_array(keys[order], pa.uint64())).combine_chunks()
    batch = table.to_batches()[0] if table.num_rows else None
    counts = np.bincount(bucket, minlength=n_out)
    tmp = dest.with_name(dest.name + ".tmp")
    # a temporary file, uncompressed: the gather pass maps it and slices its batches without decoding
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as w:
        start = 0
        for c in counts.tolist():
            w.write_batch(batch.slice(start, c) if c else pa.RecordBatch.from_pylist([], schema=table.schema))
            start += c
    tmp.replace(dest)


def spread(docs: Sequence[str]) -> tuple[list[int], int]:
    """An order of ``range(len(docs))`` close to the given one where no two neighbours share a
    document: a row next to one of its document waits until a row of another has been placed;
    rows still waiting at the end go, in one more pass, into the first gaps whose two neighbours
    are of other documents.  Returns (order, neighbours left from the same document)."""
    out: list[int] = []
    held: deque[int] = deque()
    for r in range(len(docs)):
        if out and docs[r] == docs[out[-1]]:
            held.append(r)
            continue
        out.append(r)
        while held and docs[held[0]] != docs[out[-1]]:
            out.append(held.popleft())
    if held:
        rest, i, placed, prev = list(held), 0, [], None
        for r in out:
            while i < len(rest) and docs[rest[i]] != prev and docs[rest[i]] != docs[r]:
                placed.append(rest[i])
                prev = docs[rest[i]]
                i += 1
            placed.append(r)
            prev = docs[r]
        while i < len(rest) and docs[rest[i]] != prev:
            placed.append(rest[i])
            prev = docs[rest[i]]
            i += 1
        out = placed + rest[i:]
    same = sum(1 for a, b in zip(out, out[1:]) if docs[a] == docs[b])
    return out, same


def gather(scatter_files: Sequence[Path], b: int, dest: Path, schema, compression: str | None) -> dict[str, Any]:
    """Output shard ``b``: its rows from every scatter file, in key order spread by document;
    written with ``schema`` (the build's, with metadata).  Returns its manifest entry (file name
    set by the caller) and the count of same-document neighbours."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from zhmask.write.shards import ShardWriter

    parts = []
    for f in scatter_files:
        with pa.memory_map(str(f)) as src:
            parts.append(ipc.open_file(src).get_batch(b))
    table = pa.Table.from_batches(parts)
    with ShardWriter(dest, schema, compression) as w:
        same = 0
        if table.num_rows:
            # keys from the buffers: Array.to_numpy imports pandas (about a second) the first time
            keys = np.concatenate([np.frombuffer(c.buffers()[1], dtype=np.uint64)[c.offset:c.offset + len(c)]
                                   for c in table.column(KEY).chunks])
            by_key = np.argsort(keys, kind="stable")
            docs = table.column("doc_id").to_pylist()
            order, same = spread([docs[i] for i in by_key.tolist()])
            w.write_table(take_rows(table, by_key[order]).drop_columns([KEY]))  # one take
    return {**w.record(), "adjacent_same_document": same}


def shuffle_units(out: Path, unit_shards: Sequence[Path], seed: int, schema, compression: str | None,
                  workers: int = 1) -> list[dict[str, Any]]:
    """Scatter every unit shard, gather every output shard into ``out/data``; returns the output
    shards' manifest entries in order (``file``, ``rows``, ``sha256``)."""
    from zhmask.write.shards import shard_file

    n = len(unit_shards)
    units = out / UNITS_DIR
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    scatters = [units / f"scatter-{i:05d}.arrow" for i in range(n)]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor  # (its import costs start-up: only when used)

        runner: Any = ProcessPoolExecutor(max_workers=workers)
    else:
        runner = _Inline()
    with runner as pool:
        list(pool.map(_scatter_job, [(p, s, n, seed) for p, s in zip(unit_shards, scatters)]))
        entries = []
        jobs = [(scatters, b, data / shard_file(b), schema, compression) for b in range(n)]
        for b, e in enumerate(pool.map(_gather_job, jobs)):
            e["file"] = f"data/{shard_file(b)}"
            entries.append(e)
    for s in scatters:
        s.unlink(missing_ok=True)
    return entries


def _scatter_job(args) -> str:
    unit_shard, dest, n, seed = args
    dest = Path(dest)
    try:
        if not dest.exists():
            scatter(Path(unit_shard), dest, n, seed)
    except OSError as err:  # a full disk while shuffling: one line; the units' shards stay for a rerun
        raise ZhmaskError(f"shuffle: cannot write {dest}: {err}") from None
    return dest.name


def _gather_job(args) -> dict[str, Any]:
    scatters, b, dest, schema, compression = args
    try:
        return gather([Path(s) for s in scatters], b, Path(dest), schema, compression)
    except OSError as err:
        raise ZhmaskError(f"shuffle: cannot write {dest}: {err}") from None


class _Inline:
    """``ProcessPoolExecutor``'s ``map`` in this process (one worker)."""

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn, items):
        return map(fn, items)
