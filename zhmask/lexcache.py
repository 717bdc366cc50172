"""A cache of lexicons in a form that loads without parsing.

Parsing the bundled text lexicons (entity lexicons, the entity stop list, the synonym table) and
building their lookup tables costs more CPU than a small build's whole work.  :func:`cached`
builds such a table once and keeps it in a cache file (marshal, numpy arrays as raw bytes) that
later processes map into memory in a few milliseconds (the arrays are views of the file).

Never stale: the file's name is a hash of everything the table is built from -- the *content* of
every source file (not its path or date), the source of the module that builds it, the zhmask
version, Python's version and the caller's own key (e.g. the vocabulary a table of token ids was
made with).  A changed input is another file name, so an old cache file is simply never read.
A file that is truncated, corrupt or of another format fails its checks on load and is rebuilt
and rewritten, never a traceback.  Files are written atomically (a temporary file renamed into
place), so concurrent workers never read a half-written one.

Where: ``$ZHMASK_CACHE_DIR``, else ``$XDG_CACHE_HOME/zhmask``, else ``~/.cache/zhmask``.
``ZHMASK_CACHE_DIR=off`` (or an unwritable directory) builds the tables every time.  The
:data:`KEEP` most recently used files of each kind of table stay; older ones are removed when a
new one is written.  Like pickle, marshal trusts its input: point the cache only at a directory
that you (and the builds you run) alone can write.
"""
from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

FORMAT = b"ZHMLEX02"  # the file header: bump when the file layout changes
_HEAD = len(FORMAT) + 12  # header, metadata length (8 bytes), crc32 of everything after _HEAD (4 bytes)
KEEP = 8  # files kept per kind of table, the most recently used (other lexicons, older versions)


def read_lines(path: str | Path, what: str) -> list[str]:
    """The lines of a text lexicon (UTF-8, a BOM allowed); ZhmaskError ``cannot read WHAT PATH``."""
    from zhmask.errors import ZhmaskError

    try:
        return Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ZhmaskError(f"cannot read {what} {path}: {exc}") from None


