"""Record batches from rows: every array of a shard is built here, from numpy buffers.

:mod:`zhmask.schema` declares the columns and their types; this module turns what the pipeline
produces (row dicts, or :class:`Block` columns) into the record batches of that schema, which a
writer (:mod:`zhmask.write`) encodes.  The batches built from blocks are those built from the
same rows, byte for byte (tests/masking/test_units.py).
"""
from __future__ import annotations

from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa

from zhmask.schema import I16, I32, SCHEMA


# ---------------------------------------------------------------------- arrays from buffers
# Every array is built from its buffers: the first ``pa.array`` call of a process imports pandas
# (pyarrow looks for pandas types), about 0.3 s of every build's start-up.  The arrays are the
# ones ``pa.array`` would build (tests compare shard bytes); odd values fall back to ``pa.array``.
_NP = {pa.int8(): np.int8, I16: np.int16, I32: np.int32, pa.int64(): np.int64, pa.uint64(): np.uint64,
       pa.float32(): np.float32, pa.float64(): np.float64}


def _np_dtype(typ: pa.DataType):
    t = _NP.get(typ)
    return t if t is not None else typ.to_pandas_dtype()


def prim_array(values, typ: pa.DataType) -> pa.Array:
    """A primitive array without nulls from a numpy array (or list) of numbers."""
    t = _NP.get(typ)
    if t is None:
        return pa.array(values, type=typ)
    arr = np.ascontiguousarray(_cast(np.asarray(values), t))
    return pa.Array.from_buffers(typ, len(arr), [None, pa.py_buffer(arr)])


def take_rows(table: pa.Table, indices: np.ndarray) -> pa.Table:
    """``table.take(indices)`` (int64 row numbers), through Arrow's compute core without the
    ``pyarrow.compute`` module, whose import (it generates a wrapper for every function) costs
    about 0.05 CPU-s of every build's start-up.  The same kernel: the same table."""
    idx = prim_array(indices, pa.int64())
    try:
        from pyarrow._compute import call_function
    except ImportError:  # pragma: no cover - a pyarrow without the private module
        return table.take(idx)
    return call_function("take", [table, idx])


def _cast(arr: np.ndarray, t) -> np.ndarray:
    """``arr`` as numpy type ``t``; ValueError when an integer does not fit a narrower type
    (never a silent wrap-around)."""
    t = np.dtype(t)
    if arr.dtype != t and len(arr) and arr.dtype.kind in "iu" and t.kind == "i" and arr.dtype.itemsize > t.itemsize:
        info = np.iinfo(t)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            raise ValueError(f"value {lo if lo < info.min else hi} does not fit a {t} column (a row longer "
                             "than max_seq_length, or an id outside the vocabulary)")
    return arr.astype(t, copy=False)


def _strings(vals: list) -> pa.Array:
    """A string array without nulls from a list of str."""
    enc = [v.encode("utf-8") for v in vals]
    offs = np.zeros(len(enc) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=len(enc)), out=offs[1:])
    if offs[-1] >= 1 << 31:
        return pa.array(vals, type=pa.string())
    return pa.Array.from_buffers(pa.string(), len(enc), [None, pa.py_buffer(offs.astype(np.int32)),
                                                         pa.py_buffer(b"".join(enc))])


