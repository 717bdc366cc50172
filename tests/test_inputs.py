"""``zhmask.data.load`` (issue 18).

The datasets here are real ``datasets`` objects saved with ``save_to_disk`` / ``to_parquet``
from the first records of the iNews fixture; every build is a few records.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from zhmask.api import build_corpus
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError

datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

N = 12  # records used from the fixture


@pytest.fixture(scope="module")
def records(inews_docs) -> list[dict]:
    return inews_docs[:N]


def _build(tmp_path: Path, name: str, *args: str) -> tuple[int, str, str, dict | None]:
    out = tmp_path / name
    code, stdout, stderr = run_cli("build-corpus", *args, "--out", str(out), "-q")
    m = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None
    return code, stdout, stderr, m


def _doc_ids(out: Path) -> list[str]:
    from zhmask.reader import Build

    ids: list[str] = []
    for p in Build(out).shards:
        with pa.memory_map(str(p)) as src:
            ids += ipc.open_stream(src).read_all().column("doc_id").to_pylist()
    return list(dict.fromkeys(ids))


# ---------------------------------------------------------------------------- zhmask.data.load
@pytest.fixture(scope="module")
def small_build(tmp_path_factory, fixtures) -> Path:
    """12 documents, MLM + SOP, three shards."""
    src = tmp_path_factory.mktemp("load") / "in.jsonl"
    src.write_text("".join((fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines(True)[:N]),
                   encoding="utf-8")
    out = src.parent / "o"
    build_corpus(BuildConfig(inputs=[str(src)], tasks=["mlm", "sop"], docs_per_shard=5, out=str(out)))
    return out


def test_load_is_the_listed_shards_even_with_datasets_cache_files_beside_them(small_build, tmp_path):
    import zhmask.data
    from zhmask.reader import Build

    out = tmp_path / "o"
    shutil.copytree(small_build, out)
    b = Build(out)
    ds = zhmask.data.load(out)
    assert len(b.shards) == 3 and len(ds) == b.rows
    assert [c["filename"] for c in ds.cache_files] == [str(p) for p in b.shards]  # memory-mapped, not copied
    before = ds["example_id"]
    # a map with caching writes cache-*.arrow into out/data, beside the shards
    mapped = ds.map(lambda batch: {"n": [len(x) for x in batch["input_ids"]]}, batched=True)
    caches = sorted((out / "data").glob("cache-*.arrow"))
    assert caches and [c["filename"] for c in mapped.cache_files] == [str(p) for p in caches]
    again = zhmask.data.load(out)
    assert len(again) == len(ds) and again["example_id"] == before
    assert "n" not in again.column_names


def test_load_splits_as_the_trainers_do(small_build):
    import zhmask.data
    from zhmask.reader import is_validation

    every = zhmask.data.load(small_build)["example_id"]
    for split in ("train", "validation"):
        ds = zhmask.data.load(small_build, split=split, validation=0.3)
        assert ds["example_id"] == [e for e in every if is_validation(e, 0.3) == (split == "validation")]
    train = zhmask.data.load(small_build, split="train", validation=0.3)
    dev = zhmask.data.load(small_build, split="validation", validation=0.3)
    assert len(dev) > 0 and len(train) + len(dev) == len(zhmask.data.load(small_build))
    sop = zhmask.data.load(small_build, tasks="sop")
    assert len(sop) > 0 and set(sop["task"]) == {"sop"}


def test_load_errors_are_one_line(small_build, tmp_path, monkeypatch):
    import zhmask.data

    with pytest.raises(ZhmaskError, match="not a directory|manifest.json missing"):
        zhmask.data.load(tmp_path / "nothing")
    with pytest.raises(ZhmaskError, match="task\\(s\\) nsp not in the build"):
        zhmask.data.load(small_build, tasks=["nsp"])
    with pytest.raises(ZhmaskError, match="split must be"):
        zhmask.data.load(small_build, split="test")
    monkeypatch.setitem(sys.modules, "datasets", None)  # what `import datasets` meets when it is not installed
    with pytest.raises(ZhmaskError, match=r"needs the datasets package: pip install 'zhmask\[hf\]'"):
        zhmask.data.load(small_build)


def test_package_data_is_still_found():
    from zhmask.paths import default_corpus, default_vocab

    assert default_corpus().is_file() and default_vocab().is_file()
    assert default_corpus().parent == Path(__import__("zhmask.data").data.__file__).parent
