"""Read a finished build: the one module trainers, ``zhmask verify`` and dynamic masking read shards through.

* :class:`Build` -- a build directory: its manifest, configuration, shards (manifest order),
  vocabulary and special token ids; refuses a build of another schema version in one line.
* :func:`is_validation` -- the held-out split: a stable hash (blake2b) of the *document* part of
  an ``example_id`` (before the last ``#``), so every task and ``--dupe-factor`` copy of a
  held-out document is held out together, in every process and on every machine.
* :class:`ShardDataset` -- a map-style (torch) dataset over the memory-mapped record batches.
  Nothing of the corpus is copied into Python objects: the dataset holds the record batches
  (zero-copy views of the mapped files) and an index of the selected row numbers; ``ds[i]``
  returns numpy views of row ``i``'s values.
* :class:`ShardIterableDataset` -- the same rows as a torch ``IterableDataset``: every selected
  row exactly once per epoch across DataLoader workers x DDP ranks, in an order fixed by
  (seed, epoch).
* :class:`EpochSampler` -- a deterministic per-epoch permutation, rank ``r`` of ``world`` takes
  positions ``r::world``, ``skip(k)`` for resuming inside an epoch.
* :class:`Collator` -- pads rows to the batch's longest (rounded up to a multiple of 8) as int64
  torch tensors; with a :class:`~zhmask.masking.dynamic.DynamicMasking` it masks them afresh each
  epoch through the strategy's batched path.

torch is imported only when a torch class is first used: ``Build`` and ``is_validation`` (and
the numpy side of everything else) work without it.

Example::

    from torch.utils.data import DataLoader
    from zhmask.reader import Build, ShardDataset, EpochSampler, Collator

    b = Build("out/")
    ds = ShardDataset(b, split="train", validation=0.01)
    sampler = EpochSampler(len(ds), seed=0)
    loader = DataLoader(ds, batch_size=32, sampler=sampler, collate_fn=Collator(pad_id=b.pad_id))
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for batch in loader:
            ...  # batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], batch["labels"]
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.record import NO_LABEL, SENTENCE_LABEL

__all__ = ["Build", "is_validation", "ShardDataset", "ShardIterableDataset", "EpochSampler", "Collator",
           "read_manifest", "listed_shards", "open_shard", "check_manifest_version", "check_versions",
           "shard_schema_problems",
           "shard_version", "epoch_permutation", "pad_rows", "selected_rows", "original_ids",
           "batch_selection"]

DEFAULT_VALIDATION = 0.01
LIST_COLUMNS = ("input_ids", "token_type_ids", "word_ids", "labels", "chinese_ref", "token_labels", "source_ids",
                "target_ids", "fragment_bounds", "span_bounds", "noise_positions", "doc_bounds", "perm_order")
STRUCT_COLUMNS = ("entities", "segment_sources")
STRING_COLUMNS = ("doc_id", "example_id", "task")


# ---------------------------------------------------------------------- the build directory
def read_manifest(out: str | Path) -> dict[str, Any]:
    """``OUT/manifest.json`` as a dict; ZhmaskError (one line) when it is missing or unreadable."""
    out = Path(out)
    path = out / "manifest.json"
    if not out.is_dir():
        raise ZhmaskError(f"{out} is not a directory (expected a build made by zhmask build-corpus)")
    if not path.is_file():
        raise ZhmaskError(f"{path} missing: the build never finished (rerun build-corpus with the same arguments)")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ZhmaskError(f"{path} unreadable: {' '.join(str(exc).split())}") from None
    if not isinstance(m, dict):
        raise ZhmaskError(f"{path} is not a build manifest (a JSON object)")
    return m


def listed_shards(out: str | Path, manifest: Mapping[str, Any]) -> list[tuple[str, Path, dict]]:
    """The shards the manifest lists, in its (unit) order: (relative name, path, manifest entry)."""
    out = Path(out)
    return [(str(e.get("file", "")), out / str(e.get("file", "")), dict(e)) for e in manifest.get("shards") or []]


def check_manifest_version(manifest: Mapping[str, Any], where: str | Path = "manifest") -> None:
    """ZhmaskError when the manifest's schema version is not the one this zhmask reads."""
    from zhmask.schema import SCHEMA_VERSION

    v = str(manifest.get("schema_version", "missing"))
    if v != SCHEMA_VERSION:
        raise ZhmaskError(f"{where}: schema version {v} (this zhmask reads {SCHEMA_VERSION}); rebuild it with "
                          f"this zhmask or read it with the zhmask version that wrote it")


def shard_version(schema) -> str:
    """The ``zhmask.schema_version`` a shard's schema carries ('missing' when none)."""
    meta = schema.metadata or {}
    return meta.get(b"zhmask.schema_version", b"").decode() or "missing"


