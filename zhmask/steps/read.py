"""Readers: plain text, JSONL, Parquet and Arrow, optionally gzip or zstd compressed.

Each yields :class:`RawDoc` records in input order with a stable id
(``<file>:<line>`` for line-based formats, ``<file>:<record index>`` for tables), where
``<file>`` is the path relative to the directory or glob root the user named (the file name
for a file argument).  Records that cannot become documents (bad JSON, a missing text field,
undecodable bytes with ``--on-decode-error skip``) are yielded with ``reject`` set so that the
manifest accounts for them; a field the build names that no record of a file has stops the
build in one line (:func:`_check_fields`, tables: their schema).  Under directories and globs,
Hugging Face dataset folders are read as their records, not their metadata (:func:`list_inputs`).

Lines are split on ``\\n`` only (``\\r\\n`` is accepted): U+2028, U+2029, U+0085, vertical tab and
form feed inside a line never start a new document.

Files are read in blocks of 1 MiB, never a line at a time, so memory stays bounded whatever
the input: a line (or a record's text) longer than ``max_doc_bytes`` (``--max-doc-mb``) is cut
into pieces of at most that size, at the last sentence end inside the limit (a hard cut at a
UTF-8 character boundary when there is none), and each piece becomes a document with the id
``<file>:<line>#<k>`` (counted as ``long_line_piece`` / ``long_line_hard_cut`` events).

Every reader also reads a range of its file (a :class:`Segment`: bytes of text and JSONL,
records of tables), which is how a build's workers read their own units
(:mod:`zhmask.steps.plan`); a range's documents are exactly those the whole file gives there,
and its input is added to a hashlib ``digest`` as it is read.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, NamedTuple

from zhmask.errors import BadInputFile, ZhmaskError

TEXT_SUFFIXES = {".txt", ".text", ".tsv", ".md", ""}
READ_BLOCK = 1 << 20
DEFAULT_MAX_DOC_BYTES = 1_000_000
# A JSONL record is parsed whole; one longer than this is rejected (record_too_large) unread.
MAX_RECORD_BYTES = 64 << 20
JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}


@dataclass
class RawDoc:
    id: str
    text: str
    title: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reject: str | None = None  # reason when the record cannot become a document
    where: str | None = None  # file:line for reports
    nbytes: int = 0  # size of the record in the input, for MB/s
    events: tuple[str, ...] = ()  # reader events (long_line_piece, invalid_utf8_replaced, ...), counted


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # stable name used in document ids


@dataclass(frozen=True)
class Segment:
    """A range of one input file that a worker reads (see :mod:`zhmask.steps.plan`).

    Text and JSONL: bytes ``[start, end)`` (of the decompressed stream for .gz/.zst), starting
    at line ``line`` (1-based) or, with ``piece`` > 0, at that piece of an over-long line, and
    ending at a line end or, with ``open_end``, at a piece cut inside a line.  Parquet and
    Arrow: records ``[start, end)`` (``line`` is ``start``).  Blank-line documents
    (``--doc-sep blank``): ``doc_line`` > 0 when the range starts inside the document that
    starts at that line, at its piece ``doc_piece``; ``ends_in_doc`` when it ends inside one."""
    path: str
    name: str
    fmt: str  # text, jsonl, parquet or arrow (never auto)
    start: int
    end: int
    line: int = 1
    piece: int = 0
    open_end: bool = False
    doc_line: int = 0
    doc_piece: int = 0
    ends_in_doc: bool = False


def expand_inputs(inputs: list[str], fmt: str = "auto") -> list[InputFile]:
    """The files :func:`list_inputs` reads (without the list of files it skips)."""
    return list_inputs(inputs, fmt)[0]


def list_inputs(inputs: list[str], fmt: str = "auto") -> tuple[list[InputFile], list[dict[str, str]]]:
    """(files to read, files skipped) for the named files, directories (recursively) and globs.

    Files named are always read.  Under a directory or glob, the folders of Hugging Face
    ``datasets`` are read as records, not as their metadata (see :func:`_dataset_skip`): the
    files skipped are returned as ``{"file", "reason"}`` entries, in path order, for the
    manifest.
    """
    out: list[InputFile] = []
    skipped: list[dict[str, str]] = []
    for arg in inputs:
        p = Path(arg)
        if any(ch in arg for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True) if Path(m).is_file())
            if not matches:
                raise ZhmaskError(f"no input files match {arg}")
            base = _glob_root(arg)
            out += _keep(arg, [InputFile(m, _rel(m, base)) for m in matches], skipped, tables_only=False)
        elif p.is_dir():
            files = _walk(p)
            if not files:
                raise ZhmaskError(f"input directory {arg} holds no files")
            kept = _keep(arg, [InputFile(f, f.relative_to(p).as_posix()) for f in files], skipped,
                         tables_only=fmt == "auto")
            if not kept:
                raise ZhmaskError(f"input directory {arg} holds no files to read "
                                  f"({len(files)} skipped: {skipped[-1]['reason']})")
            out += kept
        elif p.exists():
            out.append(InputFile(p, p.name))
        else:
            raise ZhmaskError(f"input not found: {arg}")
    seen: set[str] = set()
    for f in out:
        if f.name in seen:  # two arguments with same file name: fall back to the path as given
            f_idx = out.index(f)
            out[f_idx] = InputFile(f.path, f.path.as_posix())
        seen.add(f.name)
    return out, skipped


# Hugging Face ``datasets``: ``save_to_disk`` writes data-NNNNN-of-NNNNN.arrow (Arrow IPC streams)
# with these beside them; ``map`` on a loaded dataset adds cache-*.arrow files.
DATASET_METADATA = ("dataset_info.json", "state.json", "dataset_dict.json")
TABLE_FORMATS = ("parquet", "arrow")


def _saved_dataset(folder: Path, memo: dict[Path, set[str] | None]) -> set[str] | None:
    """The data files ``state.json`` lists when ``folder`` is a ``Dataset.save_to_disk`` folder, else None."""
    if folder in memo:
        return memo[folder]
    state = folder / "state.json"
    listed = None
    if state.is_file() and (folder / "dataset_info.json").is_file():
        try:
            listed = {str(d["filename"]) for d in json.loads(state.read_text(encoding="utf-8"))["_data_files"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ZhmaskError(f"{state}: not a readable datasets state.json ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())})") from None
    memo[folder] = listed
    return listed


def _dataset_skip(path: Path, memo: dict[Path, set[str] | None]) -> str | None:
    """Why a file under a directory or glob is not read as records (None: it is read).

    In a ``save_to_disk`` folder (``state.json`` and ``dataset_info.json``) only the data files
    ``state.json`` lists are records; beside a DatasetDict's split folders ``dataset_dict.json``
    is metadata."""
    listed = _saved_dataset(path.parent, memo)
    if listed is not None:
        if path.name in listed:
            return None
        if path.name in DATASET_METADATA:
            return "Hugging Face dataset metadata"
        return "not a data file listed in the dataset's state.json" + (
            " (a datasets cache file)" if path.name.startswith("cache-") else "")
    if path.name == "dataset_dict.json":
        return "Hugging Face dataset metadata"
    return None


# What a dataset repository (a Hugging Face hub download) holds beside its Parquet/Arrow files.
DATASET_REPO_FILES = ("README.md", "dataset_infos.json") + DATASET_METADATA


def _keep(arg: str, files: list[InputFile], skipped: list[dict[str, str]], tables_only: bool) -> list[InputFile]:
    """The files of one directory or glob argument to read; the others are added to ``skipped``.

    With ``tables_only`` (a directory read with ``--format auto``), a tree that holds Parquet or
    Arrow files is taken for a dataset (a hub download): its card, metadata JSON and loading
    scripts (:data:`DATASET_REPO_FILES`, ``*.py``) are skipped; its other files are read."""
    memo: dict[Path, set[str] | None] = {}
    why = {f.path: _dataset_skip(f.path, memo) for f in files}
    if tables_only and any(why[f.path] is None and detect_format(f.path, "auto") in TABLE_FORMATS for f in files):
        for f in files:
            if why[f.path] is None and (f.path.name in DATASET_REPO_FILES or f.path.suffix == ".py"):
                why[f.path] = "dataset card, metadata or script beside Parquet/Arrow files"
    skipped += [{"file": str(f.path), "reason": why[f.path]} for f in files if why[f.path] is not None]
    return [f for f in files if why[f.path] is None]


def _walk(root: Path) -> list[Path]:
    """Every entry under ``root`` that is not a directory, sorted, hidden names skipped.

    Dangling links, FIFOs and sockets are listed, and so is a subdirectory that cannot be
    listed, so that :func:`check_input` reports them instead of silently skipping (or blocking
    on) them.
    """
    found: list[Path] = []

    def unlistable(exc: OSError) -> None:
        if exc.filename and Path(exc.filename) != root:
            found.append(Path(exc.filename))
        elif exc.filename:
            raise ZhmaskError(f"cannot list input directory {root}: {exc.strerror or exc}")

    for folder, dirs, names in os.walk(root, onerror=unlistable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / n for n in names if not n.startswith(".")]
    return sorted(found)


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    root: list[str] = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def _rel(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst", ".zstd"):
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in JSONL_SUFFIXES:
        return "jsonl"
    if last == ".parquet":
        return "parquet"
    if last in (".arrow", ".feather", ".ipc"):
        return "arrow"
    return "text"


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading bytes, transparently decompressing .gz and .zst."""
    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            return gzip.open(path, "rb")
        if name.endswith((".zst", ".zstd")):
            import zstandard

            fh = open(path, "rb")
            return zstandard.ZstdDecompressor().stream_reader(fh, closefd=True, read_across_frames=True)
        return open(path, "rb")
    except OSError as exc:
        raise BadInputFile(f"cannot open {path}: {exc.strerror or exc}") from None


