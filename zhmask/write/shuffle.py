"""The build-wide shuffle: rows of every unit spread over every shard, in a random order fixed by
the seed, with bounded memory.

google-research/bert shuffles all its instances in memory before writing them; a large build
cannot.  zhmask shuffles in two passes over the units' shards (written to ``units/`` when
shuffling is on), each pass holding one unit's rows, or a block of output shards' rows
(:data:`BLOCK_BYTES`, at least one shard), at a time:

1. **scatter**, per unit: every row gets a key, the first 8 bytes of
   ``blake2b(seed, example_id)``; the row goes to output shard ``key % n`` (``n`` = the number of
   units), and the unit's rows are written sorted by (shard, key) to
   ``units/scatter-NNNNN.arrow`` (an uncompressed Arrow IPC file, memory-mapped when read), with
   the row offset of each output shard's rows in its schema metadata (:data:`OFFSETS`).
2. **gather**, a block of consecutive output shards at a time: each scatter file is opened once
   per block and the block's rows copied out of it (a block holds about :data:`BLOCK_BYTES` of
   rows); then per output shard of the block: its rows sorted by key,
   then reordered so that no two neighbours come from the same document (``--dupe-factor`` copies
   and a document's rows of other tasks are never adjacent inside a shard: a row that would sit
   next to one of its document is held back until a row of another document has been placed;
   only a shard that is mostly one document keeps neighbours, and they are counted), written to
   ``data/shard-NNNNN.arrow``.

A gather block opens every scatter file once, and an open costs the same whatever ``n``: the
metadata is read as one buffer.  Blocks times files still grows with the square of the build,
so a build of more than :data:`MERGE_ABOVE` units first **merges** its scatter files in groups
of :data:`FANIN` (``units/merged-NNNNN.arrow``, laid out as a scatter file: each output shard's
rows in file order, the offsets summed, read a block at a time and written a batch per output
shard; the group's scatter files then go), and the gather reads the merged files: one more pass
over the rows, and FANIN times fewer (file, block) pairs.  Each shard's rows reach the gather in
the same order either way, so the shards are the same.  An earlier layout (one record batch per output shard in every
scatter file, empty ones included, and every scatter file opened once per output shard) made n²
opens of files whose footers list n batches each, which took 80 of an 87-second build of 300
small units; now about n times the scatter files' size over BLOCK_BYTES, each cheap.

The key depends on the seed and the example only, and ``n`` on the input only, so the shards are
the same for any ``--workers`` and either engine, and a rerun reproduces them.  The unit shards
are removed once the manifest is written.  Both passes run on the build's engine, as its units
did (:meth:`zhmask.engines.base.Engine.map`): this process, its process pool, or Ray tasks
(on a cluster, on the shared ``--out`` its tasks wrote the units' shards to).
"""
from __future__ import annotations

import hashlib
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.write.arrays import prim_array, take_rows  # arrays from numpy buffers (pa.array on numpy imports pandas)

UNITS_DIR = "units"  # the units' shards while a shuffled build runs
KEY = "__shuffle_key"  # the scatter files' extra column (never in a final shard)
OFFSETS = b"zhmask.shuffle.offsets"  # a scatter file's first row of each output shard: n + 1 int64, raw
MEMBERS = b"zhmask.shuffle.units"  # a merged file's units, "first:end"
BLOCK_BYTES = 8 << 20  # rows (of scatter files, uncompressed) that one gather block holds at most
FANIN = 64  # scatter files merged into one before the gather, when a build has more than MERGE_ABOVE units
MERGE_ABOVE = 128


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
    """Write ``dest``: the rows of ``unit_shard`` sorted by (output shard, key), with their keys,
    and in the schema metadata the offset of each output shard's rows (:data:`OFFSETS`)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = _read(unit_shard)
    keys = row_keys(table.column("example_id").to_pylist(), seed)
    bucket = (keys % np.uint64(n_out)).astype(np.int64)
    order = np.lexsort((keys, bucket))
    table = take_rows(table, order).append_column(KEY, prim_array(keys[order], pa.uint64())).combine_chunks()
    offsets = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(np.bincount(bucket, minlength=n_out), out=offsets[1:])
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), OFFSETS: offsets.tobytes()})
    tmp = dest.with_name(dest.name + ".tmp")
    # a temporary file, uncompressed: the gather pass maps it and copies its blocks without decoding
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    tmp.replace(dest)


def _offsets(schema, n_out: int) -> np.ndarray | None:
    """A scatter file's :data:`OFFSETS` for ``n_out`` output shards (None: not a scatter file of
    this layout and shard count, e.g. left by an older zhmask: scattered again)."""
    raw = (schema.metadata or {}).get(OFFSETS)
    if raw is None or len(raw) != 8 * (n_out + 1):
        return None
    return np.frombuffer(raw, dtype=np.int64)


def _file_offsets(reader, path: Path, n_out: int) -> np.ndarray:
    """The :data:`OFFSETS` of an open scatter (or merged) file; a file of another layout or shard
    count ends the build in one line."""
    offs = _offsets(reader.schema, n_out)
    if offs is None:
        raise ZhmaskError(f"shuffle: {path} is not a scatter file of this build (remove {Path(path).parent} and rerun)")
    return offs


def _members(group: Sequence[int]) -> bytes:
    """A merged file's :data:`MEMBERS`: its units as ``first:end``."""
    return f"{group[0]}:{group[-1] + 1}".encode()


