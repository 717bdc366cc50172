"""Inputs from Hugging Face datasets on disk, fields that match no record, builds that write
nothing, and ``zhmask.data.load`` (issue 18).

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
    from zhmask.commands.verify import verify_build

    assert verify_build(out) == []  # datasets' cache files are not stray shards


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


# ---------------------------------------------------------------------------- datasets on disk
def test_save_to_disk_folder_reads_the_records_not_the_metadata(records, tmp_path):
    folder = tmp_path / "saved"
    datasets.Dataset.from_list(records).save_to_disk(str(folder), num_shards=2)
    # a map on the loaded dataset writes a cache file into the folder: it is not a record
    datasets.load_from_disk(str(folder)).map(lambda r: {"x": 1})
    assert list(folder.glob("cache-*.arrow"))
    code, _, err, m = _build(tmp_path, "o", str(folder), "--no-shuffle")  # document order: the ids below
    assert code == 0, err
    assert m["documents_read"] == N and m["documents_written"] == N and m["documents_rejected"] == {}
    assert [e["name"] for e in m["inputs"]] == ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]
    skipped = {Path(e["file"]).name: e["reason"] for e in m["inputs_skipped"]}
    assert skipped.pop("dataset_info.json") == skipped.pop("state.json") == "Hugging Face dataset metadata"
    assert [k for k in skipped] and all(k.startswith("cache-") and "datasets cache file" in v
                                        for k, v in skipped.items())
    assert _doc_ids(tmp_path / "o")[:2] == ["data-00000-of-00002.arrow:0", "data-00000-of-00002.arrow:1"]


def test_dataset_dict_folder_reads_every_split_or_the_one_named(records, tmp_path):
    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(records[:8]),
                          "validation": datasets.Dataset.from_list(records[8:])}).save_to_disk(str(folder))
    code, _, err, m = _build(tmp_path, "all", str(folder), "--no-shuffle")
    assert code == 0, err
    assert m["documents_read"] == N and m["documents_written"] == N
    assert sorted(Path(e["file"]).name for e in m["inputs_skipped"]) == [
        "dataset_dict.json", "dataset_info.json", "dataset_info.json", "state.json", "state.json"]
    ids = _doc_ids(tmp_path / "all")
    assert ids[0] == "train/data-00000-of-00001.arrow:0" and ids[-1] == "validation/data-00000-of-00001.arrow:3"
    code, _, err, m = _build(tmp_path, "train", str(folder / "train"))
    assert code == 0, err
    assert m["documents_read"] == 8


def test_hub_style_folder_of_parquet_files(records, tmp_path):
    hub = tmp_path / "hub"
    (hub / "data").mkdir(parents=True)
    ds = datasets.Dataset.from_list(records)
    ds.select(range(7)).to_parquet(str(hub / "data" / "train-00000-of-00002.parquet"))
    ds.select(range(7, N)).to_parquet(str(hub / "data" / "train-00001-of-00002.parquet"))
    (hub / "README.md").write_text("---\nlicense: mit\n---\n# 一个数据集的说明\n", encoding="utf-8")
    (hub / "dataset_infos.json").write_text(json.dumps({"default": {"features": {}}}), encoding="utf-8")
    (hub / "hub.py").write_text("import datasets\n", encoding="utf-8")  # a loading script
    (hub / "extra.jsonl").write_text(json.dumps({"text": "另一份语料。"}, ensure_ascii=False) + "\n", encoding="utf-8")
    code, _, err, m = _build(tmp_path, "o", str(hub))
    assert code == 0, err
    assert m["documents_read"] == N + 1 and m["documents_rejected"] == {}  # the other files are records
    assert sorted(Path(e["file"]).name for e in m["inputs_skipped"]) == ["README.md", "dataset_infos.json", "hub.py"]
    assert all("dataset card, metadata or script" in e["reason"] for e in m["inputs_skipped"])
    # the files named one by one are read as given (the README as text)
    code, _, err, m = _build(tmp_path, "named", str(hub / "README.md"), str(hub / "data" / "train-00000-of-00002.parquet"))
    assert code == 0, err
    assert m["documents_read"] == 4 + 7 and m["inputs_skipped"] == []


def test_arrow_stream_and_file_formats_read_alike(records, tmp_path):
    table = pa.Table.from_pylist(records)
    (tmp_path / "s").mkdir()
    (tmp_path / "f").mkdir()
    with ipc.new_stream(str(tmp_path / "s" / "d.arrow"), table.schema) as w:  # what datasets writes
        w.write_table(table, max_chunksize=5)
    with ipc.new_file(str(tmp_path / "f" / "d.arrow"), table.schema) as w:  # Feather v2 / IPC file
        w.write_table(table, max_chunksize=5)
    results = []
    for name in ("s", "f"):
        code, _, err, m = _build(tmp_path, f"o{name}", str(tmp_path / name / "d.arrow"), "--title-field", "title")
        assert code == 0, err
        assert m["documents_read"] == N and m["documents_written"] == N
        results.append(datasets.concatenate_datasets(
            [datasets.Dataset.from_file(str(tmp_path / f"o{name}" / s["file"])) for s in m["shards"]]).to_list())
    assert results[0] == results[1]


# ---------------------------------------------------------------------------- a field that matches nothing
def _write(fmt: str, records: list[dict], path: Path) -> Path:
    table = pa.Table.from_pylist(records)
    if fmt == "jsonl":
        path = path.with_suffix(".jsonl")
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    elif fmt == "parquet":
        path = path.with_suffix(".parquet")
        pq.write_table(table, path)
    else:
        path = path.with_suffix(".arrow")
        with (ipc.new_stream if fmt == "arrow-stream" else ipc.new_file)(str(path), table.schema) as w:
            w.write_table(table)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "arrow-stream", "arrow-file"])
@pytest.mark.parametrize("option", ["--text-field", "--title-field", "--source-field", "--target-field"])
def test_a_field_no_record_has_fails_in_one_line(records, tmp_path, fmt, option):
    src = _write(fmt, [{"text": r["text"], "title": r["title"], "split": "train"} for r in records[:3]],
                 tmp_path / "news")
    args = [option, "content"]
    if option in ("--source-field", "--target-field"):
        args += ["--tasks", "seq2seq"] + (["--target-field", "title"] if option == "--source-field"
                                          else ["--source-field", "text"])
    code, stdout, stderr, m = _build(tmp_path, "o", str(src), *args)
    assert code == 2 and stdout == ""
    where = "the records" if fmt == "jsonl" else "the columns"
    assert stderr == f"zhmask: error: {src}: no field 'content' ({option}) in {where} (fields: text, title, split)\n"
    assert m is None and not list((tmp_path / "o").glob("data/*.arrow"))
    if option != "--text-field":
        return
    # nothing was written, so the corrected command needs no --overwrite
    fixed = [a if a != "content" else ("title" if option in ("--title-field", "--target-field") else "text")
             for a in args]
    code, _, stderr, m = _build(tmp_path, "o", str(src), *fixed)
    assert code == 0, stderr
    assert m["documents_written"] == 3


def test_records_lacking_a_field_some_of_the_time_are_counted(tmp_path):
    src = tmp_path / "mixed.jsonl"
    lines = ['{"body": "第一条没有文本字段。"}', "not json", '{"text": "第二条有文本。", "title": "标题"}',
             '{"body": "又一条没有。"}']
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err, m = _build(tmp_path, "o", str(src), "--title-field", "title")
    assert code == 0, err
    assert m["documents_read"] == 4 and m["documents_written"] == 1
    assert m["documents_rejected"] == {"bad_json": 1, "missing_text_field": 2}
    assert _doc_ids(tmp_path / "o") == ["mixed.jsonl:3"]


def test_the_look_ahead_for_a_field_is_bounded(tmp_path, monkeypatch):
    from zhmask.steps import read

    monkeypatch.setattr(read, "FIELD_LOOKAHEAD", 5)
    src = tmp_path / "late.jsonl"
    src.write_text("".join(json.dumps({"body": f"第{i}条。"}, ensure_ascii=False) + "\n" for i in range(5))
                   + json.dumps({"text": "终于有了。"}, ensure_ascii=False) + "\n", encoding="utf-8")
    code, _, err, _ = _build(tmp_path, "o", str(src))
    assert code == 2
    assert err == f"zhmask: error: {src}: no field 'text' (--text-field) in its first 5 records (fields: body)\n"
    monkeypatch.setattr(read, "FIELD_LOOKAHEAD", 6)
    code, _, err, m = _build(tmp_path, "o", str(src))
    assert code == 0, err
    assert m["documents_rejected"] == {"missing_text_field": 5} and m["documents_written"] == 1


# ---------------------------------------------------------------------------- a build that writes nothing
def test_a_build_where_every_document_is_rejected_fails_with_a_summary(tmp_path):
    src = tmp_path / "latin.txt"
    src.write_text("only latin text here\nand here too\n中文只有这一行。\n", encoding="utf-8")
    out = tmp_path / "o"
    code, stdout, stderr = run_cli("build-corpus", str(src), "--min-cjk-ratio", "1.0", "--out", str(out))
    assert code == 2
    assert "documents  read 3  written 0  rejected 3  (low_cjk_ratio 3)" in stdout
    assert stderr == (f"zhmask: error: no examples written: all 3 documents read were rejected (low_cjk_ratio 3); "
                      f"see {out / 'manifest.json'}\n")
    assert json.loads((out / "manifest.json").read_text())["documents_rejected"] == {"low_cjk_ratio": 3}
    code, _, stderr = run_cli("build-corpus", str(src), "--min-cjk-ratio", "0.5", "--out", str(out), "--overwrite",
                              "-q")
    assert code == 0, stderr