# Sentence ends a long line may be cut after (UTF-8), and closing marks that stay with them.
_SENT_ENDS = tuple(ch.encode("utf-8") for ch in "。！？；!?;…")
_CLOSERS = tuple(ch.encode("utf-8") for ch in "”’」』）)》】\"'")


def cut_point(buf: bytes | bytearray, limit: int) -> tuple[int, bool]:
    """Where to cut ``buf`` (longer than ``limit``): (offset <= limit, True when no sentence end).

    The cut falls after the last sentence end (with its closing quotes or brackets) inside the
    limit; without one, at the last UTF-8 character start at or before the limit.
    """
    best = -1
    for m in _SENT_ENDS:
        i = buf.rfind(m, 0, limit)
        if i >= 0 and i + len(m) > best:
            best = i + len(m)
    if best > 0:
        moved = True
        while moved:
            moved = False
            for c in _CLOSERS:
                if buf.startswith(c, best) and best + len(c) <= limit:
                    best += len(c)
                    moved = True
        return best, False
    cut = limit
    while cut > 0 and (buf[cut] & 0xC0) == 0x80:  # never inside a UTF-8 sequence
        cut -= 1
    return (cut if cut > 0 else limit), True


def split_bytes(data: bytes | bytearray, limit: int) -> Iterator[tuple[bytes, bool]]:
    """Pieces of at most ``limit`` bytes, cut by :func:`cut_point`; (piece, hard cut)."""
    start = 0
    n = len(data)
    while n - start > limit:
        cut, hard = cut_point(memoryview(data)[start:start + limit + 1].tobytes(), limit)
        yield bytes(data[start:start + cut]), hard
        start += cut
    yield bytes(data[start:]), False


