"""Unit unigram tables: where ``--random-tokens unigram`` draws the 10% random branch.

A build's work unit (``--docs-per-shard`` documents, fixed by the input: :func:`zhmask.steps.plan.plan_units`)
counts the non-special token ids of its tokenised documents (the texts as read, before any
example is cut from them or masked): its :class:`UnitTable`.  A random replacement is drawn from
the table of the row's unit with the replaced token's own count left out (the original stays
only where the table holds no other token), so the branch follows the token distribution of the
build's own text and never reads as "keep".

The build writes each unit's table beside its shards (``unigram/unit-NNNNN.arrow``: an Arrow IPC
stream of sparse ``(token_id, count)`` pairs, sorted by token id, listed with its sha256 in the
manifest's ``unigram_tables`` and checked by ``zhmask verify``), and every row names its unit
(the ``unit`` column), so load-time masking (:class:`zhmask.masking.dynamic.DynamicMasking`)
reads the same table and draws exactly what the build drew: :class:`BuildTables` loads the
tables it needs lazily, at most :data:`CACHE_TABLES` at a time.

The draw is vectorised over any number of positions of any number of tables
(:func:`replacement_bounds` then :func:`pick_tokens`): one bounded integer per position, the same count
and bounds whichever path (per row or a batch of rows) draws them.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from zhmask.errors import ZhmaskError

TABLE_DIR = "unigram"
CACHE_TABLES = 64  # tables DynamicMasking keeps loaded (each at most vocab_size (id, count) pairs)
RESOURCE = "unigram_tables"  # TaskContext.resources key of the tables the masker draws from


def table_file(unit: int) -> str:
    """The table's path inside the build directory."""
    return f"{TABLE_DIR}/unit-{int(unit):05d}.arrow"


def table_schema():
    import pyarrow as pa

    return pa.schema([pa.field("token_id", pa.int32(), nullable=False), pa.field("count", pa.int64(), nullable=False)])


@dataclass(frozen=True)
class UnitTable:
    """Sorted distinct token ids and their counts (int64)."""

    ids: np.ndarray
    counts: np.ndarray

    @property
    def total(self) -> int:
        return int(self.cum0[-1])

    @cached_property
    def cum0(self) -> np.ndarray:
        """``[0, c0, c0 + c1, ...]``: tokens before each entry (int64)."""
        c = np.zeros(len(self.counts) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=c[1:])
        return c

    @cached_property
    def ids64(self) -> np.ndarray:
        return self.ids.astype(np.int64)

    @classmethod
    def count(cls, token_ids: Iterable[np.ndarray], special_ids, vocab_size: int) -> "UnitTable":
        """The table of the tokens of ``token_ids`` (arrays of ids below ``vocab_size``) but
        ``special_ids``."""
        parts = [np.asarray(a, dtype=np.int64) for a in token_ids]
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        c = np.bincount(ids, minlength=vocab_size)[:vocab_size]
        c[np.asarray(special_ids, dtype=np.int64)] = 0
        nz = np.flatnonzero(c)
        return cls(nz.astype(np.int32), c[nz].astype(np.int64))


def write_table(path: Path, table: UnitTable) -> str:
    """Write ``table`` (atomically, as a shard is written); returns its sha256."""
    import pyarrow as pa

    from zhmask.write.arrays import prim_array  # (arrays from buffers: pa.array would import pandas)
    from zhmask.write.shards import ShardWriter

    sch = table_schema()
    with ShardWriter(path, sch) as w:
        w.write_table(pa.table([prim_array(table.ids, pa.int32()), prim_array(table.counts, pa.int64())], schema=sch))
    return w.sha256  # type: ignore[return-value]


def read_table(path: Path, vocab_size: int | None = None) -> UnitTable:
    """The table written by :func:`write_table`, or ZhmaskError naming the file when it is
    missing, unreadable or not a table of this vocabulary."""
    import pyarrow as pa

    from zhmask.reader import open_shard

    try:
        with open_shard(path) as r:
            if not r.schema.equals(table_schema()):
                raise ZhmaskError(f"{path}: not a unigram table (columns {', '.join(r.schema.names)})")
            t = r.read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise ZhmaskError(f"cannot read the unigram table {path}: {exc}") from None
    ids = t.column("token_id").to_numpy().astype(np.int32)
    counts = t.column("count").to_numpy().astype(np.int64)
    if len(ids) and (ids.min() < 0 or (vocab_size is not None and ids.max() >= vocab_size) or (np.diff(ids) <= 0).any() or counts.min() <= 0):
        raise ZhmaskError(f"{path}: token ids not sorted, distinct and inside the vocabulary, or counts not positive")
    return UnitTable(ids, counts)


class CurrentUnit:
    """The tables a build's masker sees: the table of the unit being built, for its rows."""

    def __init__(self, unit: int | None, table: UnitTable) -> None:
        self.unit, self.table = unit, table

    def get(self, unit: int | None) -> UnitTable:
        if unit is not None and self.unit is not None and int(unit) != self.unit:
            raise ValueError(f"a row of unit {unit} masked while building unit {self.unit}")
        return self.table