def check_versions(out: str | Path) -> None:
    """ZhmaskError (one line) when the build in ``out`` -- its manifest or a listed shard that
    opens -- has another schema version than this zhmask reads.  Anything else wrong (no
    manifest, a missing or damaged shard) is left to the caller: ``zhmask verify`` reports it."""
    from zhmask.schema import SCHEMA_VERSION

    out = Path(out)
    try:
        m = read_manifest(out)
    except ZhmaskError:
        return
    check_manifest_version(m, out / "manifest.json")
    for _, p, _ in listed_shards(out, m):
        try:
            with open_shard(p) as r:
                v = shard_version(r.schema)
        except (OSError, ValueError):
            continue
        if v != SCHEMA_VERSION:
            raise ZhmaskError(f"{p}: schema version {v} (this zhmask reads {SCHEMA_VERSION}); rebuild it with this "
                              f"zhmask or read it with the zhmask version that wrote it")


def shard_schema_problems(schema) -> list[str]:
    """:func:`zhmask.schema.check_schema`: what makes a shard's schema unreadable here."""
    from zhmask.schema import check_schema

    return check_schema(schema)


@contextmanager
def open_shard(path: str | Path):
    """A memory-mapped Arrow IPC stream reader of one shard (``reader.schema``, iterate for
    record batches, zero-copy views of the mapped file)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path)) as src:
        yield ipc.open_stream(src)


def _batch_rows(msg, path: Path) -> int:
    """The row count of a record batch message, read from its flatbuffer header (Arrow's
    ``Message.header`` -> ``RecordBatch.length``) without decoding, so that opening a compressed
    shard does not decompress it.  Field numbers are those of Arrow's format/Message.fbs."""
    import struct

    meta = memoryview(msg.metadata)

    def field(table: int, index: int) -> int:  # the offset of field ``index`` in ``table`` (0: absent)
        vtable = table - struct.unpack_from("<i", meta, table)[0]
        slot = 4 + 2 * index
        return struct.unpack_from("<H", meta, vtable + slot)[0] if slot < struct.unpack_from("<H", meta, vtable)[0] else 0

    root = struct.unpack_from("<I", meta, 0)[0]
    kind, at = field(root, 1), field(root, 2)   # Message.header_type, Message.header
    if not kind or meta[root + kind] != 3 or not at:   # 3: MessageHeader.RecordBatch
        raise ZhmaskError(f"{path}: a message of the shard is not a record batch (a damaged or foreign file)")
    header = root + at + struct.unpack_from("<I", meta, root + at)[0]
    length = field(header, 0)                   # RecordBatch.length (absent: 0 rows)
    return struct.unpack_from("<q", meta, header + length)[0] if length else 0