def is_compressed(path: Path) -> bool:
    """Whether :func:`open_binary` decompresses ``path`` (then a byte offset cannot be seeked to)."""
    return path.name.lower().endswith((".gz", ".zst", ".zstd"))


# Per process: the decompressed stream a range of a .gz/.zst input was last read from, left at
# the range's end, so that the next range of the same file at or after it goes on from there
# instead of decompressing the file from its start again (a worker given the file's units in
# order decompresses it once).  Keyed by path, size and modification time.
_LEFT_OPEN: dict[str, Any] = {}


def _stream_at(path: Path, start: int) -> tuple[Any, int]:
    """(an open stream of ``path``, its position): the one left by the last range when it is at
    or before ``start`` and the file has not changed, else a new one at 0."""
    left = _LEFT_OPEN.pop("stream", None)
    if left is not None:
        key, fh, pos = left
        if key == _stream_key(path) and pos <= start:
            return fh, pos
        _close(fh)
    return open_binary(path), 0


def _stream_key(path: Path) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _close(fh: Any) -> None:
    try:
        fh.close()
    except Exception:
        pass


def read_blocks(path: Path, where: list[int], start: int = 0, end: int | None = None,
                digest: Any = None) -> Iterator[bytes]:
    """The file's bytes ``[start, end)`` in blocks (of the decompressed stream for .gz and .zst,
    which cannot be seeked: decompressed and dropped up to ``start``, from where the previous
    range of the file in this process ended when it can, see :data:`_LEFT_OPEN`); each block is
    added to ``digest`` (a hashlib object) as read.  Read errors become BadInputFile naming the
    file, and so does a file that ends before ``end`` (it changed since the build planned its
    units)."""
    compressed = is_compressed(path)
    fh, pos = _stream_at(path, start) if compressed and end is not None else (open_binary(path), 0)
    left = None if end is None else end - start
    keep = False

    def read(n: int) -> bytes:
        try:
            return fh.read(n)
        except Exception as exc:  # OSError, EOFError, zlib.error, zstandard.ZstdError ...
            what = "corrupt or truncated compressed data" if compressed else "read error"
            raise BadInputFile(f"{path}: {what} after line {where[0]} ({type(exc).__name__}: {exc})") from None

    try:
        if start and not compressed:
            fh.seek(start)
        else:
            skip = start - pos
            while skip > 0:
                dropped = read(min(READ_BLOCK, skip))
                if not dropped:
                    break
                skip -= len(dropped)
        while left is None or left > 0:
            block = read(READ_BLOCK if left is None else min(READ_BLOCK, left))
            if not block:
                if left:
                    raise BadInputFile(f"{path}: ends before byte {end:,} (changed since the build started?)")
                return
            if left is not None:
                left -= len(block)
            if digest is not None:
                digest.update(block)
            yield block
        keep = compressed and end is not None  # the range was read: the next may go on from its end
    finally:
        if keep:
            _LEFT_OPEN["stream"] = (_stream_key(path), fh, end)
        else:
            _close(fh)


