"""Readers: plain text, JSONL, Parquet and Arrow, optionally gzip or zstd compressed.

Each yields :class:`RawDoc` records in input order with a stable id
(``<file>:<line>`` for line-based formats, ``<file>:<record index>`` for tables), where
``<file>`` is the path relative to the directory or glob root the user named (the file name
for a file argument).  Records that cannot become documents (bad JSON, a missing text field,
undecodable bytes with ``--on-decode-error skip``) are yielded with ``reject`` set so that the
manifest accounts for them.

Lines are split on ``\\n`` only (``\\r\\n`` is accepted): U+2028, U+2029, U+0085, vertical tab and
form feed inside a line never start a new document.
"""
from __future__ import annotations

import glob
import gzip
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from zhmask.errors import BadInputFile, ZhmaskError

TEXT_SUFFIXES = {".txt", ".text", ".tsv", ".md", ""}
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


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # stable name used in document ids


def expand_inputs(inputs: list[str]) -> list[InputFile]:
    """Files named, files under named directories (recursively) and glob matches, sorted."""
    out: list[InputFile] = []
    for arg in inputs:
        p = Path(arg)
        if any(ch in arg for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True) if Path(m).is_file())
            if not matches:
                raise ZhmaskError(f"no input files match {arg}")
            base = _glob_root(arg)
            out += [InputFile(m, _rel(m, base)) for m in matches]
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            if not files:
                raise ZhmaskError(f"input directory {arg} holds no files")
            out += [InputFile(f, f.relative_to(p).as_posix()) for f in files]
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
    return out


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


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line bytes without the newline); splits on b'\\n' only."""
    fh = open_binary(path)
    try:
        stream = fh if isinstance(fh, io.BufferedIOBase) and hasattr(fh, "readline") else io.BufferedReader(fh)  # type: ignore[arg-type]
        n = 0
        while True:
            try:
                line = stream.readline()
            except (OSError, EOFError, ValueError) as exc:
                raise BadInputFile(f"{path}: corrupt or truncated compressed data after line {n} ({exc})") from None
            except Exception as exc:  # zstandard.ZstdError and friends
                raise BadInputFile(f"{path}: corrupt or truncated compressed data after line {n} ({exc})") from None
            if not line:
                break
            n += 1
            if line.endswith(b"\n"):
                line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if n == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            yield n, line
    finally:
        fh.close()


def decode(line: bytes, mode: str, where: str) -> tuple[str | None, str | None]:
    """Decode UTF-8 per ``--on-decode-error``; returns (text, reject reason)."""
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        if mode == "replace":
            return line.decode("utf-8", errors="replace"), None
        if mode == "skip":
            return None, "invalid_utf8"
        raise BadInputFile(f"{where}: invalid UTF-8 at byte {exc.start} (use --on-decode-error replace|skip)") from None


def read_text(f: InputFile, doc_sep: str, on_decode_error: str) -> Iterator[RawDoc]:
    if doc_sep == "line":
        for n, line in iter_lines(f.path):
            where = f"{f.path}:{n}"
            text, reject = decode(line, on_decode_error, where)
            yield RawDoc(f"{f.name}:{n}", text or "", reject=reject, where=where, nbytes=len(line) + 1)
        return
    # blank-line separated documents, one sentence or paragraph a line
    buf: list[str] = []
    start = 0
    bad = False
    for n, line in iter_lines(f.path):
        where = f"{f.path}:{n}"
        if not line.strip():
            if buf or bad:
                yield _blank_doc(f, start, buf, bad)
            buf, bad = [], False
            continue
        if not buf and not bad:
            start = n
        text, reject = decode(line, on_decode_error, where)
        if reject:
            bad = True
        elif text is not None:
            buf.append(text)
    if buf or bad:
        yield _blank_doc(f, start, buf, bad)


def _blank_doc(f: InputFile, start: int, buf: list[str], bad: bool) -> RawDoc:
    text = "\n".join(buf)
    return RawDoc(f"{f.name}:{start}", text, reject="invalid_utf8" if bad else None, where=f"{f.path}:{start}",
                  nbytes=len(text.encode("utf-8", "replace")) + 1)


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


def read_jsonl(f: InputFile, text_field: str, title_field: str | None, on_decode_error: str) -> Iterator[RawDoc]:
    for n, line in iter_lines(f.path):
        where = f"{f.path}:{n}"
        doc_id = f"{f.name}:{n}"
        if not line.strip():
            continue  # blank lines between records are not records
        text, reject = decode(line, on_decode_error, where)
        if reject:
            yield RawDoc(doc_id, "", reject=reject, where=where)
            continue
        try:
            rec = json.loads(text)  # type: ignore[arg-type]
        except json.JSONDecodeError:
            yield RawDoc(doc_id, "", reject="bad_json", where=where)
            continue
        doc = _record_doc(rec, doc_id, where, text_field, title_field)
        doc.nbytes = len(line) + 1
        yield doc


def read_table(f: InputFile, fmt: str, text_field: str, title_field: str | None) -> Iterator[RawDoc]:
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    try:
        if fmt == "parquet":
            pf = pq.ParquetFile(f.path)
            names = pf.schema_arrow.names
            batches = pf.iter_batches(batch_size=2048, columns=_cols(names, text_field, title_field, f))
        else:
            batches = _arrow_batches(f.path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInputFile(f"{f.path}: not a readable {fmt} file ({exc})") from None
    idx = 0
    for batch in batches:
        if text_field not in batch.schema.names:
            raise ZhmaskError(f"{f.path}: no column {text_field!r} (columns: {', '.join(batch.schema.names)}); use --text-field")
        rows = batch.to_pylist()
        for rec in rows:
            doc = _record_doc(rec, f"{f.name}:{idx}", f"{f.path}:{idx}", text_field, title_field)
            doc.nbytes = len(doc.text.encode("utf-8", "replace"))
            yield doc
            idx += 1


def _cols(names: list[str], text_field: str, title_field: str | None, f: InputFile) -> list[str]:
    if text_field not in names:
        raise ZhmaskError(f"{f.path}: no column {text_field!r} (columns: {', '.join(names)}); use --text-field")
    return [c for c in names]


def _arrow_batches(path: Path):
    import pyarrow as pa
    import pyarrow.ipc as ipc

    # Hugging Face datasets writes the IPC stream format; Feather v2 is the IPC file format.
    try:
        reader = ipc.open_stream(pa.memory_map(str(path)))
        return iter(reader)
    except pa.ArrowInvalid:
        reader = ipc.open_file(pa.memory_map(str(path)))
        return (reader.get_batch(i) for i in range(reader.num_record_batches))


def read_file(f: InputFile, *, fmt: str, doc_sep: str, text_field: str, title_field: str | None,
              on_decode_error: str) -> Iterator[RawDoc]:
    kind = detect_format(f.path, fmt)
    if kind == "text":
        yield from read_text(f, doc_sep, on_decode_error)
    elif kind == "jsonl":
        yield from read_jsonl(f, text_field, title_field, on_decode_error)
    else:
        yield from read_table(f, kind, text_field, title_field)


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Size and sha256 of an input file, for the manifest."""
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise BadInputFile(f"cannot read {path}: {exc.strerror or exc}") from None
    return {"size": os.path.getsize(path), "sha256": h.hexdigest()}
