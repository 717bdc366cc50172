"""The shard contract: one declared Arrow schema for every example kind, versioned.

Every shard carries this schema with metadata ``zhmask.schema_version``,
``zhmask.version`` and ``zhmask.config`` (JSON).  Trainers and exporters import
:data:`SCHEMA` and :func:`check_schema` from here and nothing else.  Columns that a task does
not fill are null.  See docs/schema.md for the meaning of each column.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = "2"  # 2: segment_sources column (sentence-level tasks)

I32 = pa.int32()
ENTITY = pa.struct([("start", I32), ("end", I32), ("type", pa.string())])
SOURCE = pa.struct([("doc_id", pa.string()), ("start", I32), ("end", I32)])

FIELDS: list[pa.Field] = [
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("example_id", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("input_ids", pa.list_(I32), nullable=False),
    pa.field("token_type_ids", pa.list_(pa.int8()), nullable=False),
    pa.field("word_ids", pa.list_(I32), nullable=False),
    pa.field("labels", pa.list_(I32), nullable=False),
    pa.field("label", I32, nullable=False),
    # whole-word masking interop: positions of tokens that continue a Chinese word
    pa.field("chinese_ref", pa.list_(I32)),
    # knowledge units (ERNIE): token-level [start, end) spans with a type
    pa.field("entities", pa.list_(ENTITY)),
    # word-aware tasks: a label per token (-100 where none)
    pa.field("token_labels", pa.list_(I32)),
    # sentence-level tasks: per segment, the document and [start, end) character span it came from
    pa.field("segment_sources", pa.list_(SOURCE)),
    # ERNIE-GEN
    pa.field("source_ids", pa.list_(I32)),
    pa.field("target_ids", pa.list_(I32)),
    pa.field("fragment_bounds", pa.list_(I32)),
    pa.field("span_bounds", pa.list_(I32)),
    pa.field("noise_positions", pa.list_(I32)),
]
COLUMNS = [f.name for f in FIELDS]
SCHEMA = pa.schema(FIELDS)


def schema_with_metadata(config: dict[str, Any], version: str) -> pa.Schema:
    return SCHEMA.with_metadata({
        "zhmask.schema_version": SCHEMA_VERSION,
        "zhmask.version": version,
        "zhmask.config": json.dumps(config, sort_keys=True, ensure_ascii=False),
    })


def check_schema(schema: pa.Schema) -> list[str]:
    """Problems that make a shard unreadable by this version (empty when compatible)."""
    problems = []
    meta = schema.metadata or {}
    v = meta.get(b"zhmask.schema_version", b"").decode()
    if v != SCHEMA_VERSION:
        problems.append(f"schema version {v or 'missing'} (this zhmask reads {SCHEMA_VERSION})")
    for f in FIELDS:
        if f.name not in schema.names:
            problems.append(f"missing column {f.name}")
        elif not schema.field(f.name).type.equals(f.type):
            problems.append(f"column {f.name} has type {schema.field(f.name).type}, expected {f.type}")
    return problems


def _list_array(values: list, typ: pa.DataType) -> pa.Array:
    """list<typ> from a list of numpy arrays / lists / None, built with one concatenate."""
    if values and all(v is None for v in values):  # a column this task does not fill: all null
        offsets = pa.array(np.zeros(len(values) + 1, dtype=np.int32))
        flat = pa.array(np.zeros(0, dtype=typ.to_pandas_dtype()), type=typ)
        return pa.ListArray.from_arrays(offsets, flat, mask=pa.array(np.ones(len(values), dtype=bool)))
    valid = [v is not None for v in values]
    lens = np.array([len(v) if v is not None else 0 for v in values], dtype=np.int32)
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    parts = [np.asarray(v) for v in values if v is not None and len(v)]
    np_t = typ.to_pandas_dtype()
    flat = np.concatenate(parts).astype(np_t, copy=False) if parts else np.zeros(0, dtype=np_t)
    arr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=typ))
    if not all(valid):
        mask = pa.array([not v for v in valid])
        arr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=typ), mask=mask)
    return arr


def _entity_array(values: list, typ: pa.DataType) -> pa.Array:
    """list<struct<start, end, type>> from lists of (start, end, type) tuples or None, built from
    flat columns (the same array as converting a dict per entity, several times faster)."""
    if any(v is None for v in values) or any(len(e) != 3 for v in values for e in v):
        return pa.array([None if v is None else [{"start": s, "end": e, "type": t} for s, e, t in v]
                         for v in values], type=typ)
    lens = np.fromiter(map(len, values), dtype=np.int32, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    flat = [e for v in values for e in v]
    starts, ends, types = (list(c) for c in zip(*flat)) if flat else ([], [], [])
    child = pa.StructArray.from_arrays(
        [pa.array(starts, type=I32), pa.array(ends, type=I32), pa.array(types, type=pa.string())],
        fields=list(ENTITY))
    return pa.ListArray.from_arrays(pa.array(offsets), child, type=typ)


def rows_to_batch(rows: list[dict[str, Any]], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    """A record batch from row dicts (missing keys are null)."""
    arrays = []
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if pa.types.is_list(f.type) and not pa.types.is_struct(f.type.value_type):
            arrays.append(_list_array(vals, f.type.value_type))
        elif pa.types.is_list(f.type) and f.type.value_type.equals(ENTITY):
            arrays.append(_entity_array(vals, f.type))
        elif pa.types.is_list(f.type):  # list<struct>: dicts, or tuples in the struct's field order
            names = [c.name for c in f.type.value_type]
            arrays.append(pa.array([
                None if v is None else [x if isinstance(x, dict) else dict(zip(names, x)) for x in v] for v in vals
            ], type=f.type))
        else:
            arrays.append(pa.array(vals, type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