class Line(NamedTuple):
    n: int  # 1-based line number
    piece: int | None  # None for a whole line; 0, 1, ... for the pieces of an over-long line
    data: bytes  # without the newline (and without a trailing \r on the last piece)
    hard: bool  # this piece was cut at a character boundary, not at a sentence end
    last: bool  # the line's last piece (always True for a whole line)


def iter_lines(path: Path, max_bytes: int = DEFAULT_MAX_DOC_BYTES, seg: Segment | None = None,
               digest: Any = None) -> Iterator[Line]:
    """The lines of ``path`` (of its range ``seg``, default the whole file), read in blocks, as
    :class:`Line` tuples.

    Lines are split on ``b"\n"`` only; a trailing ``\r`` and a UTF-8 BOM at the start of the
    file are removed.  A line longer than ``max_bytes`` comes as pieces 0, 1, ... of at most
    ``max_bytes`` (see :func:`cut_point`).  At most ``max_bytes`` plus one block is held in
    memory, whatever the length of a line.

    A range starts at the start of line ``seg.line`` or, with ``seg.piece`` > 0, at that piece
    of it, and ends at a line end or, with ``seg.open_end``, at a piece cut inside its last
    line: either way its lines and pieces are those of the whole file's (a cut depends only on
    the bytes from the previous cut on).  The range's bytes are added to ``digest``.
    """
    start, end = (seg.start, seg.end) if seg is not None else (0, None)
    n = seg.line if seg is not None else 1  # the current (unfinished) line
    where = [n - 1]
    carry = bytearray()
    piece = seg.piece if seg is not None else 0  # pieces of the current line already emitted

    def emit(line: bytes | bytearray, final: bool, at_cut: bool = False) -> Iterator[Line]:
        """The pieces of ``line``: all of them when ``final`` (the line ends), or when
        ``at_cut`` (the range ends at a cut inside the line: the rest is its last piece);
        else (more of the line to come) those that cannot change, keeping one byte in
        reserve, which may be a \r that the line's end drops."""
        nonlocal piece
        if final and line.endswith(b"\r"):
            line = line[:-1]
        if piece == 0 and final and len(line) <= max_bytes:
            yield Line(n, None, bytes(line), False, True)
            return
        start = 0
        while len(line) - start > max_bytes + (not (final or at_cut)):
            cut, hard = cut_point(bytes(line[start:start + max_bytes + 1]), max_bytes)
            yield Line(n, piece, bytes(line[start:start + cut]), hard, False)
            piece += 1
            start += cut
        if final:
            yield Line(n, piece, bytes(line[start:]), False, True)
        elif at_cut:
            if len(line) > start:  # hard: no sentence end in it (else the cut would be after one)
                rest = bytes(line[start:])
                yield Line(n, piece, rest, not any(m in rest for m in _SENT_ENDS), False)
        elif start:
            del line[:start]  # type: ignore[arg-type]

    def lines_of(block: bytes) -> Iterator[Line]:
        nonlocal carry, n, piece
        start = 0
        while True:
            nl = block.find(b"\n", start)
            if nl < 0:
                carry += block[start:]
                if len(carry) > max_bytes:
                    yield from emit(carry, final=False)
                return
            if carry:
                carry += block[start:nl]
                yield from emit(carry, final=True)
                carry = bytearray()
            else:
                yield from emit(block[start:nl], final=True)
            where[0] = n
            n += 1
            piece = 0
            start = nl + 1

    head = b""
    first = start == 0  # a BOM only at the start of the file
    for block in read_blocks(path, where, start, end, digest):
        if first:  # the BOM may straddle tiny first blocks of a compressed stream
            head += block
            if len(head) < 3:
                continue
            block = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
            head, first = b"", False
        yield from lines_of(block)
    if first and head:  # a file of fewer than three bytes
        yield from lines_of(head)
    if seg is not None and seg.open_end:  # the range ends at a cut inside its last line
        yield from emit(carry, final=False, at_cut=True)
        return
    if carry or piece:
        yield from emit(carry, final=True)


