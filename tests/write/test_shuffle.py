"""The build-wide shuffle (zhmask/write/shuffle.py): rows of every unit spread over every shard,
no two neighbours from one document, the same shards for any worker count and on a rerun, and
``--no-shuffle`` keeping document order."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from conftest import run_cli
from zhmask.commands.verify import verify_build
from zhmask.write.shuffle import row_keys, spread

ARGS = ("--tasks", "mlm,nsp", "--masking", "wwm", "--dupe-factor", "2", "--docs-per-shard", "30",
        "--max-seq-length", "64", "-q")


def _rows(out: Path) -> list[dict]:
    rows = []
    for s in json.loads((out / "manifest.json").read_text())["shards"]:
        with pa.memory_map(str(out / s["file"])) as src:
            rows.append(ipc.open_stream(src).read_all().to_pylist())
    return rows


@pytest.fixture(scope="module")
def builds(tmp_path_factory, fixtures) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("shuffle")
    out = {}
    for name, extra in (("shuffled", ()), ("ordered", ("--no-shuffle",)), ("two_workers", ("--workers", "2"))):
        out[name] = d / name
        code, _, err = run_cli("build-corpus", str(fixtures / "inews_150.jsonl"), "--out", str(out[name]), *ARGS, *extra)
        assert code == 0, err
    return out


def test_rows_are_spread_over_the_whole_build(builds):
    shuffled, ordered = _rows(builds["shuffled"]), _rows(builds["ordered"])
    assert len(shuffled) == len(ordered) == 5  # one shard per unit of 30 documents
    flat = [r for s in shuffled for r in s]
    key = lambda r: r["example_id"]  # noqa: E731
    assert sorted(flat, key=key) == sorted((r for s in ordered for r in s), key=key)  # the same rows
    unit_of = {r["doc_id"]: u for u, s in enumerate(ordered) for r in s}
    for shard in shuffled:
        assert len({unit_of[r["doc_id"]] for r in shard}) == 5  # every shard mixes every unit
        # no two neighbours from one document: copies (dupe factor 2) and the mlm/nsp rows of a
        # document are never adjacent
        assert all(a["doc_id"] != b["doc_id"] for a, b in zip(shard, shard[1:]))
    # the ordered build keeps each task's rows in document order, a row's copies together
    for task in ("mlm", "nsp"):
        docs = [r["doc_id"] for r in ordered[0] if r["task"] == task]
        assert docs == sorted(docs, key=lambda d: int(d.rsplit(":", 1)[1]))
        assert any(a["doc_id"] == b["doc_id"] for a, b in zip(ordered[0], ordered[0][1:]))
    assert verify_build(builds["shuffled"]) == [] and verify_build(builds["ordered"]) == []
    assert not (builds["shuffled"] / "units").exists()
    m = json.loads((builds["shuffled"] / "manifest.json").read_text())
    assert m["shuffle"] == {"adjacent_same_document": 0}


def test_same_shards_for_any_worker_count_and_on_a_rerun(builds, fixtures):
    one = json.loads((builds["shuffled"] / "manifest.json").read_text())["shards"]
    assert json.loads((builds["two_workers"] / "manifest.json").read_text())["shards"] == one
    before = {p.name: p.stat().st_mtime_ns for p in (builds["shuffled"] / "data").iterdir()}
    code, _, err = run_cli("build-corpus", str(fixtures / "inews_150.jsonl"), "--out", str(builds["shuffled"]), *ARGS)
    assert code == 0, err  # a finished build: nothing is redone
    assert {p.name: p.stat().st_mtime_ns for p in (builds["shuffled"] / "data").iterdir()} == before


def test_a_build_stopped_while_shuffling_resumes_to_the_same_shards(builds, fixtures, tmp_path, monkeypatch):
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig
    from zhmask.errors import ZhmaskError
    from zhmask.write import shuffle

    real = shuffle.gather

    def fail_on_third(files, b, dest, schema, compression):
        if b == 2:
            raise OSError(28, "No space left on device")
        return real(files, b, dest, schema, compression)

    out = tmp_path / "o"
    cfg = dict(inputs=[str(fixtures / "inews_150.jsonl")], tasks=["mlm", "nsp"], masking="wwm", dupe_factor=2,
               docs_per_shard=30, max_seq_length=64, out=str(out))
    monkeypatch.setattr(shuffle, "gather", fail_on_third)
    with pytest.raises(ZhmaskError, match="shuffle: cannot write .*shard-00002.arrow: .*No space left"):
        build_corpus(BuildConfig(**cfg))
    assert (out / "units").is_dir() and not (out / "manifest.json").exists()
    monkeypatch.setattr(shuffle, "gather", real)
    build_corpus(BuildConfig(**cfg))
    want = json.loads((builds["shuffled"] / "manifest.json").read_text())["shards"]
    assert json.loads((out / "manifest.json").read_text())["shards"] == want
    assert verify_build(out) == [] and not (out / "units").exists()


def test_merged_scatter_files_give_the_same_shards_and_resume(builds, fixtures, tmp_path, monkeypatch):
    """Above MERGE_ABOVE units the scatter files are merged in groups of FANIN before the gather
    (fewer files for every block to open): the same shards; a build stopped in the gather keeps
    its merged files (their units are not scattered again) and resumes to the same shards."""
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig
    from zhmask.errors import ZhmaskError
    from zhmask.write import shuffle

    monkeypatch.setattr(shuffle, "FANIN", 2)  # 5 units: groups 0-1, 2-3, 4
    monkeypatch.setattr(shuffle, "MERGE_ABOVE", 0)
    monkeypatch.setattr(shuffle, "BLOCK_BYTES", 1)  # one output shard a block, merges included
    real_gather, real_scatter, real_read = shuffle.gather, shuffle.scatter, shuffle.read_block
    scattered, read = [], []

    def fail_on_third(files, b, dest, schema, compression):
        if b == 2:
            raise OSError(28, "No space left on device")
        return real_gather(files, b, dest, schema, compression)

    monkeypatch.setattr(shuffle, "scatter", lambda unit, dest, n, seed: scattered.append(dest.name) or
                        real_scatter(unit, dest, n, seed))
    monkeypatch.setattr(shuffle, "read_block", lambda files, b0, b1, n: read.append([f.name for f in files]) or
                        real_read(files, b0, b1, n))
    monkeypatch.setattr(shuffle, "gather", fail_on_third)
    out = tmp_path / "o"
    cfg = dict(inputs=[str(fixtures / "inews_150.jsonl")], tasks=["mlm", "nsp"], masking="wwm", dupe_factor=2,
               docs_per_shard=30, max_seq_length=64, out=str(out))
    with pytest.raises(ZhmaskError, match="shuffle: cannot write .*shard-00002.arrow: .*No space left"):
        build_corpus(BuildConfig(**cfg))
    merged = ["merged-00000.arrow", "merged-00001.arrow", "merged-00002.arrow"]
    assert len(scattered) == 5 and sorted(p.name for p in (out / "units").glob("merged-*.arrow")) == merged
    assert not list((out / "units").glob("scatter-*.arrow"))  # each group's scatter files go once it is merged
    first = out / "units" / "merged-00000.arrow"  # a merged file is only taken for its own units
    assert shuffle.scattered(first, 5, [0, 1]) and not shuffle.scattered(first, 5, [0, 1, 2])
    assert not shuffle.scattered(first, 6, [0, 1])
    assert read[0] == ["scatter-00000.arrow", "scatter-00001.arrow"] and read[-1] == merged  # merges, then gather
    monkeypatch.setattr(shuffle, "gather", real_gather)
    scattered.clear()
    build_corpus(BuildConfig(**cfg))
    assert scattered == []  # every group was merged: nothing scattered again
    want = json.loads((builds["shuffled"] / "manifest.json").read_text())["shards"]
    assert json.loads((out / "manifest.json").read_text())["shards"] == want
    assert verify_build(out) == [] and not (out / "units").exists()


def test_spread_keeps_neighbours_apart_when_it_can():
    order, same = spread(list("AABBCC"))
    docs = [list("AABBCC")[i] for i in order]
    assert sorted(order) == list(range(6)) and same == 0
    assert all(a != b for a, b in zip(docs, docs[1:]))
    order, same = spread(list("ABCC"))  # a row left waiting at the end goes into an earlier gap
    assert same == 0 and sorted(order) == [0, 1, 2, 3]
    order, same = spread(list("AAAB"))  # three of four rows from one document: one pair must stay
    assert sorted(order) == list(range(4)) and same == 1
    assert spread([]) == ([], 0)
    rng = random.Random(0)
    for _ in range(500):  # whenever no document holds more than half the rows, no neighbours remain
        docs = [rng.choice("ABCDE"[:rng.randint(1, 5)]) for _ in range(rng.randint(0, 30))]
        order, same = spread(docs)
        assert sorted(order) == list(range(len(docs)))
        assert same == sum(docs[a] == docs[b] for a, b in zip(order, order[1:]))
        if docs and 2 * max(Counter(docs).values()) <= len(docs):
            assert same == 0, docs


def test_keys_depend_on_seed_and_example_only():
    a = row_keys(["d:1#mlm0", "d:2#mlm0"], seed=1)
    assert a.tolist() == row_keys(["d:1#mlm0", "d:2#mlm0"], seed=1).tolist()
    assert a.tolist() != row_keys(["d:1#mlm0", "d:2#mlm0"], seed=2).tolist()
    # roughly uniform over shards
    k = row_keys([f"doc:{i}#mlm0" for i in range(5000)], seed=7)
    counts = Counter((k % 5).tolist())
    assert min(counts.values()) > 900


def test_blocks_cover_every_output_shard_once():
    from zhmask.write.shuffle import BLOCK_BYTES, blocks

    for n, size, workers in ((1, 0, 1), (7, 10, 1), (150, BLOCK_BYTES * 3, 1), (150, 10, 2), (5, BLOCK_BYTES * 50, 4)):
        plan = blocks(n, size, workers)
        assert [b for b0, b1 in plan for b in range(b0, b1)] == list(range(n))
        assert len(plan) >= min(n, workers)
    assert len(blocks(150, BLOCK_BYTES * 3)) == 3  # about BLOCK_BYTES of rows a block
    assert blocks(150, 10) == [(0, 150)]  # small builds: every scatter file opened once


def test_gathering_in_blocks_gives_the_same_shards(builds, fixtures, tmp_path, monkeypatch):
    """Many small blocks (each scatter file opened once per block) or one: the same shards; a
    scatter file of another layout left in units/ by a stopped build is scattered again, not read."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig
    from zhmask.errors import ZhmaskError
    from zhmask.write import shuffle

    out = tmp_path / "o"
    cfg = BuildConfig(inputs=[str(fixtures / "inews_150.jsonl")], tasks=["mlm", "nsp"], masking="wwm", dupe_factor=2,
                      docs_per_shard=30, max_seq_length=64, out=str(out))
    real_gather = shuffle.gather

    def full_disk(parts, b, dest, schema, compression):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shuffle, "gather", full_disk)
    with pytest.raises(ZhmaskError, match="No space left"):
        build_corpus(cfg)
    monkeypatch.setattr(shuffle, "gather", real_gather)
    stale = out / "units" / "scatter-00000.arrow"
    assert shuffle.scattered(stale, 5) and not shuffle.scattered(stale, 6)
    t = pa.table({"x": [1, 2]})  # a scatter file of another layout: one batch, no offsets
    with pa.OSFile(str(stale), "wb") as sink, ipc.new_file(sink, t.schema) as w:
        w.write_table(t)
    assert not shuffle.scattered(stale, 5)

    monkeypatch.setattr(shuffle, "BLOCK_BYTES", 1)  # one output shard a block
    opened = []
    real = shuffle.read_block
    monkeypatch.setattr(shuffle, "read_block", lambda files, b0, b1, n: opened.append((b0, b1)) or real(files, b0, b1, n))
    build_corpus(cfg)
    assert opened == [(b, b + 1) for b in range(5)]
    want = json.loads((builds["shuffled"] / "manifest.json").read_text())["shards"]
    assert json.loads((out / "manifest.json").read_text())["shards"] == want
    assert verify_build(out) == []
