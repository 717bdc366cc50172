"""build-corpus end to end: readers, shards, manifest, determinism, CLI errors."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from conftest import run_cli
from zhmask.api import build_corpus
from zhmask.config import BuildConfig
from zhmask.schema import COLUMNS, SCHEMA_VERSION


def read_shards(out: Path) -> pa.Table:
    tables = []
    for p in sorted((out / "data").glob("*.arrow")):
        with pa.memory_map(str(p)) as src:
            tables.append(ipc.open_stream(src).read_all())
    return pa.concat_tables(tables)


@pytest.fixture(scope="module")
def default_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("default")
    code, stdout, stderr = run_cli("build-corpus", "--out", str(out))
    assert code == 0, stderr
    return out, stdout


def test_default_build_summary_and_manifest(default_build):
    out, stdout = default_build
    assert "documents  read 400" in stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["schema_version"] == SCHEMA_VERSION
    assert m["documents_read"] == 400
    assert m["documents_read"] == m["documents_written"] + sum(m["documents_rejected"].values())
    assert m["config"]["seed"] == 12345
    from zhmask.paths import default_corpus

    # one unit reads the whole file: the input's checksum is the sha256 of that range's sha256
    data = default_corpus().read_bytes()
    assert m["inputs"][0]["name"] == "pd1998_sample.txt" and m["inputs"][0]["ranges"] == 1
    assert m["inputs"][0]["sha256_of_ranges"] == hashlib.sha256(hashlib.sha256(data).digest()).hexdigest()
    assert m["inputs"][0]["size"] == len(data)
    assert m["tokens_written"] == sum(len(r["input_ids"]) for p in sorted((out / "data").glob("*.arrow"))
                                      for r in ipc.open_stream(p).read_all().to_pylist())
    rows = sum(s["rows"] for s in m["shards"])
    assert rows == m["examples_written"] > 400
    for s in m["shards"]:
        from zhmask.write.shards import sha256_file

        assert sha256_file(out / s["file"]) == s["sha256"]


def test_shards_roundtrip_through_datasets(default_build):
    datasets = pytest.importorskip("datasets")
    out, _ = default_build
    shard = sorted((out / "data").glob("*.arrow"))[0]
    ds = datasets.Dataset.from_file(str(shard))
    assert set(COLUMNS) <= set(ds.column_names)
    table = read_shards(out)
    assert ds.num_rows == table.num_rows
    assert ds[0]["input_ids"] == table.column("input_ids")[0].as_py()
    meta = table.schema.metadata
    assert meta[b"zhmask.schema_version"].decode() == SCHEMA_VERSION
    assert json.loads(meta[b"zhmask.config"])["max_seq_length"] == 128


def test_examples_are_well_formed(default_build, tok):
    out, _ = default_build
    t = read_shards(out).to_pydict()
    for ids, tt, wids, labels, ents in zip(t["input_ids"], t["token_type_ids"], t["word_ids"], t["labels"], t["entities"]):
        assert len(ids) <= 128 and ids[0] == tok.cls_id and ids[-1] == tok.sep_id
        assert len(ids) == len(tt) == len(wids) == len(labels)
        assert wids[0] == -1 and wids[-1] == -1
        inner = wids[1:-1]
        assert inner[0] == 0 and all(b - a in (0, 1) for a, b in zip(inner, inner[1:]))
        assert set(labels) == {-100}
        for e in ents:
            assert 1 <= e["start"] < e["end"] <= len(ids) - 1


def test_packing_never_cuts_a_word(pipeline, sample_lines):
    """Reassembling a document's examples gives back its token sequence, cut only at word starts."""
    from zhmask.labels.mlm import generate
    from zhmask.steps.read import RawDoc

    for i, line in enumerate(sample_lines[:100]):
        doc, _ = pipeline.document(RawDoc(f"d{i}", line))
        exs = list(generate([doc], pipeline.ctx))
        ids = np.concatenate([e.input_ids[1:-1] for e in exs])
        assert ids.tolist() == doc.tokens.ids.tolist()
        pos = 0
        for e in exs[:-1]:
            pos += len(e.input_ids) - 2
            assert doc.tokens.word[pos] != doc.tokens.word[pos - 1]


def _build(tmp_path: Path, name: str, *args: str) -> tuple[Path, dict]:
    out = tmp_path / name
    code, _, stderr = run_cli("build-corpus", *args, "--out", str(out), "-q")
    assert code == 0, stderr
    return out, json.loads((out / "manifest.json").read_text())