def decode(line: bytes, mode: str, where: str) -> tuple[str | None, str | None]:
    """Decode UTF-8 per ``--on-decode-error``; returns (text, reject reason).

    ``replace`` puts U+FFFD for each bad sequence (the caller counts ``invalid_utf8_replaced``),
    ``skip`` rejects the document as ``invalid_utf8``, ``fail`` stops the build naming file,
    line and byte offset.
    """
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        if mode == "replace":
            return line.decode("utf-8", errors="replace"), None
        if mode == "skip":
            return None, "invalid_utf8"
        raise DecodeFailure(f"{where}: invalid UTF-8 at byte {exc.start} (use --on-decode-error replace|skip)") from None


class DecodeFailure(ZhmaskError):
    """Invalid UTF-8 with ``--on-decode-error fail``: ends the build even with --skip-bad-files."""


def _decoded_doc(doc_id: str, where: str, data: bytes, mode: str, events: tuple[str, ...]) -> RawDoc:
    text, reject = decode(data, mode, where)
    if text is not None and reject is None and "\ufffd" in text and mode == "replace":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            events = events + ("invalid_utf8_replaced",)
    return RawDoc(doc_id, text or "", reject=reject, where=where, nbytes=len(data) + 1, events=events)


def _piece_events(piece: int | None, hard: bool) -> tuple[str, ...]:
    if piece is None:
        return ()
    return ("long_line_piece", "long_line_hard_cut") if hard else ("long_line_piece",)


def read_text(f: InputFile, doc_sep: str, on_decode_error: str,
              max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES, seg: Segment | None = None,
              digest: Any = None) -> Iterator[RawDoc]:
    """The documents of a text file (of its range ``seg``: see :func:`iter_lines`).  With
    blank-line documents a range starts at a document's first line or, with ``seg.doc_line``,
    at piece ``seg.doc_piece`` of the document that starts at that line, and ends after a
    document or, with ``seg.ends_in_doc``, after one of a document's pieces."""
    if doc_sep == "line":
        for n, piece, line, hard, _ in iter_lines(f.path, max_doc_bytes, seg, digest):
            where = f"{f.path}:{n}"
            doc_id = f"{f.name}:{n}" if piece is None else f"{f.name}:{n}#{piece}"
            yield _decoded_doc(doc_id, where, line, on_decode_error, _piece_events(piece, hard))
        return
    # blank-line separated documents, one sentence or paragraph a line; a document that grows
    # past max_doc_bytes is emitted in pieces <file>:<first line>#k
    buf: list[bytes] = []
    size = 0
    start = seg.doc_line if seg is not None else 0
    k = seg.doc_piece if seg is not None else 0
    for n, piece, line, _, _ in iter_lines(f.path, max_doc_bytes, seg, digest):
        if piece is None and not line.strip():
            if buf:
                yield _blank_doc(f, start, buf, on_decode_error, k if k else None)
            buf, size, k = [], 0, 0
            continue
        if not buf and k == 0:
            start = n
        if buf and size + len(line) + 1 > max_doc_bytes:
            yield _blank_doc(f, start, buf, on_decode_error, k)
            buf, size, k = [], 0, k + 1
        buf.append(line)
        size += len(line) + 1
    if buf:
        yield _blank_doc(f, start, buf, on_decode_error, k if k or (seg is not None and seg.ends_in_doc) else None)


def _blank_doc(f: InputFile, start: int, buf: list[bytes], mode: str, piece: int | None) -> RawDoc:
    doc_id = f"{f.name}:{start}" if piece is None else f"{f.name}:{start}#{piece}"
    doc = _decoded_doc(doc_id, f"{f.path}:{start}", b"\n".join(buf), mode, _piece_events(piece, False))
    return doc


def _record_doc(rec: Any, doc_id: str, where: str, text_field: str, title_field: str | None) -> RawDoc:
    if not isinstance(rec, dict):
        return RawDoc(doc_id, "", reject="not_an_object", where=where)
    text = rec.get(text_field)
    if text is None:
        return RawDoc(doc_id, "", reject="missing_text_field", where=where)
    if not isinstance(text, str):
        return RawDoc(doc_id, "", reject="text_not_a_string", where=where)
    title = rec.get(title_field) if title_field else None
    if title is not None and not isinstance(title, str):
        title = str(title)
    meta = {k: v for k, v in rec.items() if k not in (text_field, title_field) and isinstance(v, (str, int, float, bool))}
    return RawDoc(doc_id, text, title=title or None, meta=meta, where=where)