def _shard_messages(path: Path) -> tuple[Any, list, list[int], bool]:
    """(schema, the record batch messages, their row counts, compressed?) of a shard.  The
    messages are zero-copy slices of the memory-mapped file (they keep the mapping alive; the file
    descriptor is not kept); :func:`pyarrow.ipc.read_record_batch` decodes one, and the row counts
    come from the messages' headers (:func:`_batch_rows`), so nothing is decoded here."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    src = pa.memory_map(str(path))
    try:
        messages = ipc.MessageReader.open_stream(src)
        schema = ipc.read_schema(messages.read_next_message())
        msgs, rows = [], []
        for msg in messages:
            msgs.append(msg)
            rows.append(_batch_rows(msg, path))
    finally:
        src.close()
    config = json.loads((schema.metadata or {}).get(b"zhmask.config", b"{}"))
    return schema, msgs, rows, config.get("compression", "none") not in (None, "none")


def _tokenizer_ids(config: Mapping[str, Any]):
    from zhmask.steps.tokenize import WordTokenizer

    return WordTokenizer(config.get("vocab"), config.get("tokenizer"), lowercase=config.get("lowercase", True))


class Build:
    """A finished build directory (see the module docstring).

    ``b.out``, ``b.manifest``, ``b.config``, ``b.shards`` (paths, manifest order), ``b.vocab_path``,
    ``b.pad_id``, ``b.mask_id``, ``b.cls_id``, ``b.sep_id``, ``b.vocab_size``, ``b.tasks``
    ({task: rows}).  Raises ZhmaskError (one line) when there is no manifest, no shard, a listed
    shard is missing, or the manifest or a shard has another schema version."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.manifest = read_manifest(self.out)
        check_manifest_version(self.manifest, self.out / "manifest.json")
        self.config: dict[str, Any] = dict(self.manifest.get("config") or {})
        entries = self.manifest.get("shards")
        if not entries:
            raise ZhmaskError(f"{self.out}: the manifest lists no shards (an empty build)")
        self.shards: list[Path] = []
        for _, p, _ in listed_shards(self.out, self.manifest):
            if not p.is_file():
                raise ZhmaskError(f"{p}: listed in the manifest but missing")
            self.shards.append(p)
        self.schema = None  # the first shard's Arrow schema (every shard of a build has the same)
        for p in self.shards:  # the schema is the stream's first message: cheap to check
            try:
                with open_shard(p) as r:
                    problems = shard_schema_problems(r.schema)
                    if self.schema is None:
                        self.schema = r.schema
            except (OSError, ValueError) as exc:  # pa.ArrowInvalid is a ValueError
                raise ZhmaskError(f"{p}: not a readable Arrow stream ({' '.join(str(exc).split())})") from None
            if problems:
                raise ZhmaskError(f"{p}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1
                                                            else ""))
        self._tok = None

    def __repr__(self) -> str:
        return f"Build({str(self.out)!r}: {len(self.shards)} shard(s), {self.rows} rows)"

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_tok"] = None
        return d

    # ------------------------------------------------------------------ facts
    @property
    def rows(self) -> int:
        return sum(int(e.get("rows", 0)) for e in self.manifest["shards"])

    @property
    def shard_rows(self) -> list[int]:
        return [int(e.get("rows", 0)) for e in self.manifest["shards"]]

    @property
    def tasks(self) -> dict[str, int]:
        """Rows per task present in the build (``examples_by_task`` x ``dupe_factor``)."""
        dupe = int(self.config.get("dupe_factor", 1) or 1)
        return {t: int(v) * dupe for t, v in (self.manifest.get("examples_by_task") or {}).items() if v}

    @property
    def tokenizer(self):
        """The build's :class:`zhmask.steps.tokenize.WordTokenizer` (loaded once)."""
        if self._tok is None:
            self._tok = _tokenizer_ids(self.config)
        return self._tok

    @property
    def vocab_path(self) -> Path:
        """The build's ``vocab.txt`` (the bundled one when the build names none; a build made with
        ``--tokenizer tokenizer.json`` gives that file's path)."""
        if self.config.get("tokenizer"):
            return Path(self.config["tokenizer"])
        v = self.config.get("vocab")
        if v:
            p = Path(v)
            return p if p.is_absolute() or p.exists() else (self.out / p)
        from zhmask.paths import default_vocab

        return default_vocab()

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_id)

    @property
    def mask_id(self) -> int:
        return int(self.tokenizer.mask_id)

    @property
    def cls_id(self) -> int:
        return int(self.tokenizer.cls_id)

    @property
    def sep_id(self) -> int:
        return int(self.tokenizer.sep_id)

    @property
    def unk_id(self) -> int:
        return int(self.tokenizer.unk_id)

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size)

    @property
    def max_seq_length(self) -> int:
        return int(self.config.get("max_seq_length", 512))

    # ------------------------------------------------------------------ tokenizer for transformers
    def save_tokenizer(self, directory: str | Path) -> Path:
        """Write ``vocab.txt``, ``tokenizer.json``, ``tokenizer_config.json`` and
        ``special_tokens_map.json`` so ``AutoTokenizer.from_pretrained(directory)`` loads the build's
        tokenizer (a build also writes them into its own directory)."""
        from zhmask.write.tokenizer import write_tokenizer

        return write_tokenizer(self.tokenizer, directory, lowercase=bool(self.config.get("lowercase", True)),
                               max_length=self.max_seq_length)


def _as_build(b: "Build | str | Path") -> Build:
    return b if isinstance(b, Build) else Build(b)


# ---------------------------------------------------------------------- the validation split
def doc_part(example_id: str) -> str:
    """The document part of an example id: everything before the last ``#``."""
    i = example_id.rfind("#")
    return example_id if i < 0 else example_id[:i]


def _held_out(doc: str, fraction: float, salt: str) -> bool:
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    h = hashlib.blake2b(doc.encode("utf-8"), digest_size=8, key=salt.encode("utf-8")[:64], person=b"zhmask-valid")
    return int.from_bytes(h.digest(), "big") < fraction * 2.0 ** 64


def is_validation(example_id: str, fraction: float = DEFAULT_VALIDATION, salt: str = "") -> bool:
    """Whether the example belongs to the held-out validation split: a stable hash (blake2b,
    keyed by ``salt``) of its document part (before the last ``#``) below ``fraction``.  Every
    task and ``--dupe-factor`` copy of a document lands on the same side, in any process."""
    return _held_out(doc_part(str(example_id)), float(fraction), salt)


def original_ids(input_ids, labels) -> np.ndarray:
    """The text's ids before static masking: ``labels`` where a token is predicted (``!= -100``),
    else ``input_ids`` (the one unmasking rule: dynamic masking and ``zhmask export`` use it).
    Works on one row or on the flat values of a batch's list columns (same lengths); ``labels``
    None or of another length gives ``input_ids`` unchanged."""
    ids = np.asarray(input_ids)
    if labels is None:
        return ids
    lab = np.asarray(labels)
    if lab.shape != ids.shape:
        return ids
    return np.where(lab != -100, lab, ids).astype(ids.dtype, copy=False)


