"""zhmask.reader: builds read through one module (trainers, ``zhmask verify``, dynamic masking).

A build is refused in one line when it has no manifest or another schema version; rows are
memory-mapped; the validation split is held out by document and stable across processes; the
iterable dataset and the sampler give every row once per epoch across workers x ranks in an
order fixed by (seed, epoch); the collator pads, and with a masker reproduces the static build's
masks at epoch 0 through the batched masking path.
"""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from conftest import run_cli
from zhmask.api import build_corpus
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.reader import Build, Collator, is_validation
from zhmask.record import SENTENCE_LABEL
from zhmask.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory, fixtures) -> Path:
    """inews_150, MLM + NSP, whole-word masking, three shards."""
    out = tmp_path_factory.mktemp("reader") / "o"
    build_corpus(BuildConfig(inputs=[str(fixtures / "inews_150.jsonl")], tasks=["mlm", "nsp"], masking="wwm",
                             docs_per_shard=50, out=str(out)))
    return out


@pytest.fixture(scope="module")
def built_plain(tmp_path_factory, fixtures) -> Path:
    """The same build with uncompressed shards (``--compression none``): memory-mapped."""
    out = tmp_path_factory.mktemp("reader") / "plain"
    build_corpus(BuildConfig(inputs=[str(fixtures / "inews_150.jsonl")], tasks=["mlm", "nsp"], masking="wwm",
                             docs_per_shard=50, compression="none", out=str(out)))
    return out


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _all_rows(out: Path) -> list[dict]:
    rows = []
    m = json.loads((out / "manifest.json").read_text())
    for s in m["shards"]:
        with pa.memory_map(str(out / s["file"])) as src:
            rows += ipc.open_stream(src).read_all().to_pylist()
    return rows


# ---------------------------------------------------------------------------- the build
def test_build_facts(built):
    b = Build(built)
    m = json.loads((built / "manifest.json").read_text())
    assert b.out == built and b.manifest == m and b.config == m["config"]
    assert b.shards == [built / s["file"] for s in m["shards"]] and len(b.shards) == 3
    assert b.tasks == {"mlm": m["examples_by_task"]["mlm"], "nsp": m["examples_by_task"]["nsp"]}
    assert sum(b.tasks.values()) == m["examples_written"]
    vocab = b.vocab_path.read_text(encoding="utf-8").split("\n")
    assert vocab[b.pad_id] == "[PAD]" and vocab[b.mask_id] == "[MASK]" and vocab[b.cls_id] == "[CLS]"
    assert vocab[b.sep_id] == "[SEP]" and b.vocab_size == 21128


