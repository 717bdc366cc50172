"""``--format paddle``: PaddleNLP's ERNIE pretraining input, what its data tools'
``create_pretraining_data.py --split_sentences --chinese --cn_whole_word_segment`` writes and
``MMapIndexedDataset`` (``data_tools/dataset_utils.py``) reads: ``OUT/<split>_ids.npy`` (all
token ids back to back; uint16 when the vocabulary has fewer than 65,535 ids, else int32) and
``OUT/<split>_idx.npz`` with ``lens`` (int32, tokens per sentence) and ``docs`` (int64: 0, then
the sentence count at the end of each document).  A sequence a sentence of the ``mlm`` rows'
original ids (ERNIE masks while training; sentences and documents: :mod:`zhmask.export._sequences`).

Word marks (default; ``--no-word-marks`` leaves them out): like ``--cn_whole_word_segment``,
a Chinese character (U+4E00..U+9FA5) that continues a word (the shard's ``chinese_ref``: zhmask's
segmentation) is written as its ``##`` piece when the vocabulary has one, so ERNIE's whole-word masking
(``to_chinese_char``) masks zhmask's words and maps the pieces back to the characters.

Both files are assembled from spools with numpy's documented ``.npy`` header and a stored zip
(what ``np.savez`` writes), with a fixed timestamp so the output is byte-for-byte deterministic;
``np.load`` reads them."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from zhmask.export._base import flat_list
from zhmask.export._sequences import SequenceSpool, SequenceWriter


def is_ernie_cjk(ch: str) -> bool:
    """The characters ERNIE's ``to_chinese_char`` maps back from ``##`` pieces (U+4E00..U+9FA5)."""
    return "\u4e00" <= ch <= "\u9fa5"


def _npy_header(f, dtype, n: int) -> None:
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                             "fortran_order": False, "shape": (int(n),)})


class Writer(SequenceWriter):
    name = "paddle"

    def dtype(self):
        return np.uint16 if self.build.vocab_size < 2 ** 16 - 1 else np.int32

    def prepare(self, tasks) -> None:
        super().prepare(tasks)
        tok = self.build.tokenizer
        self.piece = np.arange(tok.vocab_size, dtype=np.int64)  # CJK character id -> its "##" piece's id
        for i, t in enumerate(tok.id_to_token):
            j = tok.vocab.get("##" + t) if len(t) == 1 and is_ernie_cjk(t) else None
            if j is not None:
                self.piece[i] = j

    def row_ids(self, batch: pa.RecordBatch, starts: np.ndarray, ids: np.ndarray) -> np.ndarray:
        if not self.opts.word_marks:
            return ids
        ref_starts, refs = flat_list(batch, "chinese_ref")
        if len(refs) == 0:
            return ids
        row = np.repeat(np.arange(len(ref_starts) - 1), np.diff(ref_starts))
        pos = starts[row] + refs  # chinese_ref: positions in the row's input_ids
        out = ids.copy()
        out[pos] = self.piece[ids[pos]].astype(ids.dtype)
        return out

    def assemble(self, split: str, spool: SequenceSpool) -> list[Path]:
        ids_path = self.out / f"{split}_ids.npy"
        idx_path = self.out / f"{split}_idx.npz"
        with open(ids_path, "wb") as f:
            _npy_header(f, spool.dtype, spool.tokens)
            spool.copy("ids", f)
        with zipfile.ZipFile(idx_path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for key, dt, n in (("lens", np.int32, spool.sequences), ("docs", np.int64, spool.documents + 1)):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with z.open(info, "w", force_zip64=True) as f:
                    _npy_header(f, dt, n)
                    spool.copy(key, f)
        return [ids_path, idx_path]