# ---------------------------------------------------------------------- the datasets
def _list_view(arr) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(offsets, values, valid or None) of a list<int> array, zero-copy where Arrow allows it."""
    offsets = arr.offsets.to_numpy(zero_copy_only=False)
    values = arr.values.to_numpy(zero_copy_only=False)
    valid = None
    if arr.null_count:
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
    return offsets, values, valid


CACHE_BYTES = 1 << 30  # decoded record batches of compressed shards kept at once (bytes)


class _Shards:
    """The record batches of a build's shards and their row offsets; opened lazily in each process
    (pickles as the shard paths).

    Uncompressed shards are memory-mapped: their batches are zero-copy views, all kept.  The
    batches of compressed shards (``--compression zstd|lz4``, the default) are decoded when first
    used and kept in a least-recently-used cache of ``cache_bytes`` decoded bytes: reading in shard
    order decodes each batch once; random access over a build larger than the cache decodes a
    batch again each time it has been evicted (build with ``--compression none`` to memory-map)."""

    def __init__(self, paths: Sequence[Path], cache_bytes: int | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.cache_bytes = CACHE_BYTES if cache_bytes is None else int(cache_bytes)
        self._msgs: list | None = None  # per batch: (schema, message, compressed?)
        self._starts: np.ndarray | None = None
        self._cache: OrderedDict = OrderedDict()  # batch index -> [batch, views, bytes]
        self._cached = 0  # decoded bytes of compressed batches in the cache

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "cache_bytes": self.cache_bytes, "_msgs": None, "_starts": None,
                "_cache": OrderedDict(), "_cached": 0}

    def open(self) -> None:
        if self._msgs is not None:
            return
        msgs, rows = [], []
        for p in self.paths:
            schema, ms, rs, compressed = _shard_messages(p)
            msgs.extend((schema, m, compressed) for m in ms)
            rows.extend(rs)
        self._msgs = msgs
        self._starts = np.cumsum([0] + rows).astype(np.int64)

    def __len__(self) -> int:
        self.open()
        return len(self._msgs)  # type: ignore[arg-type]

    def batch(self, bi: int):
        """Record batch ``bi`` (decoded, cached)."""
        return self._entry(bi)[0]

    def _entry(self, bi: int) -> list:
        import pyarrow.ipc as ipc

        e = self._cache.get(bi)
        if e is not None:
            self._cache.move_to_end(bi)
            return e
        self.open()
        schema, msg, compressed = self._msgs[bi]  # type: ignore[index]
        batch = ipc.read_record_batch(msg, schema)
        size = batch.get_total_buffer_size() if compressed else 0
        e = self._cache[bi] = [batch, {}, size]
        self._cached += size
        while self._cached > self.cache_bytes and len(self._cache) > 1:
            for k, old in self._cache.items():  # the least recently used compressed batch
                if old[2] and k != bi:
                    del self._cache[k]
                    self._cached -= old[2]
                    break
            else:
                break
        return e

    @property
    def batches(self) -> Iterator:
        """Every record batch in order (decoded one at a time)."""
        for bi in range(len(self)):
            yield self.batch(bi)

    @property
    def starts(self) -> np.ndarray:
        self.open()
        return self._starts  # type: ignore[return-value]

    @property
    def num_rows(self) -> int:
        return int(self.starts[-1])

    def locate(self, row: int) -> tuple[int, int]:
        starts = self.starts
        bi = int(np.searchsorted(starts, row, side="right")) - 1
        return bi, row - int(starts[bi])

    def view(self, bi: int, name: str):
        batch, views, _ = self._entry(bi)
        v = views.get(name)
        if v is None:
            col = batch.column(name)
            if name in LIST_COLUMNS:
                v = _list_view(col)
            elif name == SENTENCE_LABEL:
                v = col.to_numpy(zero_copy_only=False)
            else:
                v = col
            views[name] = v
        return v


def batch_selection(batch, split: str | None, validation: float, tasks: Sequence[str] | None, salt: str = "",
                    memo: dict[str, bool] | None = None) -> np.ndarray:
    """Boolean per row of one record batch: in ``tasks`` (None: any) and in ``split`` ("train",
    "validation" or None: both) by :func:`is_validation` of its ``example_id``.  The one split and
    task filter: :func:`selected_rows` and ``zhmask export`` (batch by batch) use it; ``memo``
    keeps one hash per document across calls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if split not in (None, "train", "validation"):
        raise ZhmaskError(f"split must be 'train', 'validation' or None, got {split!r}")
    keep = np.ones(batch.num_rows, dtype=bool)
    if tasks is not None:
        want = pa.array(list(tasks), pa.string())
        keep &= pc.is_in(batch.column("task"), value_set=want).to_numpy(zero_copy_only=False)
    if split is not None:
        memo = {} if memo is None else memo
        held = np.zeros(batch.num_rows, dtype=bool)
        for i, eid in enumerate(batch.column("example_id").to_pylist()):
            d = doc_part(eid)
            v = memo.get(d)
            if v is None:
                v = memo[d] = _held_out(d, validation, salt)
            held[i] = v
        keep &= held if split == "validation" else ~held
    return keep