def read_jsonl(f: InputFile, text_field: str, title_field: str | None, on_decode_error: str,
               max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES, fields: Mapping[str, str] | None = None,
               seg: Segment | None = None, digest: Any = None) -> Iterator[RawDoc]:
    """The records of a JSONL file, or of its range ``seg`` (which starts at a line start).  A
    whole file is checked for the named fields (:func:`_check_fields`); a range is not: the
    driver checks each file before any of its ranges is read (:mod:`zhmask.steps.plan`)."""
    records = _jsonl_records(f, text_field, title_field, on_decode_error, max_doc_bytes, seg, digest)
    if seg is not None:
        checked: Iterator[RawDoc] = (doc for doc, _ in records)
    else:
        checked = _check_fields(f, records, fields if fields is not None else named_fields(text_field, title_field))
    for doc in checked:
        yield from _split_doc(doc, max_doc_bytes)


def _jsonl_records(f: InputFile, text_field: str, title_field: str | None, on_decode_error: str,
                   max_doc_bytes: int, seg: Segment | None = None,
                   digest: Any = None) -> Iterator[tuple[RawDoc, list[str] | None]]:
    """(record, its keys -- None when the line is not a JSON object) for each record of the file
    (of its range ``seg``)."""
    parts: list[bytes] = []
    size = 0
    too_large = False
    for n, piece, chunk, _, last in iter_lines(f.path, max_doc_bytes, seg, digest):
        if piece is not None:  # a record longer than max_doc_bytes: gather it up to MAX_RECORD_BYTES
            if piece == 0:
                parts, size, too_large = [], 0, False
            size += len(chunk)
            if size > MAX_RECORD_BYTES:
                too_large, parts = True, []
            elif not too_large:
                parts.append(chunk)
            if not last:
                continue
        where = f"{f.path}:{n}"
        doc_id = f"{f.name}:{n}"
        if piece is not None:
            if too_large:
                yield RawDoc(doc_id, "", reject="record_too_large", where=where, nbytes=size + 1), None
                parts = []
                continue
            line, parts = b"".join(parts), []
        else:
            line = chunk
        if not line.strip():
            continue  # blank lines between records are not records
        text, reject = decode(line, on_decode_error, where)
        if reject:
            yield RawDoc(doc_id, "", reject=reject, where=where, nbytes=len(line) + 1), None
            continue
        try:
            rec = json.loads(text, strict=False)  # type: ignore[arg-type]  # raw control chars allowed in strings
        except (json.JSONDecodeError, RecursionError):
            yield RawDoc(doc_id, "", reject="bad_json", where=where, nbytes=len(line) + 1), None
            continue
        doc = _record_doc(rec, doc_id, where, text_field, title_field)
        doc.nbytes = len(line) + 1
        if "\ufffd" in text and on_decode_error == "replace" and _had_bad_utf8(line):
            doc.events = doc.events + ("invalid_utf8_replaced",)
        if "\\u" in text and not doc.reject:
            doc = _lone_surrogates(doc, on_decode_error)
        yield doc, (list(rec) if isinstance(rec, dict) else None)


# A file in which none of the first FIELD_LOOKAHEAD records (or FIELD_LOOKAHEAD_BYTES of their
# text) has a field the build names fails; a field missing from some records only is counted
# per record (missing_text_field) as before.
FIELD_LOOKAHEAD = 1000
FIELD_LOOKAHEAD_BYTES = 16 << 20


def named_fields(text_field: str, title_field: str | None = None, target_field: str | None = None,
                 text_option: str = "--text-field") -> dict[str, str]:
    """{field: the option that named it} for the fields a build reads, for error messages."""
    named = {text_field: text_option}
    for name, option in ((title_field, "--title-field"), (target_field, "--target-field")):
        if name:
            named.setdefault(name, option)
    return named


def _no_field(f: InputFile, name: str, option: str, present: list[str], where: str) -> ZhmaskError:
    shown = ", ".join(present[:30]) + (f", ... ({len(present)} in all)" if len(present) > 30 else "")
    return ZhmaskError(f"{f.path}: no field {name!r} ({option}) in {where} (fields: {shown or 'none'})")


