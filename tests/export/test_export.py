"""zhmask export: every format read back by the library that owns it (or its documented format's
reader), on a small build of the iNews fixture, checking values: unmasked ids equal the text's
ids (a build of the same text without masking), the masked positions and ids of the bert
tfrecords equal the shard's labels, document boundaries count the documents, the hf validation
split is the trainers' validation.
"""
from __future__ import annotations

import json
import re
import struct
import unicodedata
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from zhmask.api import build_corpus
from zhmask.config import BuildConfig
from zhmask.export import ExportOptions, export
from zhmask.reader import Build, ShardDataset, original_ids
from zhmask.schema import SENTENCE_LABEL

VALIDATION = 0.2  # of 40 documents: a validation split that is not empty


@pytest.fixture(scope="module")
def builds(tmp_path_factory, fixtures):
    """The first 40 iNews documents, MLM + NSP, built twice: whole-word masking with two masked
    copies (--dupe-factor 2), and no masking (the original ids, to compare unmasked exports);
    and MLM rows filled across documents (--packing full).  In document order (--no-shuffle):
    Megatron and Paddle keep documents whole, and the tests compare rows in order."""
    root = tmp_path_factory.mktemp("export")
    src = root / "docs.jsonl"
    src.write_text("".join((fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines(True)[:40]),
                   encoding="utf-8")
    out = {}
    for name, masking, dupe in (("wwm", "wwm", 2), ("plain", "none", 1)):
        out[name] = build_corpus(BuildConfig(inputs=[str(src)], tasks=["mlm", "nsp"], masking=masking, dupe_factor=dupe,
                                             max_seq_length=64, docs_per_shard=15, shuffle=False,
                                             out=str(root / name))).out_dir
    out["full"] = build_corpus(BuildConfig(inputs=[str(src)], tasks=["mlm"], masking="wwm", packing="full",
                                           max_seq_length=64, docs_per_shard=15, shuffle=False,
                                           out=str(root / "full"))).out_dir
    return out


def _rows(build, split, tasks):
    ds = ShardDataset(build, split=split, validation=VALIDATION, tasks=tasks)
    return [ds[i] for i in range(len(ds))]


def _plain_ids(builds, split="train"):
    """example id -> input_ids of the unmasked build."""
    return {r["example_id"]: r["input_ids"] for r in _rows(builds["plain"], split, ["mlm", "nsp"])}


def _exp(build, fmt, out, **kw):
    return export(build, fmt, out, ExportOptions(validation=VALIDATION, **kw))


# ---------------------------------------------------------------------------- hf, parquet, jsonl
def test_hf_load_from_disk_splits_are_the_trainers(builds, tmp_path):
    from datasets import load_from_disk

    res = _exp(builds["wwm"], "hf", tmp_path / "hf")
    dd = load_from_disk(str(tmp_path / "hf"))
    assert set(dd) == {"train", "validation"}
    for split in ("train", "validation"):
        ds = ShardDataset(builds["wwm"], split=split, validation=VALIDATION)
        assert dd[split]["example_id"] == ds.example_ids() and len(ds) > 0
        assert res.rows[split] == len(ds)
        got = dd[split][:50]
        for k in range(50 if len(ds) >= 50 else len(ds)):
            row = ds[k]
            assert got["input_ids"][k] == row["input_ids"].tolist()  # masked as built
            assert got["labels"][k] == row["labels"].tolist()
            assert got[SENTENCE_LABEL][k] == row[SENTENCE_LABEL]
    assert res.bytes == sum(p.stat().st_size for p in (tmp_path / "hf").rglob("*") if p.is_file())


def test_parquet_unmask_decode(builds, tmp_path):
    import pyarrow.parquet as pq

    _exp(builds["wwm"], "parquet", tmp_path / "pq", unmask=True, decode=True)
    plain = _plain_ids(builds)
    t = pq.read_table(tmp_path / "pq" / "train")
    assert "labels" not in t.column_names and "text" in t.column_names
    rows = t.to_pylist()
    assert len(rows) == len(plain)  # one copy of each example of the --dupe-factor 2 build
    tok = Build(builds["wwm"]).tokenizer
    from zhmask.steps.normalize import vocab_equivalents

    eq = str.maketrans(vocab_equivalents(tok))

    def norm(text: str) -> str:  # the build's normalising, near enough: width, case, no spaces, “ to "
        return "".join(unicodedata.normalize("NFKC", text).lower().translate(eq).split())

    docs = [norm(json.loads(ln)["text"])
            for ln in (builds["wwm"].parent / "docs.jsonl").read_text(encoding="utf-8").splitlines()]
    for r in rows:
        assert r["example_id"].endswith("@0")
        assert r["input_ids"] == plain[r["example_id"][:-2]].tolist()
        assert tok.mask_id not in r["input_ids"]
        if r["task"] == "mlm" and "[UNK]" not in r["text"]:  # the text is the document's
            line = int(r["doc_id"].rsplit(":", 1)[1])
            assert norm(r["text"]) in docs[line - 1], r["text"]


def test_jsonl_rows_as_built(builds, tmp_path):
    _exp(builds["wwm"], "jsonl", tmp_path / "js", tasks=["nsp"])
    rows = [json.loads(ln) for p in sorted((tmp_path / "js" / "validation").glob("part-*.jsonl"))
            for ln in p.read_text(encoding="utf-8").splitlines()]
    want = _rows(builds["wwm"], "validation", ["nsp"])
    assert len(rows) == len(want) > 0
    for r, w in zip(rows, want):
        assert r["example_id"] == w["example_id"] and r["input_ids"] == w["input_ids"].tolist()
        assert r["labels"] == w["labels"].tolist() and r[SENTENCE_LABEL] == w[SENTENCE_LABEL] in (0, 1)
        assert "source_ids" not in r  # null columns are left out


# ---------------------------------------------------------------------------- megatron, paddle
def _documents(builds, split):
    """(doc_id -> the unmasked build's mlm rows' ids without [CLS]/[SEP], concatenated, in order;
    the number of rows)."""
    docs: OrderedDict[str, list] = OrderedDict()
    rows = _rows(builds["plain"], split, ["mlm"])
    for r in rows:
        docs.setdefault(r["doc_id"], []).extend(r["input_ids"][r["word_ids"] >= 0].tolist())
    return docs, len(rows)


def _check_sequences(seqs, doc_index, builds, split, tok):
    """The sequences are the documents' text, a document's sequences between its boundaries, cut
    after every sentence end (a sequence that does not end a sentence ends a row)."""
    from zhmask.export._sequences import sentence_tables

    docs, n_rows = _documents(builds, split)
    ends, term = sentence_tables(tok)
    assert doc_index[0] == 0 and len(doc_index) == len(docs) + 1  # a boundary per document
    assert len(seqs) > n_rows  # rows were cut into sentences
    for (doc, ids), a, b in zip(docs.items(), doc_index[:-1], doc_index[1:]):
        assert np.concatenate([seqs[i] for i in range(a, b)]).tolist() == ids, doc
    for s in seqs:
        e = np.flatnonzero(ends[s])
        assert len(e) == 0 or term[s[e[0]:]].all()  # nothing after a sentence's end
    assert sum(1 for s in seqs if not term[s[-1]]) <= n_rows


def test_megatron_documented_format(builds, tmp_path):
    from zhmask.export.megatron import read_indexed

    res = _exp(builds["wwm"], "megatron", tmp_path / "mg")
    assert sorted(p.name for p in res.files) == ["train_text_sentence.bin", "train_text_sentence.idx",
                                                 "validation_text_sentence.bin", "validation_text_sentence.idx"]
    raw = (tmp_path / "mg" / "train_text_sentence.idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00" and struct.unpack("<QB", raw[9:18]) == (1, 8)  # version 1, uint16
    tok = Build(builds["wwm"]).tokenizer
    for split in ("train", "validation"):
        ds = read_indexed(tmp_path / "mg" / f"{split}_text_sentence")
        assert ds.dtype == np.uint16
        _check_sequences([ds[i] for i in range(len(ds))], ds.document_indices.tolist(), builds, split, tok)


def test_megatron_rows_across_documents(builds, tmp_path):
    """--packing full rows ([CLS] end of d1 [SEP] d2 [SEP] ...) give each segment to its document:
    the same documents, with the same text, as the build that keeps documents apart."""
    from zhmask.export.megatron import read_indexed

    export(builds["full"], "megatron", tmp_path / "mg", ExportOptions(validation=0))
    ds = read_indexed(tmp_path / "mg" / "train_text_sentence")
    _check_sequences([ds[i] for i in range(len(ds))], ds.document_indices.tolist(), builds, None,
                     Build(builds["full"]).tokenizer)


def test_megatron_core_reads_it(builds, tmp_path):
    """megatron-core's own IndexedDataset reads the export, and its IndexedDatasetBuilder writes
    the same bytes from the same sequences (skipped where megatron-core is not installed)."""
    pytest.importorskip("megatron.core.datasets.indexed_dataset")
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder

    _exp(builds["wwm"], "megatron", tmp_path / "mg")
    prefix = str(tmp_path / "mg" / "train_text_sentence")
    ds = IndexedDataset(prefix)
    docs, _ = _documents(builds, "train")
    assert len(ds.document_indices) == len(docs) + 1
    ref = IndexedDatasetBuilder(str(tmp_path / "ref.bin"), dtype=np.uint16)
    for (doc, ids), a, b in zip(docs.items(), ds.document_indices[:-1], ds.document_indices[1:]):
        seqs = [ds[i] for i in range(a, b)]
        assert np.concatenate(seqs).tolist() == ids
        for s in seqs:
            ref.add_item(torch.from_numpy(s.astype(np.int64)))
        ref.end_document()
    ref.finalize(str(tmp_path / "ref.idx"))
    assert (tmp_path / "ref.bin").read_bytes() == Path(prefix + ".bin").read_bytes()
    assert (tmp_path / "ref.idx").read_bytes() == Path(prefix + ".idx").read_bytes()


def test_paddle_ernie_arrays(builds, tmp_path):
    _exp(builds["wwm"], "paddle", tmp_path / "pd")
    tok = Build(builds["wwm"]).tokenizer
    back = np.array([tok.vocab.get(t[2:], i) if re.fullmatch("##[\u4e00-\u9fa5]", t) else i  # ERNIE's to_chinese_char
                     for i, t in enumerate(tok.id_to_token)], dtype=np.int64)
    for split in ("train", "validation"):
        ids = np.load(tmp_path / "pd" / f"{split}_ids.npy", mmap_mode="r")
        idx = np.load(tmp_path / "pd" / f"{split}_idx.npz")
        lens, docs = idx["lens"], idx["docs"]
        assert ids.dtype == np.uint16 and lens.dtype == np.int32 and docs.dtype == np.int64
        assert int(lens.sum()) == len(ids)
        pointers = np.concatenate([[0], np.cumsum(lens)])  # as PaddleNLP's MMapIndexedDataset
        seqs = [back[np.asarray(ids[pointers[i]:pointers[i + 1]])] for i in range(len(lens))]
        _check_sequences(seqs, docs.tolist(), builds, split, tok)
        marked = np.asarray(ids) != back[np.asarray(ids)]
        assert marked.sum() > 0.2 * len(ids)  # continuation characters of words are ## pieces
    _exp(builds["wwm"], "paddle", tmp_path / "pd0", word_marks=False)
    plain = np.load(tmp_path / "pd0" / "train_ids.npy")
    assert plain.tolist() == back[np.load(tmp_path / "pd" / "train_ids.npy")].tolist()


# ---------------------------------------------------------------------------- tfrecord
def _records(path: Path, description):
    import crc32c
    from tfrecord.reader import tfrecord_loader
    from tfrecord.writer import TFRecordWriter

    data = path.read_bytes()  # every record's framing checks out (length and data CRC32C)
    o = 0
    while o < len(data):
        (n,) = struct.unpack("<Q", data[o:o + 8])
        assert data[o + 8:o + 12] == TFRecordWriter.masked_crc(data[o:o + 8])
        assert data[o + 12 + n:o + 16 + n] == TFRecordWriter.masked_crc(data[o + 12:o + 12 + n])
        o += 16 + n
    assert crc32c.crc32c(b"") == 0
    return list(tfrecord_loader(str(path), None, description))


def test_tfrecord_bert_masks_are_the_shards(builds, tmp_path):
    res = _exp(builds["wwm"], "tfrecord", tmp_path / "tf")
    desc = {"input_ids": "int", "input_mask": "int", "segment_ids": "int", "masked_lm_positions": "int",
            "masked_lm_ids": "int", "masked_lm_weights": "float", "next_sentence_labels": "int"}
    recs = [r for p in sorted((tmp_path / "tf" / "train").glob("*.tfrecord")) for r in _records(p, desc)]
    want = _rows(builds["wwm"], "train", ["nsp"])  # the default task: nsp, the build's masks
    assert len(recs) == len(want) == res.rows["train"] > 0
    n = Build(builds["wwm"]).max_seq_length
    m = len(recs[0]["masked_lm_ids"])
    assert m == max(int((r["labels"] != -100).sum()) for r in _rows(builds["wwm"], None, ["nsp"]))
    for rec, row in zip(recs, want):
        L = len(row["input_ids"])
        assert len(rec["input_ids"]) == n and rec["input_ids"][:L].tolist() == row["input_ids"].tolist()
        assert not rec["input_ids"][L:].any() and rec["input_mask"].tolist() == [1] * L + [0] * (n - L)
        assert rec["segment_ids"][:L].tolist() == row["token_type_ids"].tolist()
        pos = np.flatnonzero(row["labels"] != -100)
        k = len(pos)
        assert rec["masked_lm_positions"][:k].tolist() == pos.tolist() and not rec["masked_lm_positions"][k:].any()
        assert rec["masked_lm_ids"][:k].tolist() == row["labels"][pos].tolist()
        assert rec["masked_lm_weights"].tolist() == [1.0] * k + [0.0] * (m - k)
        assert rec["next_sentence_labels"].tolist() == [row[SENTENCE_LABEL]]


def test_tfrecord_electra_is_unmasked(builds, tmp_path):
    _exp(builds["wwm"], "tfrecord", tmp_path / "tf", layout="electra", max_seq_length=80)
    desc = {"input_ids": "int", "input_mask": "int", "segment_ids": "int"}
    recs = [r for p in sorted((tmp_path / "tf" / "validation").glob("*.tfrecord")) for r in _records(p, desc)]
    plain = [r["input_ids"] for r in _rows(builds["plain"], "validation", ["mlm"])]
    assert len(recs) == len(plain) > 0
    for rec, ids in zip(recs, plain):
        assert len(rec["input_ids"]) == 80 and rec["input_ids"][:len(ids)].tolist() == ids.tolist()
        assert set(rec) == set(desc)


def test_document_formats_refuse_a_shuffled_build(tmp_path, fixtures):
    """Megatron and Paddle keep a document's sentences together: a shuffled build (the default)
    spreads them, so the export stops with one line naming --no-shuffle; row formats export it."""
    out = tmp_path / "b"
    build_corpus(BuildConfig(inputs=[str(fixtures / "inews_150.jsonl")], max_seq_length=64, out=str(out)))
    for fmt in ("megatron", "paddle"):
        code, _, err = run_cli("export", str(out), "--format", fmt, "--out", str(tmp_path / fmt))
        assert code == 2 and len(err.strip().splitlines()) == 1 and "--no-shuffle" in err, err
        assert not (tmp_path / fmt).exists()
    code, _, err = run_cli("export", str(out), "--format", "jsonl", "--out", str(tmp_path / "jsonl"))
    assert code == 0, err


def test_max_predictions_too_small_is_refused(builds, tmp_path):
    code, _, err = run_cli("export", str(builds["wwm"]), "--format", "tfrecord", "--out", str(tmp_path / "t"),
                           "--max-predictions-per-seq", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--max-predictions-per-seq" in err
    assert not (tmp_path / "t").exists() and not (tmp_path / "t.partial").exists()


# ---------------------------------------------------------------------------- the command
def test_cli_summary_and_deterministic(builds, tmp_path):
    """Two exports of the same build are byte-for-byte the same; the summary is one line."""
    for k in range(2):
        for fmt in ("megatron", "paddle", "tfrecord", "parquet"):
            code, out, err = run_cli("export", str(builds["wwm"]), "--format", fmt, "--validation", str(VALIDATION),
                                     "--out", str(tmp_path / f"r{k}" / fmt))
            assert code == 0, err
            assert out.startswith(f"zhmask export {fmt}: ") and " files, " in out and out.count("\n") == 1
    files = [{p.relative_to(tmp_path / f"r{k}").as_posix(): p.read_bytes() for p in (tmp_path / f"r{k}").rglob("*")
              if p.is_file()} for k in range(2)]
    assert len(files[0]) == 4 + 4 + 6 + 6 and files[0] == files[1]  # 3 shards x 2 splits: tfrecord, parquet


def test_cli_errors_one_line(builds, tmp_path):
    cases = [
        (("export", str(builds["wwm"]), "--format", "caffe", "--out", str(tmp_path / "a")), "caffe"),
        (("export", str(tmp_path / "missing"), "--format", "hf", "--out", str(tmp_path / "a")), "missing"),
        (("export", str(builds["wwm"]), "--format", "megatron", "--tasks", "nsp", "--out", str(tmp_path / "a")), "mlm"),
        (("export", str(builds["wwm"]), "--format", "jsonl", "--tasks", "sop", "--out", str(tmp_path / "a")), "sop"),
        (("export", str(builds["wwm"]), "--format", "jsonl", "--validation", "2", "--out", str(tmp_path / "a")), "validation"),
        (("export", str(builds["wwm"]), "--format", "paddle", "--unmask", "--out", str(tmp_path / "a")), "--unmask"),
        (("export", str(builds["wwm"]), "--format", "jsonl", "--out", str(builds["wwm"] / "x")), "overlaps"),
    ]
    for args, needle in cases:
        code, _, err = run_cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, (args, err)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    code, _, err = run_cli("export", str(builds["wwm"]), "--format", "jsonl", "--out", str(full))
    assert code == 2 and "--overwrite" in err and (full / "keep.txt").exists()
    code, _, err = run_cli("export", str(builds["wwm"]), "--format", "jsonl", "--validation", "0", "--out", str(full),
                           "--overwrite")
    assert code == 0 and not (full / "keep.txt").exists() and sorted(p.name for p in full.iterdir()) == ["train"]


def test_progress_counts_rows_of_the_build(builds, tmp_path):
    """The command's progress (zhmask.cli.progress_bar, on a terminal) reaches every row of the build."""
    from zhmask.commands.export import _Progress

    with _Progress(enabled=True) as p:
        export(builds["wwm"], "jsonl", tmp_path / "js", ExportOptions(validation=0), progress=p)
        task = p.bar.tasks[0]
        assert task.completed == task.total == Build(builds["wwm"]).rows and task.percentage == 100
    assert _Progress(enabled=False).bar is None


def test_original_ids_is_the_one_rule():
    ids = np.array([101, 103, 5, 103, 102], dtype=np.int32)
    labels = np.array([-100, 7, -100, 9, -100], dtype=np.int32)
    assert original_ids(ids, labels).tolist() == [101, 7, 5, 9, 102] and original_ids(ids, labels).dtype == np.int32
    assert original_ids(ids, None) is not None and original_ids(ids, labels[:2]).tolist() == ids.tolist()
