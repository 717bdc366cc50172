"""What megatron and paddle share: the text of the ``mlm`` rows as token sequences, a sequence
a sentence, grouped into documents, spooled to files.

Sentences.  A shard does not store sentence boundaries for ``mlm`` rows, but the build packed
whole sentences into each row (a sentence longer than ``--max-seq-length`` was cut at a word
boundary), so each row is cut again after every token that ends a sentence by the build's own
rule (:mod:`zhmask.steps.sentences`: a run of 。！？!?；;… and the closing quotes and brackets
that follow) and at the row's end.  Not recovered: sentence ends at an English full stop or a
newline, which the build's splitter also uses (such a row gives one longer sequence).

Documents.  Consecutive exported rows with the same ``doc_id`` (the build writes a document's
rows together) form one document; a ``--packing full`` row, ``[CLS] end of d1 [SEP] d2 [SEP]
start of d3 [SEP]``, gives each segment to its document (``segment_sources``), so a document
that runs on into the next row stays one document.  The sequences are the rows' original ids
(:func:`zhmask.reader.original_ids`: the target masks while training) without ``[CLS]`` and
``[SEP]``.  Token ids, sequence lengths and document ends go to temporary files as they come,
so memory does not grow with the build; a format assembles its files from them at the end.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from zhmask.errors import ZhmaskError
from zhmask.export._base import SPLITS, Writer, batch_original_ids, flat_list

CHUNK = 1 << 20  # values per read when copying a spool


def sentence_tables(tok) -> tuple[np.ndarray, np.ndarray]:
    """(ends, terminal) boolean tables over the vocabulary: the tokens that end a sentence (made
    of 。！？!?；;… only) and those that may belong to a sentence's end (those and closing quotes
    or brackets); a ``##`` continuation piece counts as its characters."""
    from zhmask.steps.sentences import CLOSE_CHARS, END_CHARS

    ends = np.zeros(tok.vocab_size, dtype=bool)
    term = np.zeros(tok.vocab_size, dtype=bool)
    for i, t in enumerate(tok.id_to_token):
        c = t[2:] if t.startswith("##") and len(t) > 2 else t
        if c and all(ch in END_CHARS for ch in c):
            ends[i] = True
        if c and all(ch in END_CHARS or ch in CLOSE_CHARS for ch in c):
            term[i] = True
    return ends, term


def sentence_cuts(ids: np.ndarray, ends: np.ndarray, term: np.ndarray, quote: int | None = None) -> list[int]:
    """Exclusive end positions of the sentences of ``ids`` (the last is ``len(ids)``): a sentence
    ends after a run of terminal tokens that contains a sentence-ending one.  ``quote``: the id
    of ``"``, which opens as well as closes: as in ``zhmask.steps.sentences``, it ends a sentence
    only when it closes a quote (an odd number of ``"`` before it, counted from the start of
    ``ids``: a row begins at a sentence start)."""
    n = len(ids)
    cuts: list[int] = []
    if n == 0:
        return cuts
    t = term[ids]
    if quote is not None:
        q = np.flatnonzero(ids == quote)
        if len(q):
            t = t.copy()
            t[q[0::2]] = False  # the 1st, 3rd, ... " open a quote
    last = -1
    for e in np.flatnonzero(ends[ids]).tolist():
        if e <= last:
            continue
        j = e
        while j + 1 < n and t[j + 1]:
            j += 1
        cuts.append(j + 1)
        last = j
    if not cuts or cuts[-1] != n:
        cuts.append(n)
    return cuts