def test_import_without_torch(built):
    """Importing the reader and using Build / is_validation does not import torch."""
    code = ("import sys; import zhmask.reader as r; b = r.Build(sys.argv[1]); b.pad_id; "
            "r.is_validation('a.txt:1#mlm0', 0.5); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code, str(built)], check=True, cwd=REPO)


def test_wrong_schema_version_is_refused_in_one_line(built, tmp_path):
    out = _copy(built, tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    m["schema_version"] = "1"
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ZhmaskError, match=rf"schema version 1 \(this zhmask reads {SCHEMA_VERSION}\)") as exc:
        Build(out)
    assert "\n" not in str(exc.value)
    code, stdout, err = run_cli("verify", str(out))
    assert code == 2 and err.count("\n") == 1 and f"schema version 1 (this zhmask reads {SCHEMA_VERSION})" in err


def test_a_shard_of_another_schema_version_is_refused(built, tmp_path):
    out = _copy(built, tmp_path)
    shard = out / "data" / "shard-00001.arrow"
    with pa.memory_map(str(shard)) as src:
        table = ipc.open_stream(src).read_all()
    meta = dict(table.schema.metadata)
    meta[b"zhmask.schema_version"] = b"1"
    table = table.replace_schema_metadata(meta)
    tmp = shard.with_name("rewritten.tmp")  # not over the mapped file: a new file, renamed
    with ipc.new_stream(str(tmp), table.schema) as w:
        w.write_table(table)
    tmp.replace(shard)
    with pytest.raises(ZhmaskError, match=rf"shard-00001.arrow: schema version 1 \(this zhmask reads {SCHEMA_VERSION}\)"):
        Build(out)
    code, _, err = run_cli("verify", str(out))
    assert code == 2 and err.count("\n") == 1 and "shard-00001.arrow: schema version 1" in err


def test_missing_manifest_or_shards(built, tmp_path):
    out = _copy(built, tmp_path)
    (out / "data" / "shard-00002.arrow").unlink()
    with pytest.raises(ZhmaskError, match="shard-00002.arrow: listed in the manifest but missing"):
        Build(out)
    (out / "manifest.json").unlink()
    with pytest.raises(ZhmaskError, match="manifest.json missing: the build never finished"):
        Build(out)
    with pytest.raises(ZhmaskError, match="is not a directory"):
        Build(tmp_path / "nowhere")
    code, _, err = run_cli("verify", str(out))  # verify's own report: a violation, exit code 1
    assert code == 1 and "never finished" in err


def test_verify_reads_through_the_reader(built):
    from zhmask.commands.verify import verify_build

    assert verify_build(built) == []
    code, stdout, _ = run_cli("verify", str(built))
    assert code == 0 and "OK" in stdout


# ---------------------------------------------------------------------------- rows
def test_rows_are_the_shards_rows_memory_mapped(built_plain):
    from zhmask.reader import ShardDataset

    built = built_plain
    ds = ShardDataset(built, split=None)
    rows = _all_rows(built)
    assert len(ds) == len(rows)
    for i in (0, 1, 777, len(rows) - 1):
        got, want = ds[i], rows[i]
        assert got["example_id"] == want["example_id"] and got["task"] == want["task"]
        # the bundled vocabulary (21,128 ids) and 128 tokens a row: int16 ids and positions
        assert got["input_ids"].dtype == np.int16 and got["token_type_ids"].dtype == np.int8
        assert got["word_ids"].dtype == np.int16 and got["labels"].dtype == np.int16
        for k in ("input_ids", "token_type_ids", "word_ids", "labels", "chinese_ref"):
            assert got[k].tolist() == want[k]
        assert got[SENTENCE_LABEL] == want[SENTENCE_LABEL] and got["entities"] == want["entities"]
        assert got["token_labels"] is None and want["token_labels"] is None
    assert ds[-1]["example_id"] == rows[-1]["example_id"]
    with pytest.raises(IndexError):
        ds[len(rows)]
    # views of the mapped file, not copies: the array does not own its data, the shards are mapped
    # into this process and reading every row allocates next to nothing from Arrow's pool
    assert not ds[0]["input_ids"].flags.owndata
    maps = Path("/proc/self/maps")
    if maps.exists():
        mapped = maps.read_text()
        assert all(str(p) in mapped for p in ds.build.shards)
    size = sum(p.stat().st_size for p in ds.build.shards)
    before = pa.total_allocated_bytes()
    ds2 = ShardDataset(built, split=None)
    n_tok = sum(len(ds2[i]["input_ids"]) for i in range(len(ds2)))
    assert n_tok == sum(len(r["input_ids"]) for r in rows)
    assert pa.total_allocated_bytes() - before < size // 10
    # a dataset pickles as its paths and index (DataLoader workers) and reopens the shards
    ds3 = pickle.loads(pickle.dumps(ds2))
    assert ds3[5]["input_ids"].tolist() == rows[5]["input_ids"] and len(pickle.dumps(ds2)) < size // 4


def test_compressed_shards_decode_lazily_in_a_bounded_cache(built, built_plain):
    """zstd shards (the default) give the same rows as uncompressed ones, in under 6 bytes a
    token; their batches are decoded on use and the cache keeps at most ``cache_bytes``."""
    from zhmask.reader import ShardDataset

    rows = _all_rows(built)
    assert rows == _all_rows(built_plain)
    n_tok = sum(len(r["input_ids"]) for r in rows)
    size = sum(p.stat().st_size for p in Build(built).shards)
    assert size / n_tok < 6 < sum(p.stat().st_size for p in Build(built_plain).shards) / n_tok
    ds = ShardDataset(built, split=None)
    sh = ds._shards
    one = max(sh.batch(bi).get_total_buffer_size() for bi in range(len(sh)))
    assert len(sh) >= 3
    ds = ShardDataset(built, split=None, cache_bytes=one)
    for i in list(range(0, len(ds), 3)) + list(range(len(ds) - 1, 0, -5)):
        assert ds[i]["example_id"] == rows[i]["example_id"] and ds[i]["input_ids"].tolist() == rows[i]["input_ids"]
        assert ds._shards._cached <= 2 * one and len(ds._shards._cache) <= 2


def test_opening_a_compressed_build_decodes_nothing(built, built_plain):
    """Row counts come from the record batch headers (nothing is decompressed to count rows), and
    a dataset of every row decodes no batch until a row is read; a message that is not a record
    batch is refused in one line."""
    from zhmask.reader import ShardDataset, _batch_rows

    for b in (built, built_plain):
        for p in Build(b).shards:
            with pa.memory_map(str(p)) as src:
                messages = ipc.MessageReader.open_stream(src)
                messages.read_next_message()  # the schema
                assert [_batch_rows(m, p) for m in messages] == [
                    bt.num_rows for bt in ipc.open_stream(pa.memory_map(str(p)))]
        ds = ShardDataset(b, split=None)
        assert len(ds) == Build(b).rows and not ds._shards._cache
    with pa.memory_map(str(Build(built).shards[0])) as src:
        schema_msg = ipc.MessageReader.open_stream(src).read_next_message()
        with pytest.raises(ZhmaskError, match="not a record batch"):
            _batch_rows(schema_msg, Path("x.arrow"))


def test_filter_by_task_and_columns(built):
    from zhmask.reader import ShardDataset

    b = Build(built)
    nsp = ShardDataset(b, split=None, tasks=["nsp"])
    assert len(nsp) == b.tasks["nsp"] and {nsp[i]["task"] for i in range(len(nsp))} == {"nsp"}
    assert len(ShardDataset(b, split=None, tasks=["mlm", "nsp"])) == sum(b.tasks.values())
    both = ShardDataset(b, split="train", tasks="mlm")
    assert {both[i]["task"] for i in range(0, len(both), 7)} == {"mlm"}
    with pytest.raises(ZhmaskError, match="task.s. sop not in the build"):
        ShardDataset(b, tasks=["sop"])
    slim = ShardDataset(b, split=None, columns=["example_id", "input_ids"])
    assert set(slim[0]) == {"example_id", "input_ids"}


def test_validation_split_is_held_out_by_document_and_stable(built):
    from zhmask.reader import ShardDataset

    b = Build(built)
    train = ShardDataset(b, split="train", validation=0.1)
    val = ShardDataset(b, split="validation", validation=0.1)
    tr_ids, va_ids = train.example_ids(), val.example_ids()
    assert len(tr_ids) + len(va_ids) == sum(b.tasks.values()) and not set(tr_ids) & set(va_ids)
    doc = lambda e: e.rsplit("#", 1)[0]  # noqa: E731
    tr_docs, va_docs = {doc(e) for e in tr_ids}, {doc(e) for e in va_ids}
    assert not tr_docs & va_docs and 5 <= len(va_docs) <= 30  # 150 documents, 10 % held out
    assert Counter(e.split("#")[1][:3] for e in va_ids) .keys() == {"mlm", "nsp"}  # both tasks of a document
    # a document's --dupe-factor copies and tasks land on one side
    assert {is_validation(f"d.txt:7#{t}@{k}", 0.5) for t in ("mlm0", "nsp1") for k in range(3)} in ({True}, {False})
    assert not any(is_validation(e, 0.0) for e in tr_ids[:50]) and all(is_validation(e, 1.0) for e in tr_ids[:50])
    # the default fraction is 1 %; a salt draws another split
    assert len(ShardDataset(b, split="validation")) < len(val)
    salted = ShardDataset(b, split="validation", validation=0.1, salt="other")
    assert set(salted.example_ids()) != set(va_ids)
    # the same in another process (another PYTHONHASHSEED)
    ids = [f"inews_150.jsonl:{i}#mlm0" for i in range(200)]
    here = [is_validation(e, 0.2) for e in ids]
    code = ("import json, sys; from zhmask.reader import is_validation; "
            "print(json.dumps([is_validation(f'inews_150.jsonl:{i}#mlm0', 0.2) for i in range(200)]))")
    got = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True, text=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}).stdout
    assert json.loads(got) == here and 20 <= sum(here) <= 60