def _select(shards: _Shards, split: str | None, validation: float, tasks: Sequence[str] | None,
            salt: str) -> np.ndarray:
    """Row numbers (over all shards, in order) of the rows in ``split`` and ``tasks``."""
    if split not in (None, "train", "validation"):
        raise ZhmaskError(f"split must be 'train', 'validation' or None, got {split!r}")
    if split is None and tasks is None:   # every row: no column needs decoding
        return np.arange(shards.num_rows, dtype=np.int64)
    parts = []
    memo: dict[str, bool] = {}
    for bi, batch in enumerate(shards.batches):
        keep = batch_selection(batch, split, validation, tasks, salt, memo)
        parts.append(np.flatnonzero(keep) + shards.starts[bi])
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


class _ShardDatasetBase:
    """Map-style dataset over a build's memory-mapped shards (see the module docstring).

    ``ShardDataset(build_or_path, split="train"|"validation"|None, validation=0.01,
    tasks=None|[...], columns=None, salt="", cache_bytes=None)``: ``len(ds)`` selected rows;
    ``ds[i]`` a dict of row ``i``: strings (``example_id``, ``doc_id``, ``task``), numpy views of
    the list columns (``input_ids`` and ``labels`` int16 or int32 as the vocabulary needs,
    ``token_type_ids`` int8, ``word_ids``, ...; None where the column is null), the sentence label
    an int and the struct columns (``entities``, ``segment_sources``) as Python lists.
    ``columns`` limits the keys (default: all).  ``cache_bytes``: decoded bytes of compressed
    record batches kept at once (default :data:`CACHE_BYTES`; see :class:`_Shards`)."""

    def __init__(self, build: "Build | str | Path", split: str | None = "train",
                 validation: float = DEFAULT_VALIDATION, tasks: Sequence[str] | None = None,
                 columns: Sequence[str] | None = None, salt: str = "", cache_bytes: int | None = None) -> None:
        from zhmask.schema import COLUMNS

        self.build = _as_build(build)
        if isinstance(tasks, str):
            tasks = [tasks]
        if tasks is not None:
            unknown = [t for t in tasks if t not in self.build.tasks]
            if unknown:
                raise ZhmaskError(f"task(s) {', '.join(unknown)} not in the build {self.build.out} "
                                  f"(it has {', '.join(sorted(self.build.tasks)) or 'none'})")
        if not (0.0 <= float(validation) <= 1.0):
            raise ZhmaskError(f"validation must be a fraction in [0, 1], got {validation!r}")
        cols = list(columns) if columns is not None else list(COLUMNS)
        bad = [c for c in cols if c not in COLUMNS]
        if bad:
            raise ZhmaskError(f"unknown column(s) {', '.join(bad)}; the shards have {', '.join(COLUMNS)}")
        self.split, self.validation, self.tasks, self.columns, self.salt = split, float(validation), tasks, cols, salt
        self._shards = _Shards(self.build.shards, cache_bytes)
        self.index = _select(self._shards, split, self.validation, tasks, salt)

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.build.out)!r}, split={self.split!r}, tasks={self.tasks!r}: "
                f"{len(self)} rows)")

    def row(self, row: int) -> dict[str, Any]:
        """Row number ``row`` of the build (over all shards, unfiltered)."""
        sh = self._shards
        bi, j = sh.locate(int(row))
        out: dict[str, Any] = {}
        for name in self.columns:
            v = sh.view(bi, name)
            if name in LIST_COLUMNS:
                offsets, values, valid = v
                out[name] = None if valid is not None and not valid[j] else values[offsets[j]:offsets[j + 1]]
            elif name == SENTENCE_LABEL:
                out[name] = int(v[j])
            else:
                out[name] = v[j].as_py()
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = len(self.index)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} rows")
        return self.row(self.index[i])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def task_positions(self) -> dict[str, np.ndarray]:
        """Positions (``ds[i]`` indices, ascending) of the selected rows of each task, record batch
        by record batch: what a sampler that draws one task per batch needs."""
        import pyarrow.compute as pc

        sh, idx = self._shards, self.index
        parts: dict[str, list[np.ndarray]] = {}
        for bi, batch in enumerate(sh.batches):
            lo = int(sh.starts[bi])
            a, b = np.searchsorted(idx, [lo, lo + batch.num_rows])
            if a == b:
                continue
            enc = pc.dictionary_encode(batch.column("task"))
            codes = enc.indices.to_numpy(zero_copy_only=False)[idx[a:b] - lo]
            for k, name in enumerate(enc.dictionary.to_pylist()):
                hit = np.flatnonzero(codes == k)
                if len(hit):
                    parts.setdefault(name, []).append(hit + a)
        return {t: np.concatenate(v).astype(np.int64) for t, v in sorted(parts.items())}

    def example_ids(self) -> list[str]:
        """The ``example_id`` of every selected row, in order (materialised: for tests and tools)."""
        sh = self._shards
        out = []
        for r in self.index.tolist():
            bi, j = sh.locate(r)
            out.append(sh.view(bi, "example_id")[j].as_py())
        return out


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order of ``n`` rows in ``epoch``: the permutation of the counter-based values of the
    key (seed, "zhmask.reader", "epoch", epoch) (zhmask.rng); ``arange(n)`` without shuffling."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    from zhmask.rng import rng_for

    return rng_for(int(seed), "zhmask.reader", "epoch", int(epoch)).permutation(n).astype(np.int64)