def _check_fields(f: InputFile, records: Iterator[tuple[RawDoc, list[str] | None]],
                  fields: Mapping[str, str]) -> Iterator[RawDoc]:
    """The records, once every named field has been seen in a record of the file.

    Records are held back (at most FIELD_LOOKAHEAD of them) until each field of ``fields`` has
    appeared in one; when the file ends, or the look-ahead is spent, with a field never seen,
    the build stops with one line naming the field and the fields the records have.  A file of
    fields the records all have costs nothing: the first record settles it."""
    missing = [name for name in fields if name]
    held: list[RawDoc] = []
    held_bytes = 0
    objects = 0
    present: dict[str, None] = {}
    for doc, keys in records:
        if not missing:
            yield doc
            continue
        if keys is not None:
            objects += 1
            present.update(dict.fromkeys(keys))
            missing = [name for name in missing if name not in present]
            if not missing:
                yield from held
                held = []
                yield doc
                continue
        held.append(doc)
        held_bytes += len(doc.text)
        if objects >= FIELD_LOOKAHEAD or held_bytes > FIELD_LOOKAHEAD_BYTES:
            raise _no_field(f, missing[0], fields[missing[0]], list(present), f"its first {objects:,} records")
    if missing and objects:
        raise _no_field(f, missing[0], fields[missing[0]], list(present), "the records")
    yield from held


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogates(doc: RawDoc, mode: str) -> RawDoc:
    """JSON can escape half a surrogate pair (``"\\ud800"``): a string no UTF-8 can encode, which
    would crash every later stage.  It is invalid text, so ``--on-decode-error`` decides, as for
    invalid UTF-8: ``replace`` puts U+FFFD (counted ``lone_surrogate_replaced``), ``skip``
    rejects the document as ``lone_surrogate``, ``fail`` stops the build naming file and line."""
    strings = [doc.text, doc.title or ""] + [v for v in doc.meta.values() if isinstance(v, str)]
    if not any(_SURROGATE.search(x) for x in strings):
        return doc
    if mode == "fail":
        raise DecodeFailure(f"{doc.where}: a lone UTF-16 surrogate escape in a JSON string "
                            "(use --on-decode-error replace|skip)")
    if mode == "skip":
        return RawDoc(doc.id, "", reject="lone_surrogate", where=doc.where, nbytes=doc.nbytes)
    doc.text = _SURROGATE.sub("\ufffd", doc.text)
    if doc.title:
        doc.title = _SURROGATE.sub("\ufffd", doc.title)
    doc.meta = {k: _SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v for k, v in doc.meta.items()}
    doc.events = doc.events + ("lone_surrogate_replaced",)
    return doc


def _had_bad_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def _split_doc(doc: RawDoc, limit: int) -> Iterator[RawDoc]:
    """A record whose text is longer than ``limit`` bytes, as pieces ``<id>#k`` (tables, JSONL)."""
    if doc.reject or len(doc.text) * 4 <= limit:
        yield doc
        return
    data = doc.text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        yield doc
        return
    for k, (piece, hard) in enumerate(split_bytes(data, limit)):
        yield RawDoc(f"{doc.id}#{k}", piece.decode("utf-8", "surrogatepass"), title=doc.title, meta=dict(doc.meta),
                     where=doc.where, nbytes=len(piece), events=doc.events + _piece_events(k, hard))