def scattered(dest: Path, n_out: int, group: Sequence[int] | None = None) -> bool:
    """Whether ``dest`` is a finished scatter file for ``n_out`` output shards (a rerun keeps it),
    or with ``group``, a finished merge of those units' scatter files."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    try:
        with pa.memory_map(str(dest)) as src:
            schema = ipc.open_file(src).schema
    except (OSError, pa.ArrowInvalid):
        return False
    if group is not None and (schema.metadata or {}).get(MEMBERS) != _members(group):
        return False
    return _offsets(schema, n_out) is not None


def read_block(scatter_files: Sequence[Path], b0: int, b1: int, n_out: int) -> list[list[Any]]:
    """The rows of output shards ``b0 .. b1 - 1`` from every scatter file, copied (a list of
    tables per output shard, in file order): each file is opened once, and its memory map is
    released before the next is opened.  Zero-copy slices were tried: they keep every file's
    map until the block is written, and gathering a shard from them touched about 13 times its
    rows in mapped pages (docs/performance.md, "The shuffle")."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    parts: list[list[Any]] = [[] for _ in range(b1 - b0)]
    for f in scatter_files:
        with pa.memory_map(str(f)) as src:
            r = ipc.open_file(src)
            offs = _file_offsets(r, f, n_out)
            lo, hi = int(offs[b0]), int(offs[b1])
            if hi == lo:
                continue
            rows = _copy(r.read_all().slice(lo, hi - lo))
        for b in range(b0, b1):
            a, z = int(offs[b]) - lo, int(offs[b + 1]) - lo
            if z > a:
                parts[b - b0].append(rows.slice(a, z - a))
    return parts


def _copy(block):
    """A copy of just ``block``'s rows (a slice of a mapped file), without the file's metadata
    (each file's offsets differ: the parts concatenate).  Concatenating a slice copies it: in one
    call for the whole batch where pyarrow has ``concat_batches`` (a take with a
    range of row numbers was 6 times slower, a concatenation per column 1.5 times)."""
    import pyarrow as pa

    if hasattr(pa, "concat_batches"):
        return pa.Table.from_batches([pa.concat_batches(block.to_batches())]).replace_schema_metadata(None)
    return pa.table([pa.concat_arrays(c.chunks) for c in block.columns], names=block.column_names)


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


def gather(parts: Sequence[Any], b: int, dest: Path, schema, compression: str | None) -> dict[str, Any]:
    """Output shard ``b`` from its rows (``parts``: tables of the scatter files' columns, see
    :func:`read_block`), in key order spread by document; written with ``schema`` (the build's,
    with metadata).  Returns its manifest entry (file name set by the caller) and the count of
    same-document neighbours."""
    import pyarrow as pa

    from zhmask.write.shards import ShardWriter

    with ShardWriter(dest, schema, compression) as w:
        same = 0
        if parts:
            table = pa.concat_tables(parts)  # written with ``schema`` (ShardWriter), metadata included
            # keys from the buffers: Array.to_numpy imports pandas (about a second) the first time
            keys = np.concatenate([np.frombuffer(c.buffers()[1], dtype=np.uint64)[c.offset:c.offset + len(c)]
                                   for c in table.column(KEY).chunks])
            by_key = np.argsort(keys, kind="stable")
            docs = table.column("doc_id").to_pylist()
            order, same = spread([docs[i] for i in by_key.tolist()])
            w.write_table(take_rows(table, by_key[order]).drop_columns([KEY]))  # one take
    return {**w.record(), "adjacent_same_document": same}


