"""The shard contract: one declared Arrow schema for every example kind, versioned.

Every shard carries this schema with metadata ``zhmask.schema_version``,
``zhmask.version`` and ``zhmask.config`` (JSON).  Trainers and exporters import
:data:`SCHEMA` and :func:`check_schema` from here and nothing else.  Columns that a task does
not fill are null.  See docs/schema.md for the meaning of each column.

This module only declares: the columns, their types, and who fills them (:data:`ROW_COLUMNS`;
tasks and masking strategies declare the others when they register).  The arrays are built in
:mod:`zhmask.write.arrays` and encoded by a writer of :mod:`zhmask.write`.
"""
from __future__ import annotations

import json
from typing import Any, Collection, Mapping

import pyarrow as pa

from zhmask.record import NO_LABEL, SENTENCE_LABEL  # noqa: F401  (the column's name, re-exported)

SCHEMA_VERSION = "6"  # 2: segment_sources column (sentence-level tasks); 3: label -> next_sentence_label, -100 for none;
# 4: token ids and in-row positions int16 where the vocabulary and max_seq_length allow, buffers compressed;
# 5: doc_bounds column (clm rows: where each packed document's part starts);
# 6: unit column (issue 17: the work unit whose unigram table the random branch draws from), and
#    perm_order and num_predict columns (issue 19: plm rows, XLNet's factorisation order and its predicted count)

I32 = pa.int32()
I16 = pa.int16()
SOURCE = pa.struct([("doc_id", pa.string()), ("start", I32), ("end", I32)])  # character offsets: int32

# Columns whose integer width follows the build: token ids (``-100`` included) are int16 when every id
# of the vocabulary fits (at most 32,768 entries), positions inside a row (word numbers, token
# positions) int16 when ``max_seq_length`` fits; int32 otherwise.  Readers accept either width.
ID_COLUMNS = ("input_ids", "labels", "source_ids", "target_ids")
POSITION_COLUMNS = ("word_ids", "chinese_ref", "fragment_bounds", "span_bounds", "noise_positions", "doc_bounds",
                    "perm_order")
NARROW_LIMIT = 1 << 15  # int16 holds 0 .. 32,767


def entity_type(pos: pa.DataType = I32) -> pa.DataType:
    return pa.struct([("start", pos), ("end", pos), ("type", pa.string())])


ENTITY = entity_type(I32)


def fields(ids: pa.DataType = I32, pos: pa.DataType = I32) -> list[pa.Field]:
    """The columns, with token ids of type ``ids`` and in-row positions of type ``pos``."""
    return [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("input_ids", pa.list_(ids), nullable=False),
        pa.field("token_type_ids", pa.list_(pa.int8()), nullable=False),
        pa.field("word_ids", pa.list_(pos), nullable=False),
        pa.field("labels", pa.list_(ids), nullable=False),
        pa.field(SENTENCE_LABEL, I16, nullable=False),
        # whole-word masking interop: positions of tokens that continue a Chinese word
        pa.field("chinese_ref", pa.list_(pos)),
        # knowledge units (ERNIE): token-level [start, end) spans with a type
        pa.field("entities", pa.list_(entity_type(pos))),
        # word-aware tasks: a label per token (-100 where none)
        pa.field("token_labels", pa.list_(I16)),
        # sentence-level tasks: per segment, the document and [start, end) character span it came from
        pa.field("segment_sources", pa.list_(SOURCE)),
        # ERNIE-GEN
        pa.field("source_ids", pa.list_(ids)),
        pa.field("target_ids", pa.list_(ids)),
        pa.field("fragment_bounds", pa.list_(pos)),
        pa.field("span_bounds", pa.list_(pos)),
        pa.field("noise_positions", pa.list_(pos)),
        # clm: [0, e1, ..., n], the row's documents' parts (each with its closing [SEP])
        pa.field("doc_bounds", pa.list_(pos)),
        # the work unit the row was built in: its unigram table (unigram/unit-NNNNN.arrow) is where
        # --random-tokens unigram draws; null for rows made outside a build
        pa.field("unit", I32),
        # plm (XLNet): the factorisation order (a permutation of the row's positions, [CLS]/[SEP]
        # first) and how many of its last positions are predicted
        pa.field("perm_order", pa.list_(pos)),
        pa.field("num_predict", I16),
    ]


FIELDS: list[pa.Field] = fields()
COLUMNS = [f.name for f in FIELDS]
SCHEMA = pa.schema(FIELDS)  # the widest variant: any vocabulary, any length


def widths(vocab_size: int | None, max_seq_length: int | None) -> tuple[pa.DataType, pa.DataType]:
    """(token id type, in-row position type) for a build: int16 where every value fits."""
    ids = I16 if vocab_size is not None and 0 < vocab_size <= NARROW_LIMIT else I32
    pos = I16 if max_seq_length is not None and 0 < max_seq_length <= NARROW_LIMIT - 1 else I32
    return ids, pos


def schema_for(vocab_size: int | None, max_seq_length: int | None) -> pa.Schema:
    """The schema of a build's shards (:func:`widths`)."""
    return pa.schema(fields(*widths(vocab_size, max_seq_length)))


def schema_with_metadata(config: dict[str, Any], version: str, vocab_size: int | None = None) -> pa.Schema:
    return schema_for(vocab_size, config.get("max_seq_length")).with_metadata({
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
    variants = {}
    for ids in (I16, I32):
        for pos in (I16, I32):
            for f in fields(ids, pos):
                variants.setdefault(f.name, []).append(f.type)
    for f in FIELDS:
        if f.name not in schema.names:
            problems.append(f"missing column {f.name}")
        elif not any(schema.field(f.name).type.equals(t) for t in variants[f.name]):
            problems.append(f"column {f.name} has type {schema.field(f.name).type}, expected {f.type}")
    return problems


# ---------------------------------------------------------------------- who fills which column
# The pipeline fills these in every row (a task may fill ``labels`` itself, as clm does; ``unit``
# is null in rows made outside a build).
ROW_COLUMNS = ("doc_id", "example_id", "task", "input_ids", "token_type_ids", "word_ids", "labels", SENTENCE_LABEL,
               "entities", "chinese_ref", "unit")
# Every other column is filled only by the tasks and masking strategies that declare it when they
# register (``@register(name, columns=(...))`` in zhmask/labels/ and zhmask/masking/), and is
# null in every other row (``zhmask verify`` checks it: :func:`undeclared_columns`).
DECLARED_COLUMNS = tuple(c for c in COLUMNS if c not in ROW_COLUMNS)


def undeclared_columns(row: Mapping[str, Any], declared: Collection[str]) -> list[str]:
    """The columns ``row`` fills that neither every row nor ``declared`` (its task's and its
    masking strategy's columns) accounts for."""
    return [c for c in DECLARED_COLUMNS if row.get(c) is not None and c not in declared]