def _dist_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world) from the kwargs, else torch.distributed when initialised, else (0, 1)."""
    if rank is not None or world_size is not None:
        r, w = int(rank or 0), int(world_size or 1)
    else:
        r, w = 0, 1
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                r, w = dist.get_rank(), dist.get_world_size()
        except ImportError:
            pass
    if w < 1 or not 0 <= r < w:
        raise ZhmaskError(f"rank {r} is not in a world of size {w}")
    return r, w


def _used(n: int, world_size: int, drop_last: bool) -> int:
    """Positions of the permutation the ranks share: all ``n``, or with ``drop_last`` a multiple
    of the world size (every rank as many, as DDP wants)."""
    return n - n % world_size if drop_last else n


class _EpochSamplerBase:
    """Deterministic per-epoch order of ``n`` indices: a permutation fixed by (seed, epoch) (or
    ``range(n)`` with ``shuffle=False``); rank ``r`` of ``world_size`` takes the positions
    ``r::world_size`` (shares differ by at most one; ``drop_last=True`` leaves out the last
    ``n % world_size`` positions of the permutation so every rank has as many, as DDP wants).
    ``skip(k)`` drops the first ``k`` indices of this rank's share (resuming inside an epoch);
    ``set_epoch(e)`` to another epoch clears it."""

    def __init__(self, n: int, seed: int = 0, epoch: int = 0, rank: int | None = None,
                 world_size: int | None = None, shuffle: bool = True, drop_last: bool = False) -> None:
        self.n, self.seed, self.epoch, self.shuffle = int(n), int(seed), int(epoch), bool(shuffle)
        self.rank, self.world_size = _dist_rank_world(rank, world_size)
        self.drop_last = bool(drop_last)
        self.skipped = 0

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.skipped = 0
        self.epoch = int(epoch)

    def skip(self, k: int):
        """Skip the first ``k`` indices of this rank's share of the current epoch; returns self."""
        if k < 0:
            raise ZhmaskError(f"skip needs a count >= 0, got {k}")
        self.skipped = int(k)
        return self

    def share(self) -> np.ndarray:
        """This rank's indices of the current epoch, in order, after the skipped ones."""
        perm = epoch_permutation(self.n, self.seed, self.epoch, self.shuffle)
        return perm[self.rank:_used(self.n, self.world_size, self.drop_last):self.world_size][self.skipped:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.share().tolist())

    def __len__(self) -> int:
        full = len(range(self.rank, _used(self.n, self.world_size, self.drop_last), self.world_size))
        return max(0, full - self.skipped)


def selected_rows(build: "Build | str | Path", split: str | None = "train", validation: float = DEFAULT_VALIDATION,
                  tasks: Sequence[str] | None = None, salt: str = "") -> np.ndarray:
    """Row numbers (over the build's listed shards, in manifest order) of the rows a
    :class:`ShardDataset` with these arguments selects: the one split and task filter for every
    reader (``zhmask.data.load`` included)."""
    return _ShardDatasetBase(build, split=split, validation=validation, tasks=tasks, columns=(), salt=salt).index