# ---------------------------------------------------------------------------- epochs
def test_epoch_sampler_partitions_and_resumes():
    from zhmask.reader import EpochSampler

    n = 103
    shares = [list(EpochSampler(n, seed=7, epoch=2, rank=r, world_size=3)) for r in range(3)]
    assert sorted(sum(shares, [])) == list(range(n)) and [len(s) for s in shares] == [35, 34, 34]
    s = EpochSampler(n, seed=7, epoch=2, rank=1, world_size=3)
    assert len(s) == 34 and list(s) == shares[1] == list(EpochSampler(n, seed=7, epoch=2, rank=1, world_size=3))
    assert list(EpochSampler(n, seed=7, epoch=3, rank=1, world_size=3)) != shares[1]
    assert list(EpochSampler(n, seed=8, epoch=2, rank=1, world_size=3)) != shares[1]
    s.skip(10)
    assert list(s) == shares[1][10:] and len(s) == 24
    s.set_epoch(2)  # the same epoch: still resuming
    assert list(s) == shares[1][10:]
    s.set_epoch(3)  # the next epoch starts from its beginning
    assert len(s) == 34 and list(s) == list(EpochSampler(n, seed=7, epoch=3, rank=1, world_size=3))
    even = [list(EpochSampler(n, seed=7, epoch=2, rank=r, world_size=3, drop_last=True)) for r in range(3)]
    assert [len(e) for e in even] == [34, 34, 34] and even[0] == shares[0][:34] and even[1] == shares[1]
    assert list(EpochSampler(10, shuffle=False)) == list(range(10))
    assert sorted(EpochSampler(10, seed=1)) == list(range(10))