def cache_dir() -> Path | None:
    """The cache directory, or None when caching is off (``ZHMASK_CACHE_DIR=off``)."""
    env = os.environ.get("ZHMASK_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zhmask"


def _file_digest(path: Path, h: "hashlib._Hash") -> None:
    with open(path, "rb") as fh:
        h.update(hashlib.sha256(fh.read()).digest())


def cache_key(kind: str, sources: Mapping[str, Sequence[str | Path]], builder: Callable, extra: str = "",
              code: Sequence[str] = ()) -> str:
    """The name of the cache file of a table: a hash of its inputs (see the module docstring).
    Raises OSError when a source cannot be read (the builder then reports it in its own words)."""
    from zhmask import __version__

    h = hashlib.sha256()
    for part in (FORMAT, kind.encode(), __version__.encode(), f"{sys.version_info[:2]} {np.__version__}".encode(),
                 extra.encode()):
        h.update(len(part).to_bytes(8, "little") + part)
    for name in (getattr(builder, "__module__", ""), *code):  # an edit to the code that builds the table
        src = getattr(sys.modules.get(name), "__file__", None)  # is a new key
        if src:
            _file_digest(Path(src), h)
    for role in sorted(sources):
        h.update(b"\0role:" + role.encode())
        for p in sources[role]:
            _file_digest(Path(p), h)
    return f"{kind}-{h.hexdigest()[:32]}"


_ALIGN = 64  # arrays start at multiples of this offset from the start of the file


def _encode(table: Mapping[str, Any]) -> bytes:
    """Header, then the values that are not arrays with each array's place (marshal), then each
    array's raw bytes at an aligned offset, so that :func:`_decode` maps them without a copy."""
    arrays = {k: v for k, v in table.items() if isinstance(v, np.ndarray)}
    objects = {k: v for k, v in table.items() if not isinstance(v, np.ndarray)}
    places, pos = {}, 0
    for k, v in arrays.items():
        places[k] = (v.dtype.str, v.shape, pos, v.nbytes)  # (ascontiguousarray would make a 0-d array 1-d)
        pos += -(-v.nbytes // _ALIGN) * _ALIGN
    meta = marshal.dumps((places, objects))
    start = -(-(_HEAD + len(meta)) // _ALIGN) * _ALIGN  # where the arrays begin
    body = bytearray(start - _HEAD + pos)
    body[:len(meta)] = meta
    for k, v in arrays.items():
        off = start - _HEAD + places[k][2]
        body[off:off + v.nbytes] = v.tobytes()  # C order whatever the array's layout
    return FORMAT + len(meta).to_bytes(8, "little") + zlib.crc32(body).to_bytes(4, "little") + bytes(body)


def _decode(blob) -> dict[str, Any]:
    """The table of a cache file (its bytes, or a read-only mmap of it: arrays are views of
    ``blob``, read-only); ValueError when the file is not a whole, intact cache file."""
    if len(blob) < _HEAD or blob[:len(FORMAT)] != FORMAT:
        raise ValueError("not a zhmask lexicon cache file")
    n = int.from_bytes(blob[len(FORMAT):len(FORMAT) + 8], "little")
    crc = int.from_bytes(blob[len(FORMAT) + 8:_HEAD], "little")
    view = memoryview(blob)
    if _HEAD + n > len(blob) or zlib.crc32(view[_HEAD:]) != crc:
        raise ValueError("truncated or corrupt cache file")
    places, objects = marshal.loads(view[_HEAD:_HEAD + n])
    start = -(-(_HEAD + n) // _ALIGN) * _ALIGN
    out = dict(objects)
    for k, (dtype, shape, off, nbytes) in places.items():
        if start + off + nbytes > len(blob):
            raise ValueError("truncated or corrupt cache file")
        arr = np.frombuffer(blob, dtype=np.dtype(dtype), count=nbytes // np.dtype(dtype).itemsize, offset=start + off)
        out[k] = arr.reshape(shape)  # read-only, as a table should be
    return out


def _load(path: Path) -> dict[str, Any]:
    """:func:`_decode` of a cache file, memory-mapped: its arrays are read from the page cache
    when used, never copied (an 8 MB entity table loads in about 4 ms instead of 14)."""
    import mmap

    with open(path, "rb") as fh:
        try:
            blob = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # an empty file cannot be mapped
            blob = fh.read()
    return _decode(blob)


def _write_atomic(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _prune(folder: Path, kind: str) -> None:
    """Keep the :data:`KEEP` most recently used files of ``kind``; drop temporary files that a
    killed writer left more than an hour ago.  Best effort: another process may race us."""
    import time

    try:
        files = sorted(folder.glob(f"{kind}-*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
        stale = [p for p in folder.glob(f"{kind}-*.tmp") if p.stat().st_mtime < time.time() - 3600]
        for p in files[KEEP:] + stale:
            p.unlink()
    except OSError:
        pass


def cached(kind: str, sources: Mapping[str, Sequence[str | Path]], build: Callable[[], dict[str, Any]],
           extra: str = "", code: Sequence[str] = ()) -> dict[str, Any]:
    """``build()`` (a dict of numpy arrays and marshal-able values: str, int, float, bytes, and
    tuples, lists, sets and dicts of them), loaded from the cache when a file for exactly these
    inputs exists and is intact, else built and stored.  ``sources``: role -> the files ``build``
    reads; ``extra``: anything else the result depends on; ``code``: modules besides ``build``'s
    own whose source the result depends on.  Arrays come back read-only."""
    folder = cache_dir()
    if folder is None:
        return build()
    try:
        path = folder / (cache_key(kind, sources, build, extra, code) + ".bin")
    except OSError:  # an unreadable source: the builder says so in its own words
        return build()
    try:
        table = _load(path)
    except (OSError, ValueError, EOFError, TypeError):  # none yet, or unusable: rebuild it
        pass
    else:
        try:
            os.utime(path)  # recently used: kept by _prune
        except OSError:
            pass
        return table
    table = build()
    try:
        _write_atomic(path, _encode(table))
    except (OSError, ValueError):  # a read-only cache directory, a full disk: the build goes on without
        return table
    _prune(folder, kind)
    return table