class _ShardIterableDatasetBase:
    """The rows of a :class:`ShardDataset` as an iterable: each epoch (``set_epoch``) a
    permutation fixed by (seed, epoch); DDP rank ``r`` of ``world`` takes positions ``r::world``
    (from torch.distributed when initialised, else the ``rank``/``world_size`` kwargs); inside a
    rank, DataLoader worker ``w`` of ``W`` takes chunks ``w, w + W, ...`` of ``batch_size`` rows.
    Every selected row comes once per epoch across workers x ranks (``drop_last=True``: but the
    last ``n % world`` of the permutation, so that ranks have as many), and with ``batch_size`` equal
    to the DataLoader's the batches arrive in the same order whatever the number of workers.
    (Call ``set_epoch`` before the DataLoader starts its workers: not with persistent workers.)"""

    def __init__(self, build: "Build | str | Path", split: str | None = "train",
                 validation: float = DEFAULT_VALIDATION, tasks: Sequence[str] | None = None,
                 columns: Sequence[str] | None = None, salt: str = "", seed: int = 0, shuffle: bool = True,
                 epoch: int = 0, rank: int | None = None, world_size: int | None = None,
                 batch_size: int = 1, drop_last: bool = False) -> None:
        self.dataset = _ShardDatasetBase(build, split=split, validation=validation, tasks=tasks, columns=columns,
                                         salt=salt)
        self.seed, self.shuffle, self.epoch = int(seed), bool(shuffle), int(epoch)
        self.rank, self.world_size = _dist_rank_world(rank, world_size)
        if batch_size < 1:
            raise ZhmaskError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(range(self.rank, _used(len(self.dataset), self.world_size, self.drop_last), self.world_size))

    def positions(self, worker: int = 0, num_workers: int = 1) -> np.ndarray:
        """Dataset positions that worker ``worker`` of ``num_workers`` yields this epoch, in order."""
        perm = epoch_permutation(len(self.dataset), self.seed, self.epoch, self.shuffle)
        mine = perm[self.rank:_used(len(self.dataset), self.world_size, self.drop_last):self.world_size]
        if num_workers <= 1:
            return mine
        k = self.batch_size
        chunk = np.arange(len(mine)) // k
        return mine[chunk % num_workers == worker]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, workers = 0, 1
        try:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
            if info is not None:
                worker, workers = info.id, info.num_workers
        except ImportError:
            pass
        ds = self.dataset
        for p in self.positions(worker, workers).tolist():
            yield ds[p]


# torch base classes are added on first use (module __getattr__), so importing zhmask.reader
# does not import torch; without torch the plain classes are returned (usable with numpy).
_TORCH_BASES = {
    "ShardDataset": (_ShardDatasetBase, ("torch.utils.data", "Dataset")),
    "ShardIterableDataset": (_ShardIterableDatasetBase, ("torch.utils.data", "IterableDataset")),
    "EpochSampler": (_EpochSamplerBase, ("torch.utils.data", "Sampler")),
}


def _torch_class(name: str) -> type:
    base, (mod, attr) = _TORCH_BASES[name]
    try:
        import importlib

        tbase = getattr(importlib.import_module(mod), attr)
        bases: tuple = (base, tbase)
    except ImportError:
        bases = (base,)
    ns: dict[str, Any] = {"__module__": __name__, "__qualname__": name, "__doc__": base.__doc__}
    if name == "EpochSampler":  # torch's Sampler.__init__ takes an optional data source only
        ns["__init__"] = base.__init__
    cls = type(name, bases, ns)
    globals()[name] = cls
    return cls


def __getattr__(name: str):
    if name in _TORCH_BASES:
        return _torch_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------- collation
def _round_up(n: int, k: int | None) -> int:
    return (n + k - 1) // k * k if k else n