def test_workers_1_and_4_identical(tmp_path, fixtures):
    args = (str(fixtures / "inews_150.jsonl"), "--docs-per-shard", "20", "--title-field", "title")
    _, m1 = _build(tmp_path, "w1", *args, "--workers", "1")
    _, m4 = _build(tmp_path, "w4", *args, "--workers", "4")
    assert len(m1["shards"]) == 8
    assert m1["shards"] == m4["shards"]
    _, again = _build(tmp_path, "again", *args, "--workers", "2")
    assert again["shards"] == m1["shards"]


def test_seed_changes_output(tmp_path):
    _, a = _build(tmp_path, "a", "--seed", "1")
    _, b = _build(tmp_path, "b", "--seed", "2")
    assert a["shards"][0]["sha256"] != b["shards"][0]["sha256"]


def test_readers_all_formats_agree(tmp_path, inews_docs):
    import pyarrow.parquet as pq
    import zstandard

    docs = inews_docs[:30]
    texts = [d["text"].replace("\n", " ") for d in docs]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "in" / "b.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(texts) + "\n")
    jl = "".join(json.dumps({"text": t, "title": d["title"]}, ensure_ascii=False) + "\n" for t, d in zip(texts, docs))
    (tmp_path / "in" / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jl.encode()))
    table = pa.table({"text": texts, "title": [d["title"] for d in docs]})
    pq.write_table(table, tmp_path / "in" / "d.parquet")
    with ipc.new_stream(str(tmp_path / "in" / "e.arrow"), table.schema) as w:
        w.write_table(table)
    outs = {}
    for name in ("a.txt", "b.txt.gz", "c.jsonl.zst", "d.parquet", "e.arrow"):
        _, m = _build(tmp_path, name, str(tmp_path / "in" / name), "--short-seq-prob", "0")
        assert m["documents_read"] == 30 and m["documents_written"] == 30
        # the rows' order follows their ids, which name the file: compare the rows as a set
        outs[name] = sorted(read_shards(tmp_path / name).column("input_ids").to_pylist())
    first = outs["a.txt"]
    assert all(v == first for v in outs.values())
    # a directory and a glob read every file, in sorted order, with ids relative to the root
    out, m = _build(tmp_path, "dir", str(tmp_path / "in"), "--no-shuffle")
    assert m["documents_read"] == 150
    ids = read_shards(out).column("doc_id").to_pylist()
    assert ids[0] == "a.txt:1" and "b.txt.gz:1" in ids and "d.parquet:0" in ids
    _, m = _build(tmp_path, "glob", str(tmp_path / "in" / "*.txt*"))
    assert m["documents_read"] == 60


def test_blank_line_documents(tmp_path):
    src = tmp_path / "blank.txt"
    src.write_text("第一篇第一句\n第一篇第二句\n\n\n第二篇只有一句\n", encoding="utf-8")
    out, m = _build(tmp_path, "o", str(src), "--doc-sep", "blank", "--no-shuffle")
    assert m["documents_read"] == 2
    assert read_shards(out).column("doc_id").to_pylist() == ["blank.txt:1", "blank.txt:5"]


def test_jsonl_bad_records_are_counted(tmp_path):
    src = tmp_path / "x.jsonl"
    src.write_text('{"text": "好的文本。"}\nnot json\n{"body": "没有文本字段"}\n{"text": "   "}\n[1]\n', encoding="utf-8")
    _, m = _build(tmp_path, "o", str(src))
    assert m["documents_read"] == 5 and m["documents_written"] == 1
    assert m["documents_rejected"] == {"bad_json": 1, "empty": 1, "missing_text_field": 1, "not_an_object": 1}


def test_other_document_ids_are_stable_across_line_separators(tmp_path):
    src = tmp_path / "seps.txt"
    src.write_bytes("一\u2028二\u2029三\x85四\x0b五\x0c六\r\n第二行\n".encode("utf-8"))
    _, m = _build(tmp_path, "o", str(src))
    assert m["documents_read"] == 2