def blocks(n_out: int, scatter_bytes: int, workers: int = 1) -> list[tuple[int, int]]:
    """Output shards ``[b0, b1)`` gathered together: about :data:`BLOCK_BYTES` of rows each, and
    at least one block per worker."""
    per_shard = max(1, scatter_bytes // max(1, n_out))
    size = max(1, min(n_out, BLOCK_BYTES // per_shard))
    if workers > 1:
        size = min(size, -(-n_out // workers))
    return [(b0, min(n_out, b0 + size)) for b0 in range(0, n_out, size)]


def shuffle_units(out: Path, unit_shards: Sequence[Path], seed: int, schema, compression: str | None,
                  workers: int, pmap: Callable[[Callable, list], list]) -> list[dict[str, Any]]:
    """Scatter every unit shard, gather every output shard into ``out/data``; returns the output
    shards' manifest entries in order (``file``, ``rows``, ``sha256``).  ``pmap(fn, jobs)`` runs
    the jobs (an engine's :meth:`~zhmask.engines.base.Engine.map`)."""
    from zhmask.write.shards import shard_file

    n = len(unit_shards)
    units = out / UNITS_DIR
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    scatters = [units / f"scatter-{i:05d}.arrow" for i in range(n)]
    groups = [list(range(i, min(n, i + FANIN))) for i in range(0, n, FANIN)] if n > MERGE_ABOVE else []
    merged = [units / f"merged-{g:05d}.arrow" for g in range(len(groups))]
    done = {i for g, m in zip(groups, merged) if scattered(m, n, g) for i in g}  # a rerun keeps finished merges
    pmap(_scatter_job, [(p, s, n, seed) for i, (p, s) in enumerate(zip(unit_shards, scatters)) if i not in done])
    if groups:  # fewer, larger files for the gather: see the module docstring
        pmap(_merge_job, [(g, [scatters[i] for i in g], m, n) for g, m in zip(groups, merged)])
    sources = merged or scatters
    plan = blocks(n, sum(s.stat().st_size for s in sources), workers)
    jobs = [(sources, b0, b1, n, data, schema, compression) for b0, b1 in plan]
    entries = [e for got in pmap(_gather_job, jobs) for e in got]
    for b, e in enumerate(entries):
        e["file"] = f"data/{shard_file(b)}"
    for s in [*scatters, *merged]:
        s.unlink(missing_ok=True)
    return entries


def _merge_job(args) -> str:
    """One file (``dest``) with the rows of a group of scatter files, laid out as a scatter file:
    grouped by output shard (each shard's rows in file order), the offsets summed.  Written a
    block of output shards at a time; the group's scatter files are removed once it is whole."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    group, files, dest, n = args
    dest = Path(dest)
    if scattered(dest, n, group):
        return dest.name
    offsets = np.zeros(n + 1, dtype=np.int64)
    schema = None
    for f in files:
        with pa.memory_map(str(f)) as src:
            r = ipc.open_file(src)
            offsets += _file_offsets(r, f, n)
            schema = schema or r.schema.remove_metadata()
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        meta = {OFFSETS: offsets.tobytes(), MEMBERS: _members(group)}
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema.with_metadata(meta)) as w:
            for b0, b1 in blocks(n, sum(Path(f).stat().st_size for f in files)):
                parts = read_block(files, b0, b1, n)
                for k, rows in enumerate(parts):  # one batch an output shard, its rows in file order
                    if rows:
                        w.write_table(pa.concat_tables(rows).combine_chunks())
                    parts[k] = []  # written: the block's copies go once all its shards are
        tmp.replace(dest)
    except OSError as err:
        raise ZhmaskError(f"shuffle: cannot write {dest}: {err}") from None
    for f in files:
        Path(f).unlink(missing_ok=True)
    return dest.name


def _scatter_job(args) -> str:
    unit_shard, dest, n, seed = args
    dest = Path(dest)
    try:
        if not scattered(dest, n):  # a rerun keeps the scatter files a stopped shuffle finished
            scatter(Path(unit_shard), dest, n, seed)
    except OSError as err:  # a full disk while shuffling: one line; the units' shards stay for a rerun
        raise ZhmaskError(f"shuffle: cannot write {dest}: {err}") from None
    return dest.name


def _gather_job(args) -> list[dict[str, Any]]:
    """The output shards of one block, in order."""
    from zhmask.write.shards import shard_file

    scatters, b0, b1, n, data, schema, compression = args
    try:
        parts = read_block([Path(s) for s in scatters], b0, b1, n)
    except OSError as err:
        raise ZhmaskError(f"shuffle: cannot read the scatter files of {data.parent}: {err}") from None
    out = []
    for b in range(b0, b1):
        dest = Path(data) / shard_file(b)
        try:
            out.append(gather(parts[b - b0], b, dest, schema, compression))
        except OSError as err:
            raise ZhmaskError(f"shuffle: cannot write {dest}: {err}") from None
        parts[b - b0] = []  # the shard's rows are written: let them go
    return out