def _open_table(f: InputFile, fmt: str, named: Mapping[str, str]) -> tuple[Any, list[str]]:
    """(the opened Parquet file or Arrow reader, the named columns), once every named field is
    checked to be a column (on the schema, before any record is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if fmt == "parquet":
            src: Any = pq.ParquetFile(f.path)
            names = src.schema_arrow.names
        else:
            src = _ArrowBatches(f.path)
            names = src.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInputFile(f"{f.path}: not a readable {fmt} file ({exc})") from None
    for name, option in named.items():
        if name and name not in names:
            raise _no_field(f, name, option, list(names), "the columns")
    return src, list(dict.fromkeys(name for name in named if name))


def table_chunks(f: InputFile, fmt: str, named: Mapping[str, str]) -> Iterator[tuple[int, int]]:
    """(records, bytes of the named columns) of each row group (Parquet, from its metadata:
    uncompressed size) or record batch (Arrow, memory-mapped: its buffers' size), in order:
    what :mod:`zhmask.steps.plan` cuts a table's units by, without reading a record."""
    src, cols = _open_table(f, fmt, named)
    if fmt == "parquet":
        md = src.metadata
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            size = sum(rg.column(j).total_uncompressed_size for j in range(rg.num_columns)
                       if rg.column(j).path_in_schema.split(".")[0] in cols)
            yield rg.num_rows, size
        return
    for batch in _checked_batches(f, fmt, src.batches(), 0):
        yield batch.num_rows, batch.select(cols).nbytes


def read_table(f: InputFile, fmt: str, text_field: str, title_field: str | None,
               max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES, fields: Mapping[str, str] | None = None,
               seg: Segment | None = None, digest: Any = None) -> Iterator[RawDoc]:
    """The records of a Parquet file or an Arrow IPC stream or file (its records ``[seg.start,
    seg.end)``), a record batch at a time, reading only the named columns (``fields``: the text,
    title and target fields); every named field must be a column (checked on the schema, before
    any record is read).  The records read, as canonical JSON, are added to ``digest``."""
    import json

    named = fields if fields is not None else named_fields(text_field, title_field)
    src, cols = _open_table(f, fmt, named)
    first, stop = (seg.start, seg.end) if seg is not None else (0, None)
    if fmt == "parquet":
        md = src.metadata
        groups, idx, row0 = [], None, 0
        for i in range(md.num_row_groups):
            n = md.row_group(i).num_rows
            if row0 + n > first and (stop is None or row0 < stop):
                groups.append(i)
                idx = row0 if idx is None else idx
            row0 += n
        batches = src.iter_batches(batch_size=2048, row_groups=groups, columns=cols) if groups else iter(())
        idx = idx or 0
    else:
        batches, idx = (b.select(cols) for b in src.batches()), 0
    for batch in _checked_batches(f, fmt, batches, idx):  # idx: the batch's first record
        if stop is not None and idx >= stop:
            break
        n = batch.num_rows
        lo = min(max(first - idx, 0), n)  # the batch's records in the range: [lo, hi)
        hi = n if stop is None else max(lo, min(n, stop - idx))
        for row, rec in enumerate(batch.slice(lo, hi - lo).to_pylist() if hi > lo else [], idx + lo):
            if digest is not None:
                digest.update(json.dumps(rec, sort_keys=True, ensure_ascii=False, default=str)
                              .encode("utf-8", "surrogatepass") + b"\n")
            doc = _record_doc(rec, f"{f.name}:{row}", f"{f.path}:{row}", text_field, title_field)
            doc.nbytes = len(doc.text.encode("utf-8", "replace"))
            yield from _split_doc(doc, max_doc_bytes)
        idx += n


class _ArrowBatches:
    """An Arrow IPC stream (what Hugging Face ``datasets`` writes) or an Arrow IPC file
    (Feather v2), memory-mapped: its column names and its record batches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names, first = _arrow_batches(path)
        close = getattr(first, "close", None)
        if close is not None:
            close()

    def batches(self) -> Iterator[Any]:
        return iter(_arrow_batches(self.path)[1])


def _checked_batches(f: InputFile, fmt: str, batches: Iterator[Any], row: int) -> Iterator[Any]:
    """``batches`` (the first starting at record ``row``); corrupt data becomes BadInputFile
    naming the file and the record."""
    import pyarrow as pa

    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise BadInputFile(f"{f.path}: corrupt {fmt} data after record {row} ({exc})") from None
        row += batch.num_rows
        yield batch


def _arrow_batches(path: Path) -> tuple[list[str], Iterator[Any]]:
    """(column names, record batches) of an Arrow IPC stream (what Hugging Face ``datasets``
    writes) or an Arrow IPC file (Feather v2), memory-mapped."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    try:
        reader = ipc.open_stream(pa.memory_map(str(path)))
        return reader.schema.names, iter(reader)
    except pa.ArrowInvalid:
        freader = ipc.open_file(pa.memory_map(str(path)))
        return freader.schema.names, (freader.get_batch(i) for i in range(freader.num_record_batches))


def read_file(f: InputFile, *, fmt: str, doc_sep: str, text_field: str, title_field: str | None,
              on_decode_error: str, max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES,
              fields: Mapping[str, str] | None = None, seg: Segment | None = None,
              digest: Any = None) -> Iterator[RawDoc]:
    """The records of one input file, or of its range ``seg`` (a worker's part of a unit:
    :mod:`zhmask.steps.plan`), whose input is added to ``digest`` as read.  ``fields`` maps
    each field the build reads (JSONL keys, table columns) to the option that named it, for
    the error when a file has no such field (default: the text and title fields)."""
    kind = seg.fmt if seg is not None else detect_format(f.path, fmt)
    if kind == "text":
        yield from read_text(f, doc_sep, on_decode_error, max_doc_bytes, seg, digest)
    elif kind == "jsonl":
        yield from read_jsonl(f, text_field, title_field, on_decode_error, max_doc_bytes, fields, seg, digest)
    else:
        yield from read_table(f, kind, text_field, title_field, max_doc_bytes, fields, seg, digest)


def check_input(path: Path) -> str | None:
    """Why ``path`` cannot be read (dangling link, not a regular file, permission), or None.

    Checked for every input before any work starts.  A FIFO or socket is never opened (that
    would block); a regular file is opened and one byte read.
    """
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "dangling symbolic link" if os.path.islink(path) else "file not found"
    except OSError as exc:
        return f"cannot stat: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        try:
            os.listdir(path)
        except OSError as exc:
            return f"cannot list directory: {exc.strerror or exc}"
        return "is a directory"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (FIFO, socket or device)"
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    return None