class BuildTables:
    """The tables of a finished build, loaded lazily, the last :data:`CACHE_TABLES` kept."""

    def __init__(self, out: str | Path, listing: Iterable[Mapping[str, Any]], vocab_size: int | None = None) -> None:
        self.out = Path(out)
        try:
            self.files = {int(e["unit"]): str(e["file"]) for e in listing}
        except (KeyError, TypeError, ValueError):
            raise ZhmaskError(f"{self.out}/manifest.json: unigram_tables is not a list of {{unit, file}}") from None
        self.vocab_size = vocab_size
        self._cache: OrderedDict[int, UnitTable] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": OrderedDict()}

    def get(self, unit: int | None) -> UnitTable:
        if unit is None:
            raise ZhmaskError(f"a row of {self.out} names no unit (no 'unit' column value): its random "
                              "replacements cannot be drawn from the build's unigram tables")
        u = int(unit)
        t = self._cache.get(u)
        if t is not None:
            self._cache.move_to_end(u)
            return t
        f = self.files.get(u)
        if f is None:
            raise ZhmaskError(f"{self.out}: the manifest lists no unigram table for unit {u}")
        t = read_table(self.out / f, self.vocab_size)
        self._cache[u] = t
        if len(self._cache) > CACHE_TABLES:
            self._cache.popitem(last=False)
        return t


@dataclass
class Draw:
    """What :func:`pick_tokens` needs for the positions of one draw (see :func:`replacement_bounds`)."""

    high: np.ndarray  # tokens of the position's table other than the original (0: keep it)
    before: np.ndarray  # tokens of the table ordered before the original (by token id)
    same: np.ndarray  # the original's count in the table
    start: np.ndarray  # where the position's table starts in ``cum`` (tokens of the tables before)
    ids: np.ndarray  # the tables' token ids, concatenated
    cum: np.ndarray  # running token count of the concatenated tables (inclusive)
    orig: np.ndarray


def replacement_bounds(tables: list[UnitTable], which: np.ndarray, orig: np.ndarray) -> Draw:
    """For positions whose original tokens are ``orig``, each drawing from ``tables[which[i]]``:
    the bound of its draw (``high``) and what maps the drawn value to a token."""
    which = np.asarray(which, dtype=np.int64)
    orig = np.asarray(orig, dtype=np.int64)
    if len(tables) == 1:  # (a build's batches: the unit's own table, prepared once)
        t = tables[0]
        ids, cum0 = t.ids64, t.cum0
        lo = np.searchsorted(ids, orig)
        hit = lo < len(ids)
        hit[hit] = ids[lo[hit]] == orig[hit]
        same = np.where(hit, cum0[np.minimum(lo + 1, len(ids))] - cum0[lo], 0)
        return Draw(t.total - same, cum0[lo], same, np.zeros(len(orig), dtype=np.int64), ids, cum0[1:], orig)
    sizes = np.fromiter((len(t.ids) for t in tables), dtype=np.int64, count=len(tables))
    ids = np.concatenate([t.ids for t in tables]).astype(np.int64) if tables else np.zeros(0, np.int64)
    counts = np.concatenate([t.counts for t in tables]) if tables else np.zeros(0, np.int64)
    cum0 = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=cum0[1:])
    first = np.cumsum(sizes) - sizes  # each table's first entry
    start = cum0[first][which] if len(tables) else np.zeros(len(which), np.int64)
    total = (cum0[first + sizes] - cum0[first])[which] if len(tables) else np.zeros(len(which), np.int64)
    # the original's entry in its own table: tables are sorted by id, so (table, id) keys are sorted
    V = np.int64(max(int(ids.max()) if len(ids) else 0, int(orig.max()) if len(orig) else 0) + 1)
    keys = np.repeat(np.arange(len(tables), dtype=np.int64), sizes) * V + ids
    key = which * V + orig
    lo = np.searchsorted(keys, key)
    hit = lo < len(keys)
    hit[hit] = keys[lo[hit]] == key[hit]
    same = np.where(hit, counts[np.minimum(lo, max(len(counts) - 1, 0))] if len(counts) else 0, 0)
    before = cum0[lo] - start
    return Draw(total - same, before, same, start, ids, cum0[1:], orig)


def pick_tokens(d: Draw, v: np.ndarray) -> np.ndarray:
    """The tokens for values ``v`` drawn in ``[0, max(high, 1))``: the ``v``-th token of the
    table in id order, the original's run skipped; the original where ``high`` is 0."""
    p = v + np.where(v >= d.before, d.same, 0)
    at = np.searchsorted(d.cum, d.start + p, side="right")
    got = d.ids[np.minimum(at, max(len(d.ids) - 1, 0))] if len(d.ids) else d.orig
    return np.where(d.high > 0, got, d.orig)
