"""``--format tfrecord``: TFRecord files of ``tf.train.Example`` records, one file per shard
(``OUT/<split>/part-NNNNN.tfrecord``), in the feature layout of

* ``--layout bert`` (google-research/bert's ``create_pretraining_data.py``, read by its
  ``run_pretraining.py``): ``input_ids``, ``input_mask``, ``segment_ids`` (int64, padded with 0
  to ``max_seq_length``), ``masked_lm_positions``, ``masked_lm_ids`` (int64, padded with 0 to
  ``max_predictions_per_seq``), ``masked_lm_weights`` (float, 1.0 per prediction, 0.0 padding)
  and ``next_sentence_labels`` (int64, one value).  The masks are the build's (static, BERT's
  way): ``input_ids`` as built, the predictions where ``labels != -100``.  The NSP label is the
  row's sentence class (``SENTENCE_LABEL``; zhmask's ``nsp``: 0 = B follows A, 1 = random B,
  BERT's convention; ``sop``: 1 = swapped, ALBERT's); rows without one (``mlm``: ``NO_LABEL``) get 0.  Default tasks: ``nsp`` when the
  build has it, else ``sop``, else ``mlm``.
* ``--layout electra`` (ELECTRA's ``build_pretraining_dataset.py``): ``input_ids``,
  ``input_mask``, ``segment_ids`` (int64, padded to ``max_seq_length``) of the original ids:
  ELECTRA masks while training.  Default task: ``mlm``.

``max_seq_length`` is the build's (``--max-seq-length`` to pad further); ``max_predictions_per_seq``
is by default the most predictions of any exported row (read from the ``labels`` column
first), so no prediction is dropped; a smaller ``--max-predictions-per-seq`` that a row exceeds
is refused.  Records are serialised deterministically (sorted feature map) with the ``tfrecord``
library's protobuf classes and framed (length, masked CRC32C) by its ``masked_crc``; read them
with ``tfrecord.tfrecord_loader`` (or TensorFlow's ``tf.data.TFRecordDataset``)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyarrow as pa

from zhmask.errors import ZhmaskError
from zhmask.export._base import Writer as _Writer
from zhmask.export._base import batch_original_ids, flat_list
from zhmask.export._table import PartFiles
from zhmask.reader import batch_selection, open_shard
from zhmask.schema import NO_LABEL, SENTENCE_LABEL

LAYOUTS = ("bert", "electra")
BERT_FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
                 "masked_lm_weights", "next_sentence_labels")
ELECTRA_FEATURES = ("input_ids", "input_mask", "segment_ids")


class Writer(_Writer):
    name = "tfrecord"

    def __init__(self, build, out: Path, opts) -> None:
        super().__init__(build, out, opts)
        if opts.layout not in LAYOUTS:
            raise ZhmaskError(f"--layout must be one of {', '.join(LAYOUTS)}, got {opts.layout!r}")
        try:
            from tfrecord import example_pb2
            from tfrecord.writer import TFRecordWriter
        except ModuleNotFoundError:
            raise ZhmaskError("--format tfrecord needs the tfrecord library: pip install 'zhmask[export]'") from None
        self.pb, self.crc = example_pb2, TFRecordWriter.masked_crc
        self.parts = PartFiles(out, "tfrecord", lambda p: open(p, "wb"), lambda f: f.close())
        self.seq_len = int(opts.max_seq_length or build.max_seq_length)
        self.max_pred = 0

    @property
    def unmasked(self) -> bool:
        return self.opts.layout == "electra"

    def default_tasks(self) -> list[str]:
        if self.opts.layout == "electra":
            return ["mlm"]
        for t in ("nsp", "sop", "mlm"):
            if t in self.build.tasks:
                return [t]
        return ["mlm"]

    def prepare(self, tasks) -> None:
        if self.opts.layout != "bert":
            return
        most = 0  # the most predictions of a row of these tasks: one pass over two columns
        for path in self.build.shards:
            with open_shard(path) as reader:
                for batch in reader:
                    keep = batch_selection(batch, None, 0.0, tasks)
                    if not keep.any():
                        continue
                    sub = batch.select(["labels"]).filter(pa.array(keep))
                    starts, labels = flat_list(sub, "labels")
                    hits = np.concatenate([[0], np.cumsum(labels != -100)])
                    most = max(most, int((hits[starts[1:]] - hits[starts[:-1]]).max(initial=0)))
        if self.opts.max_predictions is None:
            self.max_pred = max(most, 1)
        else:
            self.max_pred = int(self.opts.max_predictions)
            if most > self.max_pred:
                raise ZhmaskError(f"a row has {most} masked positions, more than --max-predictions-per-seq "
                                  f"{self.max_pred}; raise it (or leave it out: the build's most)")

    def _ints(self, values) -> object:
        return self.pb.Feature(int64_list=self.pb.Int64List(value=values))

    def _pad(self, values: np.ndarray, n: int) -> list[int]:
        out = np.zeros(n, dtype=np.int64)
        out[:len(values)] = values
        return out.tolist()

    def write(self, split: str, part: int, batch: pa.RecordBatch) -> None:
        f = self.parts.get(split, part)
        bert = self.opts.layout == "bert"
        if bert:
            starts, ids = flat_list(batch, "input_ids")
            _, labels = flat_list(batch, "labels")
        else:
            starts, ids = batch_original_ids(batch)
        _, types = flat_list(batch, "token_type_ids")
        sent = batch.column(SENTENCE_LABEL).to_numpy(zero_copy_only=False)
        n = self.seq_len
        for k in range(batch.num_rows):
            a, b = int(starts[k]), int(starts[k + 1])
            if b - a > n:
                raise ZhmaskError(f"a row of {b - a} tokens is longer than --max-seq-length {n}")
            feats = {"input_ids": self._ints(self._pad(ids[a:b], n)),
                     "input_mask": self._ints(self._pad(np.ones(b - a, dtype=np.int64), n)),
                     "segment_ids": self._ints(self._pad(types[a:b], n))}
            if bert:
                lab = labels[a:b]
                pos = np.flatnonzero(lab != -100)
                m = self.max_pred
                feats["masked_lm_positions"] = self._ints(self._pad(pos, m))
                feats["masked_lm_ids"] = self._ints(self._pad(lab[pos], m))
                w = np.zeros(m, dtype=np.float32)
                w[:len(pos)] = 1.0
                feats["masked_lm_weights"] = self.pb.Feature(float_list=self.pb.FloatList(value=w.tolist()))
                feats["next_sentence_labels"] = self._ints([0 if sent[k] == NO_LABEL else int(sent[k])])
            rec = self.pb.Example(features=self.pb.Features(feature=feats)).SerializeToString(deterministic=True)
            head = struct.pack("<Q", len(rec))
            f.write(head + self.crc(head) + rec + self.crc(rec))

    def finish(self) -> list[Path]:
        return self.parts.close()