class SequenceSpool:
    """Token ids (``dtype``), sequence lengths (int32) and document ends (int64, cumulative
    sequence counts starting with 0: Megatron's ``document_indices``, PaddleNLP's ``docs``) of
    one split, appended to three files in ``directory``."""

    def __init__(self, directory: Path, split: str, dtype) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dtype = np.dtype(dtype)
        self.paths = {k: directory / f"{split}.{k}" for k in ("ids", "lens", "docs")}
        self.files = {k: open(p, "wb") for k, p in self.paths.items()}
        self.files["docs"].write(np.zeros(1, dtype=np.int64).tobytes())
        self.sequences = self.tokens = self.documents = 0
        self._doc: str | None = None
        self._doc_start = 0

    def add(self, doc_id: str, ids: np.ndarray, cuts: list[int]) -> None:
        """One row of document ``doc_id``: ``ids`` cut into sequences at ``cuts``."""
        if doc_id != self._doc:
            self._end_document()
            self._doc = doc_id
        lens = np.diff(np.asarray([0] + cuts, dtype=np.int64)).astype(np.int32)
        lens = lens[lens > 0]
        if len(lens) == 0:
            return
        self.files["ids"].write(np.ascontiguousarray(ids, dtype=self.dtype).tobytes())
        self.files["lens"].write(lens.tobytes())
        self.sequences += len(lens)
        self.tokens += int(len(ids))

    def _end_document(self) -> None:
        if self.sequences > self._doc_start:
            self.files["docs"].write(np.array([self.sequences], dtype=np.int64).tobytes())
            self.documents += 1
            self._doc_start = self.sequences

    def close(self) -> None:
        self._end_document()
        for f in self.files.values():
            f.close()

    def copy(self, kind: str, dst) -> None:
        """Append spool ``kind`` (ids, lens, docs) to the open binary file ``dst``."""
        with open(self.paths[kind], "rb") as src:
            shutil.copyfileobj(src, dst, 16 << 20)

    def chunks(self, kind: str, dtype):
        """Spool ``kind`` as numpy arrays of at most :data:`CHUNK` values."""
        dt = np.dtype(dtype)
        with open(self.paths[kind], "rb") as src:
            while True:
                buf = src.read(CHUNK * dt.itemsize)
                if not buf:
                    return
                yield np.frombuffer(buf, dtype=dt)

    def remove(self) -> None:
        for p in self.paths.values():
            p.unlink(missing_ok=True)


class SequenceWriter(Writer):
    """The ``mlm`` rows' original ids as sentences with document boundaries (module docstring);
    subclasses choose the id dtype (:meth:`dtype`), may rewrite a row's ids (:meth:`row_ids`)
    and write their files from the spools (:meth:`assemble`)."""

    @property
    def unmasked(self) -> bool:
        return True

    def default_tasks(self) -> list[str]:
        return ["mlm"]

    def check_tasks(self, tasks: list[str]) -> None:
        other = [t for t in tasks if t != "mlm"]
        if other:
            raise ZhmaskError(f"--format {self.name} exports the text of the mlm rows (sentences and documents); "
                              f"--tasks {','.join(other)} is not text to export this way")

    def dtype(self):
        raise NotImplementedError

    def prepare(self, tasks) -> None:
        if self.build.config.get("shuffle"):  # a document's rows are spread over the whole build
            raise ZhmaskError(f"--format {self.name} keeps each document's sentences together, but {self.build.out} "
                              "was built with its rows shuffled: rebuild it with --no-shuffle (the training "
                              "framework shuffles its samples itself)")
        tok = self.build.tokenizer
        self.ends, self.term = sentence_tables(tok)
        self.quote = tok.vocab.get('"')  # (opens as well as closes: sentence_cuts)
        self.tmp = self.out / ".spool"
        self.spools: dict[str, SequenceSpool] = {}
        dt = np.dtype(self.dtype())
        if tok.vocab_size - 1 > np.iinfo(dt).max:
            raise ZhmaskError(f"vocabulary of {tok.vocab_size} ids does not fit {dt}")

    def row_ids(self, batch: pa.RecordBatch, starts: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The flat ids a format writes (default: the original ids unchanged)."""
        return ids

    def write(self, split: str, part: int, batch: pa.RecordBatch) -> None:
        spool = self.spools.get(split)
        if spool is None:
            spool = self.spools[split] = SequenceSpool(self.tmp, split, self.dtype())
        starts, ids = batch_original_ids(batch)
        ids = self.row_ids(batch, starts, ids)
        _, words = flat_list(batch, "word_ids")
        docs = batch.column("doc_id").to_pylist()
        sources = batch.column("segment_sources").to_pylist()  # --packing full: a segment per document
        for k, doc in enumerate(docs):
            a, b = starts[k], starts[k + 1]
            row = ids[a:b]
            special = np.flatnonzero(words[a:b] < 0)  # [CLS] and every segment's [SEP]
            owners = [s["doc_id"] for s in sources[k]] if sources[k] else [doc]
            if len(special) - 1 != len(owners):
                eid = batch.column("example_id")[k].as_py()
                raise ZhmaskError(f"row {eid}: {len(special) - 1} segments but {len(owners)} documents "
                                  f"(zhmask verify the build)")
            for owner, s, e in zip(owners, special[:-1].tolist(), special[1:].tolist()):
                part = row[s + 1:e]
                spool.add(owner, part, sentence_cuts(part, self.ends, self.term, self.quote))

    def assemble(self, split: str, spool: SequenceSpool) -> list[Path]:
        raise NotImplementedError

    def finish(self) -> list[Path]:
        files: list[Path] = []
        for split in SPLITS:
            spool = self.spools.get(split)
            if spool is None:  # a split without rows gets no files (megatron-core cannot map an empty .bin)
                continue
            spool.close()
            files += self.assemble(split, spool)
            spool.remove()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return files