def test_iterable_dataset_every_row_once_across_workers_and_ranks(built):
    import torch
    from torch.utils.data import DataLoader

    from zhmask.reader import ShardDataset, ShardIterableDataset

    torch.set_num_threads(1)
    ids = lambda rows: [r["example_id"] for r in rows]  # noqa: E731

    def epoch(seed, e, workers, rank, world=2):
        ds = ShardIterableDataset(built, split="train", validation=0.05, seed=seed, rank=rank, world_size=world,
                                  columns=["example_id"], batch_size=16)
        ds.set_epoch(e)
        return [x for batch in DataLoader(ds, batch_size=16, num_workers=workers, collate_fn=ids) for x in batch]

    got = {r: epoch(0, 1, 2, r) for r in range(2)}
    want = set(ShardDataset(built, split="train", validation=0.05).example_ids())
    allr = got[0] + got[1]
    assert len(allr) == len(set(allr)) == len(want) and set(allr) == want
    assert abs(len(got[0]) - len(got[1])) <= 1
    # the order is fixed by (seed, epoch): not by the number of workers
    assert epoch(0, 1, 0, 0) == got[0]
    assert epoch(0, 2, 0, 0) != got[0] and epoch(1, 1, 0, 0) != got[0]
    single = ShardIterableDataset(built, split="train", validation=0.05, seed=0, rank=0, world_size=1,
                                  columns=["example_id"])
    assert len(single) == len(want) and len(list(single)) == len(want)
    even = [ShardIterableDataset(built, split="train", validation=0.05, rank=r, world_size=4, columns=["example_id"],
                                 drop_last=True) for r in range(4)]
    assert len({len(e) for e in even}) == 1 and len(even[0]) * 4 > len(want) - 4


