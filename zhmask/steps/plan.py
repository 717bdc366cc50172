"""Work units as descriptors: the driver plans, each worker reads its own input.

A build's input is cut into work units by the input alone: a unit closes before the document
that would make it hold more than ``--docs-per-shard`` documents, or once it holds 1 MiB of
input (:data:`UNIT_MAX_BYTES`), in input order across files.  A unit is a
:class:`UnitDescriptor`: its index and the :class:`~zhmask.steps.read.Segment` (file and byte
or record range) of each file it covers, a few hundred bytes whatever the unit's size.  The
driver plans descriptors (:func:`plan_units`) without decoding a document; each worker reads
and decodes its own ranges with the readers of :mod:`zhmask.steps.read` (:func:`read_unit`),
hashing the bytes as it reads them.

Planning, per format:

- text and JSONL: the file's bytes in blocks (decompressed for .gz and .zst), newlines found
  with numpy; a document starts at every line (text ``--doc-sep line``), at every non-empty
  line (JSONL: a record), at a line after a blank one (``--doc-sep blank``: empty or of
  whitespace only).  A line longer than ``--max-doc-mb`` is read again through
  :func:`~zhmask.steps.read.iter_lines` to find its pieces, and a blank-line document's
  pieces follow the reader's rule on its line lengths (:class:`_BlankDocs`); pieces count as
  documents and may start a unit, as when the driver read the documents itself.  Not counted
  as the reader counts: a JSONL line of only spaces (no record) and the pieces of a JSONL
  record longer than ``--max-doc-mb`` (one document for the planner, which parses nothing);
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
from typing import Any, Iterator, NamedTuple

import numpy as np

from zhmask.config import BuildConfig
from zhmask.errors import BadInputFile
from zhmask.steps.read import (InputFile, RawDoc, Segment, detect_format, iter_lines, named_fields,
                               read_blocks, read_file, table_chunks)

# A unit is also closed once its records reach this many bytes (still cut by the input alone),
# so that long documents (or a 50 MB line cut into pieces) keep memory per unit bounded: a unit's
# stages hold all its rows and arrays at once.  Peak RSS of `--masking wwm` builds of iNews
# documents (3.4 kB each): 367 MiB with units of 1 MiB, 427 MiB with units of 1,000 documents
# (3.4 MB); of 17 kB documents: 378 MiB at 1 MiB, 895 MiB at the earlier 16 MiB; `--pipeline
# ernie2`, 5.8 MB of them: 786 MiB in one unit.  1,000 People's Daily paragraphs are 0.3 MB.
UNIT_MAX_BYTES = 1 << 20
TABLE_STEP = 1 << 16  # records of a table planned at once


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
class _Starts(NamedTuple):
    """Where documents start, in order: position (byte offset, or record index), line number (or
    record index), piece of that line, input byte offset, and, for a piece of a blank-line
    document, the document's first line and the piece's index (0, 0 at a document's start)."""
    pos: np.ndarray
    line: np.ndarray
    piece: np.ndarray
    byte: np.ndarray
    doc_line: np.ndarray
    doc_piece: np.ndarray


def _starts(pos: np.ndarray, line: np.ndarray, piece: np.ndarray | None = None, byte: np.ndarray | None = None,
            doc_line: np.ndarray | None = None, doc_piece: np.ndarray | None = None) -> _Starts:
    zero = np.zeros(len(pos), dtype=np.int64)
    return _Starts(pos, line, zero if piece is None else piece, pos if byte is None else byte,
                   zero if doc_line is None else doc_line, zero if doc_piece is None else doc_piece)


class _Cutter:
    """Closes units at document starts as the planner finds them (:meth:`add`), across files."""

    def __init__(self, docs_per_unit: int, max_bytes: int) -> None:
        self.per_unit, self.max_bytes = docs_per_unit, max_bytes
        self.unit = 0
        self.segments: list[Segment] = []  # the current unit's finished segments
        self.docs = 0  # documents in the current unit
        self.size = 0  # input bytes of its finished segments
        self.file: tuple[str, str, str] = ("", "", "")
        self.at = (0, 1, 0, 0, 0)  # the open segment's start: position, line, piece, doc_line, doc_piece
        self.byte0 = 0  # and its input byte offset

    def open(self, f: InputFile, fmt: str) -> None:
        self.file = (str(f.path), f.name, fmt)
        self.at, self.byte0 = (0, 1 if fmt in ("text", "jsonl") else 0, 0, 0, 0), 0

    def add(self, s: _Starts) -> Iterator[UnitDescriptor]:
        """Documents that start at ``s``: the units they close."""
        i, n = 0, len(s.pos)
        while i < n:
            if self.docs == 0:  # the first document of a unit never closes it
                self.docs, i = 1, i + 1
                continue
            by_count = i + self.per_unit - self.docs
            by_size = i + int(np.searchsorted(s.byte[i:], self.byte0 + self.max_bytes - self.size, "left"))
            k = min(by_count, by_size)
            if k >= n:
                self.docs += n - i
                return
            at = (int(s.pos[k]), int(s.line[k]), int(s.piece[k]), int(s.doc_line[k]), int(s.doc_piece[k]))
            yield self._close(at[0], at[2] > 0, at[3] > 0)
            self.at, self.byte0 = at, int(s.byte[k])
            i = k

    def _segment(self, end: int, open_end: bool = False, ends_in_doc: bool = False) -> Segment:
        start, line, piece, doc_line, doc_piece = self.at
        return Segment(*self.file, start, end, line, piece, open_end, doc_line, doc_piece, ends_in_doc)

    def end_file(self, end: int, end_byte: int) -> None:
        self.segments.append(self._segment(end))
        self.size += end_byte - self.byte0

    def _close(self, end: int, open_end: bool, ends_in_doc: bool) -> UnitDescriptor:
        desc = UnitDescriptor(self.unit, (*self.segments, self._segment(end, open_end, ends_in_doc)))
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
                yield from cut.add(chunk)
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


def _table_starts(f: InputFile, fmt: str, fields: dict[str, str], end: list[int]) -> Iterator[_Starts]:
    """Every record starts a document; the named columns' bytes spread evenly over a chunk's records."""
    row = size = 0
    for rows, nbytes in table_chunks(f, fmt, fields):
        for lo in range(0, rows, TABLE_STEP):  # a row group of millions of records: arrays of at most TABLE_STEP
            idx = np.arange(lo, min(rows, lo + TABLE_STEP), dtype=np.int64)
            yield _starts(row + idx, row + idx, byte=size + (idx * nbytes) // rows)
        row, size = row + rows, size + nbytes
        end[0], end[1] = row, size


_WS = np.zeros(256, dtype=bool)
_WS[list(b" \t\n\r\x0b\x0c")] = True  # what bytes.strip() strips: a line of these separates blank-line documents


class _Lines(NamedTuple):
    """The lines that end in one block: start offset, line number, length in the reader (no
    newline, no trailing \r, no BOM), whether the reader takes it for a blank line."""
    start: np.ndarray
    number: np.ndarray
    length: np.ndarray
    blank: np.ndarray


def _text_starts(f: InputFile, fmt: str, doc_sep: str, max_bytes: int, end: list[int]) -> Iterator[_Starts]:
    """Where documents start in a text or JSONL file, a block at a time; ``end`` follows the
    last complete line (so that a file that fails part-way is planned up to there)."""
    mode = "jsonl" if fmt == "jsonl" else doc_sep  # line, blank or jsonl
    where = [0]
    lines = 0  # lines complete so far
    line_end = -1  # offset of the last newline seen
    last_byte = -1  # the previous block's last byte
    ink = 0  # bytes other than whitespace of the unfinished line so far
    offset = bom = 0
    docs = _BlankDocs(f, max_bytes)
    blocks = read_blocks(f.path, where)  # blocks of READ_BLOCK: the numpy arrays stay small
    while True:
        block = next(blocks, None)
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
        if mode == "blank":  # non-whitespace bytes before each offset of the block
            inked = np.zeros(arr.size + 1, dtype=np.int64)
            if arr.size:
                marks = ~_WS[arr]
                if offset == 0 and bom:
                    marks[:3] = False
                np.cumsum(marks, out=inked[1:])
        if ends.size:
            starts = np.empty_like(ends)
            starts[0] = line_end + 1
            starts[1:] = ends[:-1] + 1
            length = ends - starts
            numbers = np.arange(lines + 1, lines + 1 + ends.size, dtype=np.int64)
            if mode != "line":  # the length the reader sees: without a trailing \r, or a BOM
                before = ends - 1 - offset  # the byte before each newline
                last = np.full(ends.size, last_byte, dtype=np.int64)
                last[before >= 0] = arr[before[before >= 0]]
                length -= ((length > 0) & (last == 13)) + np.where(starts == 0, bom, 0)
            if mode == "blank":
                line_ink = inked[ends - offset] - inked[np.maximum(starts - offset, 0)]
                line_ink[0] += ink if starts[0] < offset else 0
                blank = (line_ink == 0) & (length <= max_bytes)
                got = docs.starts(_Lines(starts, numbers, length, blank), ends + 1 - final, bom)
            elif mode == "jsonl":  # a record a line that is not empty
                keep = length > 0
                got = _starts(starts[keep], numbers[keep])
            else:  # a document a line, or a piece of one (a line longer than max_bytes with its \r and
                got = _starts(starts, numbers)  # BOM may still be whole: its reading again says so)
                if int(length.max()) > max_bytes:
                    got = _with_pieces(f, starts, numbers, length, ends + 1 - final, max_bytes, bom)
            lines += ends.size
            line_end = int(ends[-1])
            where[0] = lines
            end[0] = end[1] = line_end + 1 if not final else offset
            if got.pos.size:
                yield got
        if final:
            return
        if mode == "blank":
            ink = (0 if ends.size else ink) + int(inked[-1] - inked[max(line_end + 1 - offset, 0)])
        offset += len(block)
        last_byte = int(arr[-1]) if arr.size else last_byte


def _line_pieces(f: InputFile, start: int, stop: int, number: int, max_bytes: int,
                 bom: int) -> tuple[list[int], list[int]]:
    """(offsets, lengths) of the pieces of the line at ``[start, stop)`` (its newline included
    when it has one), read again through the reader's own cutter (:func:`iter_lines`)."""
    at = start + (bom if start == 0 else 0)  # the reader drops a BOM at the start of the file
    cuts, sizes = [], []
    for ln in iter_lines(f.path, max_bytes, Segment(str(f.path), f.name, "text", start, stop, number)):
        cuts.append(at)
        sizes.append(len(ln.data))
        at += len(ln.data)
    return cuts, sizes


def _with_pieces(f: InputFile, starts: np.ndarray, numbers: np.ndarray, length: np.ndarray, stops: np.ndarray,
                 max_bytes: int, bom: int) -> _Starts:
    """A document a line (``[starts, stops)``), and one a piece of each line longer than ``max_bytes``."""
    pos, num, piece = [], [], []
    done = 0
    for k in np.flatnonzero(length > max_bytes).tolist():
        pos.append(starts[done:k])
        num.append(numbers[done:k])
        piece.append(np.zeros(k - done, dtype=np.int64))
        cuts, _ = _line_pieces(f, int(starts[k]), int(stops[k]), int(numbers[k]), max_bytes, bom)
        pos.append(np.array(cuts, dtype=np.int64))
        num.append(np.full(len(cuts), int(numbers[k]), dtype=np.int64))
        piece.append(np.arange(len(cuts), dtype=np.int64))
        done = k + 1
    pos.append(starts[done:])
    num.append(numbers[done:])
    piece.append(np.zeros(len(starts) - done, dtype=np.int64))
    return _starts(np.concatenate(pos), np.concatenate(num), np.concatenate(piece))


class _BlankDocs:
    """Where blank-line documents (``--doc-sep blank``) and their pieces start, a block of lines
    at a time.  A document starts at a line after a blank one (empty or of whitespace only, as
    the reader sees it); the reader cuts a document into pieces when the next line (or piece of
    an over-long line) would take it past ``max_bytes``: :meth:`starts` finds the same cuts
    (numpy over the lines, a step per piece), so a unit can end inside a long document."""

    def __init__(self, f: InputFile, max_bytes: int) -> None:
        self.f, self.max_bytes = f, max_bytes
        self.prev_blank = True  # the line before the next one was blank (a file starts a document)
        self.size = 0  # bytes of the open document's current piece (each line counts its length + 1)
        self.piece = 0  # that piece's index
        self.line = 0  # the open document's first line

    def starts(self, ls: _Lines, stops: np.ndarray, bom: int) -> _Starts:
        """The document and piece starts among lines ``ls`` (line ``i`` at ``[ls.start[i], stops[i])``)."""
        before = np.empty_like(ls.blank)
        before[0] = self.prev_blank
        before[1:] = ls.blank[:-1]
        self.prev_blank = bool(ls.blank[-1])
        first = ~ls.blank & before
        # the reader's items: each line that is not blank, or its pieces when longer than max_bytes
        keep = np.flatnonzero(~ls.blank)
        pos, num, piece, size, head = (ls.start[keep], ls.number[keep], np.zeros(keep.size, dtype=np.int64),
                                       ls.length[keep], first[keep])
        if keep.size and int(size.max()) > self.max_bytes:
            parts = []
            done = 0
            for k in np.flatnonzero(size > self.max_bytes).tolist():
                parts.append((pos[done:k], num[done:k], piece[done:k], size[done:k], head[done:k]))
                i = int(keep[k])
                cuts, sizes = _line_pieces(self.f, int(ls.start[i]), int(stops[i]), int(ls.number[i]),
                                           self.max_bytes, bom)
                n = len(cuts)
                parts.append((np.array(cuts, dtype=np.int64), np.full(n, int(ls.number[i]), dtype=np.int64),
                              np.arange(n, dtype=np.int64), np.array(sizes, dtype=np.int64),
                              np.arange(n) == 0 if bool(head[k]) else np.zeros(n, dtype=bool)))
                done = k + 1
            parts.append((pos[done:], num[done:], piece[done:], size[done:], head[done:]))
            pos, num, piece, size, head = (np.concatenate([p[c] for p in parts]) for c in range(5))
        if not pos.size:
            return _starts(pos, num)
        heads = np.flatnonzero(head)
        total = np.cumsum(size + 1)  # bytes of the items up to each, as the reader counts them
        base = np.empty(heads.size + 1, dtype=np.int64)
        base[0] = -self.size  # items before the first head continue the open document
        base[1:] = np.where(heads > 0, total[heads - 1], 0)
        doc = np.cumsum(head)
        over = np.unique(doc[total - base[doc] > self.max_bytes])  # documents the reader cuts into pieces
        cut_at, cut_line, cut_piece = [], [], []
        ends_open = (self.size, self.piece, self.line)
        for d in over.tolist():
            a = int(heads[d - 1]) if d else 0
            b = int(heads[d]) if d < heads.size else pos.size
            acc, k, line = (self.size, self.piece, self.line) if d == 0 else (0, 0, int(num[a]))
            i = a
            while True:  # the reader's rule: a new piece before the item that takes it past max_bytes
                upto = int(total[i - 1]) if i else 0
                j = i + int(np.searchsorted(total[i:b], upto + self.max_bytes - acc, "right"))
                if acc == 0:
                    j = max(j, i + 1)  # never an empty piece
                if j >= b:
                    acc += int(total[b - 1]) - upto
                    break
                k, acc, i = k + 1, 0, j
                cut_at.append(j)
                cut_line.append(line)
                cut_piece.append(k)
            if b == pos.size:
                ends_open = (acc, k, line)
        last = int(doc[-1])
        if last not in over.tolist():  # the last document's state, for the next block
            ends_open = (int(total[-1] - base[last]), self.piece if last == 0 else 0,
                         self.line if last == 0 else int(num[heads[last - 1]]))
        self.size, self.piece, self.line = ends_open
        at = np.array(cut_at, dtype=np.int64)
        order = np.concatenate([heads, at])
        doc_line = np.concatenate([np.zeros(heads.size, dtype=np.int64), np.array(cut_line, dtype=np.int64)])
        doc_piece = np.concatenate([np.zeros(heads.size, dtype=np.int64), np.array(cut_piece, dtype=np.int64)])
        rank = np.argsort(order, kind="stable")
        idx = order[rank]
        return _starts(pos[idx], num[idx], piece[idx], None, doc_line[rank], doc_piece[rank])
