"""Work units as descriptors: the driver plans, each worker reads its own input.

A build's input is cut into work units by the input alone: a unit closes before the document
that would make it hold more than ``--docs-per-shard`` documents, or once it holds 16 MiB of
input (:data:`UNIT_MAX_BYTES`), in input order across files.  A unit is a
:class:`UnitDescriptor`: its index and the :class:`~zhmask.steps.read.Segment` (file and byte
or record range) of each file it covers, a few hundred bytes whatever the unit's size.  The
driver plans descriptors (:func:`plan_units`) without decoding a document; each worker reads
and decodes its own ranges with the readers of :mod:`zhmask.steps.read` (:func:`read_unit`),
hashing the bytes as it reads them.

Planning, per format:

- text and JSONL: the file's bytes in blocks (decompressed for .gz and .zst), newlines found
  with numpy; a document starts at every line (text ``--doc-sep line``), at every non-empty
  line (JSONL: a record), at a non-empty line after an empty one (``--doc-sep blank``).  A
  line longer than ``--max-doc-mb`` is read again through :func:`~zhmask.steps.read.iter_lines`
  to find its pieces, which count as documents and may start a unit, as when the driver read
  the documents itself.  Not counted as the readers count: lines of only spaces (a separator
  for blank-line documents, no record in JSONL: the planner never cuts there) and the pieces
  of a long blank-line document or JSONL record (one document for the planner);
- Parquet and Arrow: the row groups' or record batches' row counts and the named columns'
  sizes (metadata, memory-mapped buffers): a unit is a range of records.

The fields the build names are checked here, once per file, before any of its ranges is read
(tables: their schema; JSONL: the reader's check on the first records, :func:`check_fields`),
so that a file none of whose records has the text field fails the build before a worker
writes a shard of it.

A file the planner cannot read (corrupt compressed data) stops the build, or with
``--skip-bad-files`` ends its plan at the last complete line before the damage (listed under
``bad_files``, as before).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from zhmask.config import BuildConfig
from zhmask.errors import BadInputFile
from zhmask.steps.read import (InputFile, RawDoc, Segment, _blocks, detect_format,
                               iter_lines, named_fields, read_file, table_chunks)

# A unit is also closed once its records reach this many bytes (still cut by the input alone),
# so that a file of huge documents (or a 50 MB line cut into pieces) keeps memory per unit bounded.
UNIT_MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class UnitDescriptor:
    """One work unit: what a worker receives instead of the unit's documents."""
    unit: int
    segments: tuple[Segment, ...]

    def to_json(self) -> str:
        return json.dumps({"unit": self.unit, "segments": [asdict(s) for s in self.segments]},
                          ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "UnitDescriptor":
        d = json.loads(text)
        return cls(int(d["unit"]), tuple(Segment(**s) for s in d["segments"]))

    def where(self) -> str:
        """The unit's input in words, for messages written without its documents."""
        return ", ".join(f"{s.name} {'records' if s.fmt in ('parquet', 'arrow') else 'bytes'} {s.start:,}-{s.end:,}"
                         for s in self.segments)


def read_fields(config: BuildConfig) -> dict[str, str]:
    """The record fields (JSONL keys, table columns) the build reads, each with the option that
    named it: a file whose records have none of one stops the build naming it."""
    return named_fields(config.source_field or config.text_field, config.title_field, config.target_field,
                        "--source-field" if config.source_field else "--text-field")


def max_doc_bytes(config: BuildConfig) -> int:
    """``--max-doc-mb`` in bytes: longer lines and records are cut into pieces."""
    return int(config.max_doc_mb * 1_000_000)


# ---------------------------------------------------------------------------- worker side
@dataclass
class UnitInput:
    """What a worker read for one unit: its records, each range's checksum (``{"name",
    "start", "end", "sha256"}``, in the unit's order) and, with ``--skip-bad-files``, the files
    it could not read to the end (``{"file", "error"}``)."""
    raws: list[RawDoc]
    ranges: list[dict[str, Any]]
    bad_files: list[dict[str, str]]


def read_unit(config: BuildConfig, desc: UnitDescriptor) -> UnitInput:
    """Read and decode a unit's ranges (the readers of :mod:`zhmask.steps.read`), hashing each
    range's input as it is read (bytes; for tables the records read, as canonical JSON).  A
    file that cannot be read raises BadInputFile, or with ``--skip-bad-files`` keeps the
    records read before the damage and is listed."""
    out = UnitInput([], [], [])
    fields = read_fields(config)
    for seg in desc.segments:
        digest = hashlib.sha256()
        f = InputFile(Path(seg.path), seg.name)
        try:
            for raw in read_file(f, fmt=seg.fmt, doc_sep=config.doc_sep, text_field=config.source_field or config.text_field,
                                 title_field=config.title_field, on_decode_error=config.on_decode_error,
                                 max_doc_bytes=max_doc_bytes(config), fields=fields, seg=seg, digest=digest):
                out.raws.append(raw)
        except BadInputFile as exc:
            if not config.skip_bad_files:
                raise
            out.bad_files.append({"file": seg.path, "error": str(exc)})
            continue
        out.ranges.append({"name": seg.name, "start": seg.start, "end": seg.end, "sha256": digest.hexdigest()})
    return out


# ---------------------------------------------------------------------------- driver side
class _Cutter:
    """Closes units at document starts as the planner finds them (:meth:`add`), across files."""

    def __init__(self, docs_per_unit: int, max_bytes: int) -> None:
        self.per_unit, self.max_bytes = docs_per_unit, max_bytes
        self.unit = 0
        self.segments: list[Segment] = []  # the current unit's finished segments
        self.docs = 0  # documents in the current unit
        self.size = 0  # input bytes of its finished segments
        self.file: tuple[str, str, str] = ("", "", "")
        self.start = self.line = self.piece = self.byte0 = 0  # the open segment's start

    def open(self, f: InputFile, fmt: str) -> None:
        self.file = (str(f.path), f.name, fmt)
        self.start, self.line, self.piece, self.byte0 = 0, 1 if fmt in ("text", "jsonl") else 0, 0, 0

    def add(self, pos: np.ndarray, line: np.ndarray, piece: np.ndarray, byte: np.ndarray) -> Iterator[UnitDescriptor]:
        """Documents start at ``pos`` (byte offset or record index; with their line number or
        record index, piece index, and input byte offset), in order: the units they close."""
        i, n = 0, len(pos)
        while i < n:
            if self.docs == 0:  # the first document of a unit never closes it
                self.docs, i = 1, i + 1
                continue
            by_count = i + self.per_unit - self.docs
            by_size = i + int(np.searchsorted(byte[i:], self.byte0 + self.max_bytes - self.size, "left"))
            k = min(by_count, by_size)
            if k >= n:
                self.docs += n - i
                return
            p = int(pos[k])
            yield self._close(p, int(piece[k]) > 0)
            self.start, self.line, self.piece, self.byte0 = p, int(line[k]), int(piece[k]), int(byte[k])
            i = k

    def end_file(self, end: int, end_byte: int) -> None:
        self.segments.append(Segment(*self.file, self.start, end, self.line, self.piece))
        self.size += end_byte - self.byte0

    def _close(self, end: int, open_end: bool) -> UnitDescriptor:
        desc = UnitDescriptor(self.unit, (*self.segments, Segment(*self.file, self.start, end, self.line, self.piece,
                                                                   open_end)))
        self.unit, self.segments, self.docs, self.size = self.unit + 1, [], 0, 0
        return desc

    def finish(self) -> Iterator[UnitDescriptor]:
        if self.segments:  # the last unit (unit 0 of an input without documents too)
            yield UnitDescriptor(self.unit, tuple(self.segments))


def plan_units(config: BuildConfig, files: list[InputFile], bad_files: list[dict[str, str]]) -> Iterator[UnitDescriptor]:
    """The build's units as descriptors, in order, planned lazily from the input alone (see the
    module docstring); files the planner cannot read are added to ``bad_files`` with
    ``--skip-bad-files``, else stop the build."""
    cut = _Cutter(config.docs_per_shard, UNIT_MAX_BYTES)
    fields = read_fields(config)
    for f in files:
        fmt = detect_format(f.path, config.format)
        cut.open(f, fmt)
        end = [0, 0]  # where the file's plan ends: position, input byte
        try:
            if fmt == "jsonl":
                try:
                    check_fields(config, f)
                except BadInputFile:
                    pass  # damaged data: the plan below stops at it, and reports it
            if fmt in ("text", "jsonl"):
                starts = _text_starts(f, fmt, config.doc_sep, max_doc_bytes(config), end)
            else:
                starts = _table_starts(f, fmt, fields, end)
            for chunk in starts:
                yield from cut.add(*chunk)
        except BadInputFile as exc:
            if not config.skip_bad_files:
                raise
            bad_files.append({"file": str(f.path), "error": str(exc)})
        cut.end_file(*end)
    yield from cut.finish()


def check_fields(config: BuildConfig, f: InputFile) -> None:
    """Stop the build, naming the field, when no record of JSONL file ``f`` has a field the build
    reads (the reader's own check: its first record settles it, at most 1,000 records are
    looked at).  Made here, before any range of the file is read, so that with many workers
    no unit of a failing file reaches a shard."""
    for _ in read_file(f, fmt="jsonl", doc_sep=config.doc_sep, text_field=config.source_field or config.text_field,
                       title_field=config.title_field, on_decode_error=config.on_decode_error,
                       max_doc_bytes=max_doc_bytes(config), fields=read_fields(config)):
        return


_Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _table_starts(f: InputFile, fmt: str, fields: dict[str, str], end: list[int]) -> Iterator[_Chunk]:
    """Every record starts a document; the named columns' bytes spread evenly over a chunk's records."""
    row = size = 0
    for rows, nbytes in table_chunks(f, fmt, fields):
        idx = np.arange(rows, dtype=np.int64)
        pos = row + idx
        yield pos, pos, np.zeros(rows, dtype=np.int64), size + (idx * nbytes) // max(rows, 1)
        row, size = row + rows, size + nbytes
        end[0], end[1] = row, size


def _text_starts(f: InputFile, fmt: str, doc_sep: str, max_bytes: int, end: list[int]) -> Iterator[_Chunk]:
    """Where documents start in a text or JSONL file, a block at a time; ``end`` follows the
    last complete line (so that a file that fails part-way is planned up to there)."""
    mode = "jsonl" if fmt == "jsonl" else doc_sep  # line, blank or jsonl
    where = [0]
    lines = 0  # lines complete so far
    line_end = -1  # offset of the last newline seen
    prev_blank = True  # the line before the next one was empty (a file starts a document)
    last_byte = -1  # the previous block's last byte
    offset = bom = 0
    block_iter = _blocks(f.path, where)  # blocks of READ_BLOCK: the numpy arrays stay small
    while True:
        block = next(block_iter, None)
        final = block is None
        if final:
            if offset == line_end + 1:  # the file ends with a newline (or is empty)
                return
            ends = np.array([offset], dtype=np.int64)  # a last line without a newline
            arr = np.zeros(0, dtype=np.uint8)
        else:
            arr = np.frombuffer(block, dtype=np.uint8)
            ends = np.flatnonzero(arr == 10).astype(np.int64) + offset
            if offset == 0 and block.startswith(b"\xef\xbb\xbf"):
                bom = 3
        if ends.size:
            starts = np.empty_like(ends)
            starts[0] = line_end + 1
            starts[1:] = ends[:-1] + 1
            length = ends - starts
            numbers = np.arange(lines + 1, lines + 1 + ends.size, dtype=np.int64)
            if mode == "line":
                keep = np.ones(ends.size, dtype=bool)
            else:
                one = np.flatnonzero(length == 1)  # a line of just "\r" is empty too
                at = starts[one] - offset  # -1: the previous block's last byte
                first = np.full(at.size, last_byte, dtype=np.int64)
                first[at >= 0] = arr[at[at >= 0]]
                cr = first == 13
                empty = length == 0
                empty[one[cr]] = True
                if mode == "jsonl":
                    keep = ~empty
                else:
                    before = np.empty_like(empty)
                    before[0] = prev_blank
                    before[1:] = empty[:-1]
                    keep = ~empty & before
                    prev_blank = bool(empty[-1])
            pos, num = starts[keep], numbers[keep]
            piece = np.zeros(pos.size, dtype=np.int64)
            if mode == "line" and int(length.max()) > max_bytes:
                pos, num, piece = _with_pieces(f, pos, num, length, max_bytes, final, bom)
            lines += ends.size
            line_end = int(ends[-1])
            where[0] = lines
            end[0] = end[1] = line_end + 1 if not final else offset
            if pos.size:
                yield pos, num, piece, pos
        if final:
            return
        offset += len(block)
        last_byte = int(arr[-1]) if arr.size else last_byte


def _with_pieces(f: InputFile, pos: np.ndarray, num: np.ndarray, length: np.ndarray, max_bytes: int,
                 last_open: bool, bom: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line starts with the starts of the pieces of each line longer than ``max_bytes``, found
    by reading those lines again through the reader's own cutter (:func:`iter_lines`).
    ``last_open``: the last line has no newline (the end of the file)."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    done = 0
    for k in np.flatnonzero(length > max_bytes).tolist():
        parts.append((pos[done:k], num[done:k], np.zeros(k - done, dtype=np.int64)))
        start = int(pos[k])
        stop = start + int(length[k]) + (0 if last_open and k == len(pos) - 1 else 1)
        at = start + (bom if start == 0 else 0)  # the reader drops a BOM at the start of the file
        cuts = []
        for ln in iter_lines(f.path, max_bytes, Segment(str(f.path), f.name, "text", start, stop, int(num[k]))):
            cuts.append(at)
            at += len(ln.data)
        parts.append((np.array(cuts, dtype=np.int64), np.full(len(cuts), int(num[k]), dtype=np.int64),
                      np.arange(len(cuts), dtype=np.int64)))
        done = k + 1
    parts.append((pos[done:], num[done:], np.zeros(len(pos) - done, dtype=np.int64)))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]