# ---------------------------------------------------------------------------- collation
def test_collator_pads_to_a_multiple_of_eight():
    import torch

    rows = [
        {"input_ids": np.array([101, 5, 6, 102], np.int32), "token_type_ids": np.zeros(4, np.int8),
         "labels": np.array([-100, 7, -100, -100], np.int32), SENTENCE_LABEL: -100, "token_labels": None},
        {"input_ids": np.arange(11, dtype=np.int32), "token_type_ids": np.array([0] * 6 + [1] * 5, np.int8),
         "labels": np.full(11, -100, np.int32), SENTENCE_LABEL: 1, "token_labels": np.array([-100] + [2] * 9 + [-100])},
    ]
    b = Collator(pad_id=0)(rows)
    assert set(b) == {"input_ids", "attention_mask", "token_type_ids", "labels", SENTENCE_LABEL, "token_labels"}
    assert all(v.dtype == torch.int64 for v in b.values())
    assert b["input_ids"].shape == (2, 16) and b["attention_mask"].sum(1).tolist() == [4, 11]
    assert b["input_ids"][0].tolist() == [101, 5, 6, 102] + [0] * 12
    assert b["labels"][0].tolist() == [-100, 7] + [-100] * 14 and (b["labels"][1] == -100).all()
    assert b["token_type_ids"][1].tolist() == [0] * 6 + [1] * 5 + [0] * 5
    assert b[SENTENCE_LABEL].tolist() == [-100, 1]  # a row without a sentence label is ignored by the loss
    assert b["token_labels"][0].tolist() == [-100] * 16 and b["token_labels"][1, 1:10].tolist() == [2] * 9
    b = Collator(pad_id=0, pad_to_multiple_of=None)(rows[:1])
    assert b["input_ids"].shape == (1, 4) and set(b) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert Collator(pad_id=3, return_tensors="np")(rows)["input_ids"][0, 4:].tolist() == [3] * 12


def test_collator_on_a_build(built):
    from torch.utils.data import DataLoader

    from zhmask.reader import EpochSampler, ShardDataset

    b = Build(built)
    ds = ShardDataset(b, split="train")
    loader = DataLoader(ds, batch_size=32, sampler=EpochSampler(len(ds), seed=3), collate_fn=Collator(b.pad_id))
    batches = list(loader)
    assert sum(len(x["input_ids"]) for x in batches) == len(ds)
    for x in batches[:5]:
        T = x["input_ids"].shape[1]
        assert T % 8 == 0 and T - 8 < x["attention_mask"].sum(1).max() <= T
        assert (x["labels"][x["attention_mask"] == 0] == -100).all()
        assert (x["input_ids"][x["attention_mask"] == 0] == b.pad_id).all()
        assert SENTENCE_LABEL in x  # NSP rows in every batch of a shuffled MLM + NSP build


