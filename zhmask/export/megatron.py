"""``--format megatron``: Megatron-LM's indexed dataset, what its ``tools/preprocess_data.py
--split-sentences`` writes: ``OUT/<split>_text_sentence.bin`` and ``.idx``, a sequence a
sentence of the ``mlm`` rows' original ids (Megatron masks while training), document boundaries
(see :mod:`zhmask.export._sequences` for how sentences and documents are found).

``.bin``: the token ids back to back (uint16 when the vocabulary has fewer than 65,500 ids, as
Megatron's ``DType.optimal_dtype`` chooses, else int32).  ``.idx`` (little-endian): the header
``MMIDIDX\\x00\\x00``, version 1 (uint64), the dtype code (uint8: 8 uint16, 4 int32), the sequence
count and the document count (uint64 each; documents + 1), the sequence lengths (int32), the
sequence pointers (int64 byte offsets into ``.bin``) and the document indices (int64: 0, then
the sequence count at the end of each document).  Read with megatron-core's
``megatron.core.datasets.indexed_dataset.IndexedDataset(OUT/train_text_sentence)`` or
:func:`read_indexed`.  The .bin data is written as it comes and the index from spooled lengths:
memory stays bounded."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.export._sequences import SequenceSpool, SequenceWriter

HEADER = b"MMIDIDX\x00\x00"
VERSION = 1
# megatron.core.datasets.indexed_dataset.DType
DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
               np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8}


def optimal_dtype(vocab_size: int):
    """Megatron's ``DType.optimal_dtype``: uint16 below 65,500 ids, else int32."""
    return np.uint16 if vocab_size < 65500 else np.int32


class Writer(SequenceWriter):
    name = "megatron"

    def dtype(self):
        return optimal_dtype(self.build.vocab_size)

    def assemble(self, split: str, spool: SequenceSpool) -> list[Path]:
        prefix = self.out / f"{split}_text_sentence"
        bin_path, idx_path = prefix.with_suffix(".bin"), prefix.with_suffix(".idx")
        spool.paths.pop("ids").replace(bin_path)  # the .bin is the ids spool itself
        size = spool.dtype.itemsize
        with open(idx_path, "wb") as f:
            f.write(HEADER)
            f.write(struct.pack("<Q", VERSION))
            f.write(struct.pack("<B", DTYPE_CODES[spool.dtype]))
            f.write(struct.pack("<Q", spool.sequences))
            f.write(struct.pack("<Q", spool.documents + 1))
            spool.copy("lens", f)
            offset = 0
            for lens in spool.chunks("lens", np.int32):  # byte offset of each sequence
                ptr = np.empty(len(lens), dtype=np.int64)
                ptr[0] = offset
                np.cumsum(lens[:-1].astype(np.int64) * size, out=ptr[1:])
                ptr[1:] += offset
                offset = int(ptr[-1]) + int(lens[-1]) * size
                f.write(ptr.tobytes())
            spool.copy("docs", f)
        return [bin_path, idx_path]


class IndexedFile:
    """An indexed dataset read from its documented format (no megatron-core needed):
    ``sequence_lengths``, ``sequence_pointers``, ``document_indices`` (memory-mapped numpy
    arrays), ``dtype``, ``len(ds)`` and ``ds[i]`` (sequence ``i``'s ids)."""

    def __init__(self, prefix: str | Path) -> None:
        prefix = str(prefix)
        idx = Path(prefix + ".idx")
        try:
            with open(idx, "rb") as f:
                head = f.read(9 + 8 + 1 + 8 + 8)
        except OSError as exc:
            raise ZhmaskError(f"{idx}: {exc.strerror}") from None
        if len(head) < 34 or head[:9] != HEADER:
            raise ZhmaskError(f"{idx}: not a Megatron indexed dataset index (bad header)")
        (version,) = struct.unpack("<Q", head[9:17])
        if version != VERSION:
            raise ZhmaskError(f"{idx}: index version {version}, expected {VERSION}")
        codes = {v: k for k, v in DTYPE_CODES.items()}
        self.dtype = codes[head[17]]
        n, docs = struct.unpack("<QQ", head[18:34])
        buf = np.memmap(idx, mode="r", dtype=np.uint8)
        o = 34
        self.sequence_lengths = np.frombuffer(buf, dtype=np.int32, count=n, offset=o)
        o += 4 * n
        self.sequence_pointers = np.frombuffer(buf, dtype=np.int64, count=n, offset=o)
        o += 8 * n
        self.document_indices = np.frombuffer(buf, dtype=np.int64, count=docs, offset=o)
        size = Path(prefix + ".bin").stat().st_size
        self.bin = np.memmap(prefix + ".bin", mode="r", dtype=self.dtype) if size else np.zeros(0, self.dtype)

    def __len__(self) -> int:
        return len(self.sequence_lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.sequence_pointers[i]) // self.dtype.itemsize
        return np.asarray(self.bin[start:start + int(self.sequence_lengths[i])])


def read_indexed(prefix: str | Path) -> IndexedFile:
    """The indexed dataset at ``prefix`` (``prefix.idx`` / ``prefix.bin``), read from its format."""
    return IndexedFile(prefix)