class Collator:
    """``collate_fn`` for rows of a :class:`ShardDataset` (or any dicts with ``input_ids``,
    ``labels``, ``token_type_ids``...): pads to the batch's longest row rounded up to
    ``pad_to_multiple_of`` (None: no rounding) and returns int64 tensors ``input_ids`` (``pad_id``
    padding), ``attention_mask``, ``token_type_ids``, ``labels`` (-100 padding),
    ``next_sentence_label`` [B] when a row has a sentence label (rows without one get -100, the
    loss' ignore index; the name BertForPreTraining takes),
    ``token_labels`` [B, T] when a row has them (-100 elsewhere), ``doc_index`` [B, T] when a
    row has ``doc_bounds`` (clm): each token's document part in its row, -1 on padding, and
    ``task_id`` [B] when the rows carry one (a dataset wrapper's task number, e.g.
    ``trainers.ernie2``).

    ``masker`` (a :class:`zhmask.masking.dynamic.DynamicMasking`): every batch is masked afresh,
    original ids restored from ``labels`` then the strategy applied with the generator of (seed,
    epoch, example id) -- the static build's generator -- through the strategy's batched path.
    ``set_epoch(e)`` sets the masking epoch (also on the masker).  ``return_tensors="np"`` gives
    numpy arrays instead of torch tensors."""

    def __init__(self, pad_id: int = 0, pad_to_multiple_of: int | None = 8, masker=None,
                 return_tensors: str = "pt") -> None:
        if return_tensors not in ("pt", "np"):
            raise ZhmaskError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
        if pad_to_multiple_of is not None and int(pad_to_multiple_of) < 1:
            raise ZhmaskError(f"pad_to_multiple_of must be a positive integer or None, got {pad_to_multiple_of!r}")
        self.pad_id = int(pad_id)
        self.pad_to_multiple_of = int(pad_to_multiple_of) if pad_to_multiple_of else None
        self.masker = masker
        self.return_tensors = return_tensors
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The masking epoch (the masker's, where there is one)."""
        return int(self.masker.epoch) if self.masker is not None else self._epoch

    @property
    def columns(self) -> tuple[str, ...]:
        """The row columns this collator reads (with its masker's): what a dataset feeding it
        needs to decode (``ShardDataset(..., columns=collator.columns)``), leaving out the rest,
        such as the entity and source structs that cost most to turn into Python values."""
        own = ("input_ids", "token_type_ids", "labels", SENTENCE_LABEL, "token_labels", "doc_bounds")
        extra = self.masker.columns if self.masker is not None else ()
        return tuple(dict.fromkeys(own + tuple(extra)))

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)
        if self.masker is not None:
            self.masker.set_epoch(epoch)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        rows = list(rows)
        if self.masker is not None:
            masked = self.masker.mask_batch(rows, epoch=self.masker.epoch)
            ids_l = [m[0] for m in masked]
            lab_l = [m[1] for m in masked]
        else:
            ids_l = [r["input_ids"] for r in rows]
            lab_l = [r.get("labels") for r in rows]
        out = pad_rows(rows, ids_l, lab_l, self.pad_id, self.pad_to_multiple_of)
        if self.return_tensors == "pt":
            import torch

            out = {k: torch.from_numpy(v) for k, v in out.items()}
        return out


def part_index(doc_bounds, n: int) -> np.ndarray:
    """Per position of a row of ``n`` tokens, the number of its document part (``doc_bounds`` of a
    ``clm`` row: ``[0, e1, ..., n]``); -1 past the last bound."""
    db = np.asarray(doc_bounds, dtype=np.int64)
    out = np.full(n, -1, dtype=np.int64)
    if len(db) >= 2:
        m = min(int(db[-1]), n)
        out[:m] = np.searchsorted(db[1:], np.arange(m), side="right")
    return out


def pad_rows(rows: Sequence[Mapping[str, Any]], ids_l: Sequence, lab_l: Sequence, pad_id: int,
             pad_to_multiple_of: int | None) -> dict[str, np.ndarray]:
    """The padded int64 arrays of :class:`Collator` (the one padding implementation: the reader's
    Collator and DynamicMasking's collate_fn both use it)."""
    B = len(ids_l)
    lens = [len(x) for x in ids_l]
    T = _round_up(max(lens, default=0), pad_to_multiple_of)
    ids = np.full((B, T), pad_id, dtype=np.int64)
    labels = np.full((B, T), -100, dtype=np.int64)
    att = np.zeros((B, T), dtype=np.int64)
    tt = np.zeros((B, T), dtype=np.int64)
    has_tl = any(r.get("token_labels") is not None for r in rows)
    tl = np.full((B, T), -100, dtype=np.int64) if has_tl else None
    has_db = any(r.get("doc_bounds") is not None for r in rows)
    part = np.full((B, T), -1, dtype=np.int64) if has_db else None
    for i, (row, L) in enumerate(zip(rows, lens)):
        ids[i, :L] = ids_l[i]
        att[i, :L] = 1
        lab = lab_l[i]
        if lab is not None:
            labels[i, :L] = lab
        t = row.get("token_type_ids")
        if t is not None:
            tt[i, :L] = t
        if has_tl:
            v = row.get("token_labels")
            if v is not None:
                tl[i, :len(v)] = v  # type: ignore[index]
        if has_db:
            db = row.get("doc_bounds")
            part[i, :L] = part_index(db, L) if db is not None else 0  # type: ignore[index]
    out = {"input_ids": ids, "attention_mask": att, "token_type_ids": tt, "labels": labels}
    sent = [row.get(SENTENCE_LABEL) for row in rows]
    sent = [NO_LABEL if s is None or s < 0 else int(s) for s in sent]
    if any(s != NO_LABEL for s in sent):
        out[SENTENCE_LABEL] = np.array(sent, dtype=np.int64)
    if tl is not None:
        out["token_labels"] = tl
    if part is not None:
        out["doc_index"] = part
    if rows and "task_id" in rows[0]:   # set by a dataset wrapper (trainers.ernie2's task embedding)
        out["task_id"] = np.array([int(r["task_id"]) for r in rows], dtype=np.int64)
    return out