def test_dynamic_masking_through_the_collator_equals_the_static_build(built):
    """A --masking wwm build restored and masked again at epoch 0 gives its own rows back, and the
    strategy's batched path does it."""
    from zhmask.masking.dynamic import DynamicMasking
    from zhmask.reader import ShardDataset

    b = Build(built)
    ds = ShardDataset(b, split=None)
    masker = DynamicMasking.from_build(b)
    assert masker.masking == "wwm" and masker.config.seed == b.config["seed"]
    masker._build()
    calls = []
    fast = masker._fn.mask_rows
    masker._fn.mask_rows = lambda exs, gens, copies=None: (calls.append(len(exs)), fast(exs, gens, copies))[1]
    dynamic = Collator(b.pad_id, masker=masker)
    static = Collator(b.pad_id)
    dynamic.set_epoch(0)
    n = 0
    for s in range(0, len(ds), 256):
        rows = [ds[i] for i in range(s, min(s + 256, len(ds)))]
        d, st = dynamic(rows), static(rows)
        assert set(d) == set(st)
        for k in st:
            assert d[k].equal(st[k]), k
        n += len(rows)
    assert n == len(ds) and sum(calls) == n and len(calls) == -(-n // 256)
    dynamic.set_epoch(1)
    assert masker.epoch == 1
    rows = [ds[i] for i in range(64)]
    d1 = dynamic(rows)
    assert not d1["labels"].equal(static(rows)["labels"])
    for i in (0, 9):  # the batch is what mask_row gives row by row
        inp, lab = masker.mask_row(rows[i], epoch=1)
        L = len(inp)
        assert d1["input_ids"][i, :L].tolist() == inp.tolist() and d1["labels"][i, :L].tolist() == lab.tolist()


def test_collator_masks_example_by_example_without_a_batched_path(built):
    from zhmask.masking.dynamic import DynamicMasking
    from zhmask.reader import ShardDataset

    ds = ShardDataset(built, split=None, tasks=["mlm"])
    masker = DynamicMasking.from_build(built, masking="mac", return_tensors="np")
    masker._build()
    batched = masker._fn
    masker._fn = lambda ex, rng: batched(ex, rng)  # a plugin's strategy: one example at a time, no mask_rows
    rows = [ds[i] for i in range(20)]
    got = masker(rows)  # DynamicMasking as a collate_fn: the reader's Collator
    assert got["input_ids"].shape[1] == max(len(r["input_ids"]) for r in rows)  # no rounding by default
    assert (got["labels"] != -100).any()
    for i, r in enumerate(rows):
        inp, lab = masker.mask_row(r)
        assert got["input_ids"][i, :len(inp)].tolist() == inp.tolist()
        assert got["labels"][i, :len(lab)].tolist() == lab.tolist()


def test_save_tokenizer_loads_with_transformers(built, tmp_path):
    transformers = pytest.importorskip("transformers")
    b = Build(built)
    d = b.save_tokenizer(tmp_path / "tok")
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (d / name).is_file()
    tok = transformers.AutoTokenizer.from_pretrained(str(d))
    assert tok.pad_token_id == b.pad_id and tok.mask_token_id == b.mask_id and len(tok) == b.vocab_size
    ids = tok("中文预训练")["input_ids"]
    assert ids[0] == b.cls_id and ids[-1] == b.sep_id and len(ids) == 7


@pytest.mark.parametrize("masking", [None, "wwm", "knowledge"])
def test_a_dataset_of_the_collators_columns_collates_as_one_of_all(built, masking):
    """The trainers decode only the columns their collator declares (``Collator.columns``, with
    its masker's): the batches equal those of rows with every column."""
    from zhmask.masking.dynamic import DynamicMasking
    from zhmask.reader import Collator, ShardDataset

    b = Build(built)
    masker = DynamicMasking.from_build(built, masking=masking, return_tensors="np") if masking else None
    coll = Collator(pad_id=b.pad_id, masker=masker, return_tensors="np")
    assert ("entities" in coll.columns) == (masking == "knowledge") and ("word_ids" in coll.columns) == bool(masking)
    full = ShardDataset(built, split=None)
    lean = ShardDataset(built, split=None, columns=coll.columns)
    assert set(lean[0]) == set(coll.columns) < set(full[0])
    for epoch in (0, 1):
        coll.set_epoch(epoch)
        for start in (0, 64, len(full) - 32):
            a = coll([full[i] for i in range(start, start + 32)])
            c = coll([lean[i] for i in range(start, start + 32)])
            assert a.keys() == c.keys() and all(np.array_equal(a[k], c[k]) for k in a)
    if masking == "knowledge":  # and the entities it declares do count: without them, other masks
        blind = ShardDataset(built, split=None, columns=[c for c in coll.columns if c != "entities"])
        rows = range(0, 256)
        assert not np.array_equal(coll([full[i] for i in rows])["labels"], coll([blind[i] for i in rows])["labels"])