@pytest.mark.parametrize("args, needle", [
    (("nonexistent.txt",), "input not found"),
    (("--segmenter", "foo"), "--segmenter"),
    (("--masking", "nope"), "--masking"),
    (("--masked-lm-prob", "1.5"), "--masked-lm-prob"),
    (("--vocab", "/nonexistent/vocab.txt"), "file not found"),
    (("--max-seq-length", "abc"), "max-seq-length"),
    (("--pipeline", "nope"), "unknown pipeline"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, args, needle):
    code, out, err = run_cli("build-corpus", *args, "--out", str(tmp_path / "o"))
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_vocab_without_specials_is_refused(tmp_path):
    v = tmp_path / "vocab.txt"
    v.write_text("[PAD]\n[UNK]\n的\n", encoding="utf-8")
    code, _, err = run_cli("build-corpus", "--vocab", str(v), "--out", str(tmp_path / "o"))
    assert code == 2 and "[CLS]" in err


def test_other_config_in_out_dir_is_refused(tmp_path):
    out = tmp_path / "o"
    _build(tmp_path, "o")
    code, _, err = run_cli("build-corpus", "--seed", "7", "--out", str(out))
    assert code == 2 and "--overwrite" in err
    code, _, err = run_cli("build-corpus", "--seed", "7", "--out", str(out), "--overwrite", "-q")
    assert code == 0, err


def test_pipeline_presets_load():
    from zhmask.paths import pipelines_dir

    names = sorted(p.stem for p in pipelines_dir().glob("*.toml"))
    assert {"bert-wwm", "macbert", "ernie1", "ernie2", "electra", "ernie-gen"} <= set(names)
    for n in names:
        cfg = BuildConfig.from_preset(n)
        assert cfg.max_seq_length >= 128


def test_train_tokenizer(tmp_path):
    from zhmask.paths import default_corpus

    code, _, err = run_cli("train-tokenizer", str(default_corpus()), "--vocab-size", "3000", "--out", str(tmp_path / "tok"))
    assert code == 0, err
    vocab = (tmp_path / "tok" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    _, m = _build(tmp_path, "o", "--vocab", str(tmp_path / "tok" / "vocab.txt"))
    assert m["documents_written"] == 400
    _, m = _build(tmp_path, "o2", "--tokenizer", str(tmp_path / "tok" / "tokenizer.json"))
    assert m["documents_written"] == 400


def test_library_api(tmp_path):
    res = build_corpus(BuildConfig(out=str(tmp_path / "o"), max_seq_length=64))
    assert res.manifest["documents_written"] == 400
    assert all(p.exists() for p in res.shards)


def test_cli_input_and_segmentation_options_take_effect(tmp_path):
    """--format, --text-field, --title-field, --user-dict and --t2s, spelt as the issue does."""
    src = tmp_path / "news.dat"  # a suffix no reader claims: --format decides
    src.write_text("\n".join(json.dumps({"body": b, "headline": "標題"}, ensure_ascii=False) for b in
                             ["藍天白雲下的臺北很美。", "我們在北京大學讀書。"]) + "\n", encoding="utf-8")
    udict = tmp_path / "user.dict"
    udict.write_text("白云下 100000 n\n", encoding="utf-8")
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", str(src), "--format", "jsonl", "--text-field", "body", "--title-field",
                           "headline", "--t2s", "--user-dict", str(udict), "--out", str(out), "-q")
    assert code == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert m["documents_read"] == m["documents_written"] == 2
    cfg = m["config"]
    assert (cfg["format"], cfg["text_field"], cfg["title_field"], cfg["t2s"]) == ("jsonl", "body", "headline", True)
    from zhmask.pipeline import Pipeline
    from zhmask.steps.read import RawDoc

    doc, _ = Pipeline(BuildConfig.from_dict({k: v for k, v in cfg.items()})).document(RawDoc("x", "藍天白雲下的臺北很美。"))
    assert doc.text == "蓝天白云下的台北很美。"  # --t2s
    assert "白云下" in doc.word_texts()  # --user-dict
    code, _, err = run_cli("build-corpus", str(src), "--text-field", "body", "--out", str(tmp_path / "o2"), "-q")
    assert code == 0, err  # without --format an unknown suffix is plain text: the JSON syntax is text too
    m2 = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert m2["config"]["format"] == "auto" and m2["tokens_written"] > m["tokens_written"] + 20


def test_progress_shows_documents_and_megabytes_per_second():
    """On a terminal the progress line reads documents, docs/s and MB/s; off a terminal it is silent."""
    from zhmask.cli import Reporter

    with Reporter(enabled=True) as rep:
        rep.update({"documents_read": 1200, "bytes": 3_000_000})
        desc = rep._progress.tasks[0].description
    assert "1,200 documents" in desc and "docs/s" in desc and "MB/s" in desc
    with Reporter(enabled=False) as rep:
        rep.update({"documents_read": 5, "bytes": 10})
        assert rep._progress is None


def test_a_build_does_not_import_pandas(tmp_path, fixtures):
    """pyarrow imports pandas on its first ``pa.array`` call (about 0.3 s of start-up): the shard
    writer builds its arrays from buffers, so a build with pair tasks and entities never does."""
    import subprocess
    import sys

    code = ("import sys; from zhmask.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('PANDAS' if 'pandas' in sys.modules else 'NO-PANDAS')")
    args = ["build-corpus", str(fixtures / "inews_150.jsonl"), "--title-field", "title", "--tasks", "mlm,sop,ernie_gen",
            "--masking", "wwm", "--out", str(tmp_path / "o"), "-q"]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("NO-PANDAS"), out.stdout + out.stderr