def _scalar_array(vals: list, typ: pa.DataType) -> pa.Array:
    """A column of scalars (strings or integers) as ``pa.array(vals, type=typ)`` builds it."""
    if typ == pa.string() and all(type(v) is str for v in vals):
        return _strings(vals)
    if typ in _NP and pa.types.is_integer(typ) and vals and all(v is None for v in vals):  # a task's column others leave null
        return pa.Array.from_buffers(typ, len(vals), [pa.py_buffer(np.zeros((len(vals) + 7) // 8, dtype=np.uint8)),
                                                      pa.py_buffer(np.zeros(len(vals), dtype=_NP[typ]))], null_count=len(vals))
    if typ in _NP and pa.types.is_integer(typ) and all(type(v) is int for v in vals):
        info = np.iinfo(_NP[typ])
        arr = np.array(vals, dtype=np.int64) if vals else np.zeros(0, dtype=np.int64)
        if not len(arr) or (int(arr.min()) >= info.min and int(arr.max()) <= info.max):
            return prim_array(arr, typ)
    return pa.array(vals, type=typ)


def _list_of(offsets: np.ndarray, child: pa.Array, typ: pa.DataType | None = None,
             null: np.ndarray | None = None) -> pa.Array:
    if len(offsets) and int(offsets[-1]) > np.iinfo(np.int32).max:
        raise ValueError("a record batch with more than 2**31 values in one list column")
    if null is None:
        return pa.ListArray.from_arrays(prim_array(offsets, I32), child, **({} if typ is None else {"type": typ}))
    # with nulls, from the buffers: ListArray.from_arrays(mask=...) inverts the mask with
    # pyarrow.compute, whose import alone costs 0.05 CPU-s of every build's start-up
    null = np.asarray(null, dtype=bool)
    arr = pa.Array.from_buffers(typ if typ is not None else pa.list_(child.type), len(null),
                                [pa.py_buffer(np.packbits(~null, bitorder="little")),
                                 pa.py_buffer(np.ascontiguousarray(offsets, dtype=np.int32))],
                                null_count=int(null.sum()), children=[child])
    arr.validate()
    return arr


def _is_entity(t: pa.DataType) -> bool:
    return pa.types.is_struct(t) and [f.name for f in t] == ["start", "end", "type"]


def _entity_array(values: list, typ: pa.DataType) -> pa.Array:
    """list<struct<start, end, type>> from lists of (start, end, type) tuples or None, built from
    flat columns (the same array as converting a dict per entity, several times faster)."""
    if any(v is None for v in values):
        return _entity_dicts(values, typ)
    flat = list(chain.from_iterable(values))
    if flat and set(map(len, flat)) != {3}:
        return _entity_dicts(values, typ)
    lens = np.fromiter(map(len, values), dtype=np.int32, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    # columns by itemgetter, not zip(*flat): that makes an iterator object per entity (GC churn)
    starts, ends, types = (list(map(itemgetter(k), flat)) for k in range(3))
    if not all(type(t) is str for t in types):
        return _entity_dicts(values, typ)
    ent = list(typ.value_type)
    child = pa.StructArray.from_arrays(
        [_scalar_array(starts, ent[0].type), _scalar_array(ends, ent[1].type), _strings(types)], fields=ent)
    return _list_of(offsets, child, typ)


def _entity_dicts(values: list, typ: pa.DataType) -> pa.Array:
    return pa.array([None if v is None else [{"start": s, "end": e, "type": t} for s, e, t in v]
                     for v in values], type=typ)


def _struct_list_array(values: list, typ: pa.DataType) -> pa.Array:
    """list<struct> from lists of dicts or of tuples in the struct's field order (or None)."""
    fields = list(typ.value_type)
    names = [c.name for c in fields]
    null = np.array([v is None for v in values], dtype=bool)
    flat = [x if isinstance(x, dict) else dict(zip(names, x)) for v in values if v is not None for x in v]
    cols = [[x.get(n) for x in flat] for n in names]
    if all(type(c) is str if f.type == pa.string() else type(c) is int
           for f, col in zip(fields, cols) for c in col) and all(pa.types.is_integer(f.type) or f.type == pa.string()
                                                               for f in fields):
        lens = np.array([0 if v is None else len(v) for v in values], dtype=np.int64)
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        child = pa.StructArray.from_arrays([_scalar_array(c, f.type) for f, c in zip(fields, cols)], fields=fields)
        return _list_of(offsets, child, typ, null if null.any() else None)
    return pa.array([
        None if v is None else [x if isinstance(x, dict) else dict(zip(names, x)) for x in v] for v in values
    ], type=typ)


# ---------------------------------------------------------------------- column blocks
# A mask batch hands the writer its rows as columns (flat arrays + lengths for the list<int>
# columns, plain lists for the others) instead of one dict per row; the record batches built
# from blocks are those tests/oracle.py's rows_to_batch builds from the same rows, byte for byte
# (tests/masking/test_units.py).

class ListColumn:
    """A list<int> column of ``len(lens)`` rows: the values of row i are
    ``flat[offs[i]:offs[i + 1]]``; ``valid`` (None: all valid) marks the non-null rows.  ``flat``
    has the column's numpy type already."""

    __slots__ = ("flat", "lens", "valid", "_offs")

    def __init__(self, flat: np.ndarray, lens: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.flat = flat
        self.lens = lens
        self.valid = valid
        self._offs: np.ndarray | None = None

    @classmethod
    def from_values(cls, values: list, typ: pa.DataType) -> "ListColumn":
        """From per-row arrays / lists / None (a null row)."""
        lens = np.array([len(v) if v is not None else 0 for v in values], dtype=np.int64)
        parts = [np.asarray(v) for v in values if v is not None and len(v)]
        np_t = _np_dtype(typ)
        flat = _cast(np.concatenate(parts), np_t) if parts else np.zeros(0, dtype=np_t)
        valid = None
        if any(v is None for v in values):
            valid = np.array([v is not None for v in values], dtype=bool)
        return cls(flat, lens, valid)

    def __len__(self) -> int:
        return len(self.lens)

    def offsets(self) -> np.ndarray:
        if self._offs is None:
            o = np.zeros(len(self.lens) + 1, dtype=np.int64)
            np.cumsum(self.lens, out=o[1:])
            self._offs = o
        return self._offs

    def slice(self, a: int, b: int) -> "ListColumn":
        o = self.offsets()
        return ListColumn(self.flat[o[a]:o[b]], self.lens[a:b], None if self.valid is None else self.valid[a:b])


class Block:
    """Rows as columns: ``cols[name]`` is a :class:`ListColumn` (list<int> columns) or a list of
    per-row values (any column, as in a row dict); a missing column is null in every row."""

    __slots__ = ("n", "cols")

    def __init__(self, n: int, cols: dict[str, Any]) -> None:
        self.n = n
        self.cols = cols

    def __len__(self) -> int:
        return self.n

    def slice(self, a: int, b: int) -> "Block":
        return Block(b - a, {k: v.slice(a, b) if isinstance(v, ListColumn) else v[a:b] for k, v in self.cols.items()})


def rows_to_block(rows: list[dict[str, Any]], schema: pa.Schema = SCHEMA) -> Block:
    cols: dict[str, Any] = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if any(v is not None for v in vals):
            cols[f.name] = vals
    return Block(len(rows), cols)


def _concat_list_column(parts: list, typ: pa.DataType) -> pa.Array:
    """The list<int> array of the rows of several blocks' columns (ListColumn, lists of values,
    or None for all-null)."""
    cols = []
    for n, c in parts:
        if c is None:
            c = ListColumn(np.zeros(0, dtype=_np_dtype(typ)), np.zeros(n, dtype=np.int64),
                           np.zeros(n, dtype=bool))
        elif not isinstance(c, ListColumn):
            c = ListColumn.from_values(c, typ)
        cols.append(c)
    n = sum(len(c) for c in cols)
    if any(c.valid is not None for c in cols):
        valid = np.concatenate([c.valid if c.valid is not None else np.ones(len(c), dtype=bool) for c in cols])
    else:
        valid = None
    np_t = _np_dtype(typ)
    if n and valid is not None and not valid.any():  # all null
        return _list_of(np.zeros(n + 1, dtype=np.int32), prim_array(np.zeros(0, dtype=np_t), typ),
                        null=np.ones(n, dtype=bool))
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.concatenate([c.lens for c in cols]) if len(cols) > 1 else cols[0].lens, out=offsets[1:])
    flats = [c.flat for c in cols if len(c.flat)]
    if not flats:
        flat = np.zeros(0, dtype=np_t)
    elif len(flats) == 1:
        flat = _cast(flats[0], np_t)
    else:
        flat = _cast(np.concatenate(flats), np_t)
    if valid is None or valid.all():
        return _list_of(offsets, prim_array(flat, typ))
    return _list_of(offsets, prim_array(flat, typ), null=~valid)


def blocks_to_batch(blocks: list[Block], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    """The record batch of the rows of ``blocks`` in order (a column missing from a block is null
    in its rows)."""
    arrays = []
    for f in schema:
        parts = [(b.n, b.cols.get(f.name)) for b in blocks]
        if pa.types.is_list(f.type) and not pa.types.is_struct(f.type.value_type):
            arrays.append(_concat_list_column(parts, f.type.value_type))
            continue
        vals: list = []
        for n, c in parts:
            vals.extend(c if c is not None else [None] * n)
        if pa.types.is_list(f.type) and _is_entity(f.type.value_type):
            arrays.append(_entity_array(vals, f.type))
        elif pa.types.is_list(f.type):
            arrays.append(_struct_list_array(vals, f.type))
        else:
            arrays.append(_scalar_array(vals, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
