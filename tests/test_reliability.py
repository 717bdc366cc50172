"""Reliability: every kind of bad input has a defined outcome, faults end cleanly, verify checks it.

The nasty corpus is generated here (no fixture files): invalid UTF-8, NUL and control
characters, a BOM, CRLF, U+2028/U+2029/U+0085/VT/FF, zero-width characters, blank and empty
documents, an empty file, documents without CJK, emoji and CJK extension characters,
traditional Chinese, bad JSONL records, a truncated .gz, a corrupt .zst, a dangling link, a
FIFO and an over-long line.  It is built end to end and ``zhmask verify`` must pass.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from conftest import crash_input, run_cli
from zhmask.api import build_corpus
from zhmask.commands.verify import verify_build
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.steps.read import InputFile, iter_lines, read_file
from zhmask.write.shards import sha256_file

SENT = "今天北京的天气很好，我们去天安门广场散步。"


def read_rows(out: Path) -> list[dict]:
    rows = []
    for p in sorted((out / "data").glob("*.arrow")):
        with pa.memory_map(str(p)) as src:
            rows += ipc.open_stream(src).read_all().to_pylist()
    return rows


def raws(path: Path, **kw) -> list:
    args = dict(fmt="auto", doc_sep="line", text_field="text", title_field=None, on_decode_error="replace")
    args.update(kw)
    return list(read_file(InputFile(path, path.name), **args))


# ---------------------------------------------------------------------------- the nasty corpus
def make_nasty(root: Path) -> Path:
    d = root / "nasty"
    d.mkdir()
    (d / "a_invalid.txt").write_bytes(SENT.encode() + b"\n" + "坏的".encode() + b"\xff\xfe\xc3(" + "字节。".encode()
                                      + b"\n" + "第三行很正常。".encode() + b"\n")
    (d / "b_controls.txt").write_bytes("今天\x00天气\x01很\x7f好\x1b。\n".encode())
    (d / "c_bom.txt").write_bytes(b"\xef\xbb\xbf" + "带字节序标记的第一行。\r\n第二行用回车换行。\r\n".encode())
    (d / "d_seps.txt").write_bytes("第一句\u2028第二句\u2029第三句\x85第四句\x0b第五句\x0c第六句。\n".encode())
    (d / "e_zero_width.txt").write_bytes("北\u200b京\u200d大\u2060学\ufeff是一所大学。\n".encode())
    (d / "f_blank.txt").write_bytes("   \n\t\u3000\u00a0\n\n真正的正文在这里。\n".encode())
    (d / "g_empty.txt").write_bytes(b"")
    (d / "h_nocjk.txt").write_text("Hello world, nothing Chinese here.\n1234 5678 90\n", encoding="utf-8")
    (d / "i_emoji.txt").write_text("我爱😀北京🚀天安门。𠀀𠀁𪚥是扩展区的汉字。\n", encoding="utf-8")
    (d / "j_trad.txt").write_text("這是繁體中文的句子，我們會轉換成簡體。\n", encoding="utf-8")
    (d / "k_records.jsonl").write_bytes(
        json.dumps({"text": SENT}, ensure_ascii=False).encode() + b"\n"
        + b"{not json\n"
        + '{"text": "含有\x00空字符\x07的记录。"}'.encode() + b"\n"
        + json.dumps({"body": "没有文本字段"}, ensure_ascii=False).encode() + b"\n"
        + json.dumps({"text": 42}).encode() + b"\n")
    good = ("\n".join([SENT] * 200) + "\n").encode()
    (d / "l_trunc.txt.gz").write_bytes(gzip.compress(good)[:-30])
    (d / "m_corrupt.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(200))
    os.symlink(d / "does-not-exist.txt", d / "n_dangling.txt")
    os.mkfifo(d / "o_fifo.txt")
    (d / "p_long.txt").write_text("短的一行。\n" + SENT * 8000 + "\n", encoding="utf-8")  # ~480 KB in one line
    return d


@pytest.fixture(scope="module")
def nasty_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("nasty")
    d = make_nasty(root)
    out = root / "out"
    code, stdout, err = run_cli("build-corpus", str(d), "--out", str(out), "--skip-bad-files", "--min-cjk-ratio", "0.3",
                                "--t2s", "--max-doc-mb", "0.05", "--docs-per-shard", "7")
    assert code == 0, err
    return d, out, json.loads((out / "manifest.json").read_text()), stdout


def test_nasty_corpus_accounting_and_verify(nasty_build):
    d, out, m, stdout = nasty_build
    assert m["documents_read"] == m["documents_written"] + sum(m["documents_rejected"].values())
    assert verify_build(out) == []
    code, vout, verr = run_cli("verify", str(out))
    assert code == 0, verr
    assert "OK" in vout
    assert "bad files  4 skipped" in stdout


def test_nasty_corpus_bad_files_are_listed(nasty_build):
    _, _, m, _ = nasty_build
    bad = {Path(b["file"]).name: b["error"] for b in m["bad_files"]}
    assert set(bad) == {"l_trunc.txt.gz", "m_corrupt.jsonl.zst", "n_dangling.txt", "o_fifo.txt"}
    assert "truncated" in bad["l_trunc.txt.gz"] and "l_trunc.txt.gz" in bad["l_trunc.txt.gz"]
    assert "m_corrupt.jsonl.zst" in bad["m_corrupt.jsonl.zst"]
    assert bad["n_dangling.txt"] == "dangling symbolic link"
    assert "not a regular file" in bad["o_fifo.txt"]


def test_nasty_corpus_rejections_and_events(nasty_build):
    _, out, m, _ = nasty_build
    rej = m["documents_rejected"]
    # f_blank: 3 whitespace-only lines; h_nocjk: 2 lines without CJK; k_records: 1 bad JSON, 1 missing field, 1 number
    assert rej == {"bad_json": 1, "empty": 3, "low_cjk_ratio": 2, "missing_text_field": 1, "text_not_a_string": 1}
    ev = m["events"]
    assert ev["invalid_utf8_replaced"] == 1
    assert m["decode_errors"] == [f"{Path(out).parent / 'nasty' / 'a_invalid.txt'}:2 (replaced)"]
    n_pieces = ev["long_line_piece"]
    assert n_pieces == sum(1 for r in {r["doc_id"] for r in read_rows(out)} if r.startswith("p_long.txt:2#"))
    assert n_pieces >= 480_000 // 50_000
    assert ev.get("long_line_hard_cut", 0) == 0  # the long line has sentence ends to cut at
    assert m["unk_tokens"] > 0 and "😀" in m["unk_chars"] and "🚀" in m["unk_chars"]


def test_nasty_corpus_row_contents(nasty_build, tok):
    _, out, m, _ = nasty_build
    rows = read_rows(out)
    by_doc: dict[str, list[int]] = {}
    for r in rows:
        by_doc.setdefault(r["doc_id"], []).extend(r["input_ids"][1:-1])

    def text(doc_id: str) -> str:
        return "".join(tok.id_to_token[i] for i in by_doc[doc_id])

    # separators inside a line never make extra documents
    assert [k for k in by_doc if k.startswith("d_seps.txt")] == ["d_seps.txt:1"]
    assert text("d_seps.txt:1") == "第一句第二句第三句第四句第五句第六句。"
    assert text("b_controls.txt:1") == "今天天气很好。"  # NUL and controls removed
    assert text("e_zero_width.txt:1") == "北京大学是一所大学。"  # zero-width removed, words intact
    assert text("c_bom.txt:1") == "带字节序标记的第一行。" and text("c_bom.txt:2") == "第二行用回车换行。"
    assert text("j_trad.txt:1") == "这是繁体中文的句子，我们会转换成简体。"  # --t2s
    assert "[UNK]" in text("i_emoji.txt:1") and "𠀀" not in text("i_emoji.txt:1")  # out of vocabulary
    assert text("a_invalid.txt:2") == "坏的(字节。"  # U+FFFD replacements, which BERT's tokenizer drops
    assert text("k_records.jsonl:3") == "含有空字符的记录。"  # raw control characters inside a JSON string
    assert {"f_blank.txt:4", "k_records.jsonl:1", "a_invalid.txt:1", "a_invalid.txt:3"} <= set(by_doc)
    assert not any(k.startswith(("g_empty", "h_nocjk", "l_trunc", "m_corrupt")) for k in by_doc)
    assert max(len(r["input_ids"]) for r in rows) <= 128
    # the long line's pieces, in order, give back the line
    pieces = sorted((k for k in by_doc if k.startswith("p_long.txt:2#")), key=lambda k: int(k.split("#")[1]))
    assert "".join(text(k) for k in pieces) == SENT * 8000


# ---------------------------------------------------------------------------- one behaviour each
def test_decode_error_modes(tmp_path):
    src = tmp_path / "x.txt"
    src.write_bytes("好的。\n".encode() + b"\xe4\xbd" + "坏。\n".encode())
    rep = raws(src)
    assert "\ufffd" in rep[1].text and rep[1].events == ("invalid_utf8_replaced",)
    skip = raws(src, on_decode_error="skip")
    assert skip[1].reject == "invalid_utf8" and skip[0].reject is None
    code, _, err = run_cli("build-corpus", str(src), "--on-decode-error", "fail", "--out", str(tmp_path / "o"))
    assert code == 2 and f"{src}:2: invalid UTF-8 at byte 0" in err and len(err.strip().splitlines()) == 1
    # fail stays fail even with --skip-bad-files
    code, _, err = run_cli("build-corpus", str(src), "--on-decode-error", "fail", "--skip-bad-files",
                           "--out", str(tmp_path / "o2"))
    assert code == 2 and "invalid UTF-8" in err
    code, _, err = run_cli("build-corpus", str(src), "--on-decode-error", "skip", "--out", str(tmp_path / "o3"), "-q")
    assert code == 0, err
    m = json.loads((tmp_path / "o3" / "manifest.json").read_text())
    assert m["documents_rejected"] == {"invalid_utf8": 1} and m["decode_errors"] == [f"{src}:2 (skipped)"]


def test_lone_surrogate_escapes_in_jsonl_follow_the_decode_policy(tmp_path):
    """JSON may escape half a surrogate pair; such text cannot be encoded and used to crash the build."""
    src = tmp_path / "x.jsonl"
    src.write_text('{"text": "北京\\ud800欢迎你。", "title": "标\\udfff题"}\n{"text": "上海很好。"}\n', encoding="utf-8")
    code, _, err = run_cli("build-corpus", str(src), "--title-field", "title", "--out", str(tmp_path / "r"), "-q")
    assert code == 0, err
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["documents_written"] == 2 and m["events"]["lone_surrogate_replaced"] == 1
    assert m["decode_errors"] == [f"{src}:1 (replaced)"] and verify_build(tmp_path / "r") == []
    code, _, err = run_cli("build-corpus", str(src), "--on-decode-error", "skip", "--out", str(tmp_path / "s"), "-q")
    assert code == 0, err
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert m["documents_rejected"] == {"lone_surrogate": 1} and m["documents_written"] == 1
    code, _, err = run_cli("build-corpus", str(src), "--on-decode-error", "fail", "--out", str(tmp_path / "f"))
    assert code == 2 and f"{src}:1: a lone UTF-16 surrogate" in err and len(err.strip().splitlines()) == 1


def test_crlf_and_lf_give_identical_documents(tmp_path):
    a, b = tmp_path / "lf.txt", tmp_path / "crlf.txt"
    a.write_bytes(f"{SENT}\n第二篇。\n".encode())
    b.write_bytes(f"{SENT}\r\n第二篇。\r\n".encode())
    assert [(r.id.split(":")[1], r.text) for r in raws(a)] == [(r.id.split(":")[1], r.text) for r in raws(b)]


def test_blank_line_documents_with_crlf_and_separators(tmp_path):
    src = tmp_path / "b.txt"
    src.write_bytes("第一篇第一句。\r\n第一篇\u2028第二句。\r\n\r\n \r\n第二篇。\r\n".encode())
    docs = raws(src, doc_sep="blank")
    assert [d.id for d in docs] == ["b.txt:1", "b.txt:5"]


def test_long_line_reader_memory_is_bounded(tmp_path):
    """A 50 MB line is read in pieces of at most 1 MB without ever holding the line."""
    src = tmp_path / "long.txt"
    block = (SENT * 2000).encode()  # 120 KB of real sentences
    size = 0
    with open(src, "wb") as fh:
        fh.write("第一行。\n".encode())
        while size < 50_000_000:
            fh.write(block)
            size += len(block)
        fh.write("\n最后一行。\n".encode())
    limit = 1_000_000
    tracemalloc.start()
    try:
        n_pieces, total, lines = 0, 0, set()
        for ln in iter_lines(src, limit):
            lines.add(ln.n)
            if ln.n == 2:
                assert ln.piece == n_pieces and len(ln.data) <= limit and not ln.hard
                assert ln.data.endswith("。".encode())
                n_pieces += 1
                total += len(ln.data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == {1, 2, 3} and total == size and n_pieces >= 50
    assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB while reading a {size / 1e6:.0f} MB line"


def _peak_rss_kb(src: Path, out: Path) -> int:
    """Peak RSS of a build in a fresh process (units close at 1 MiB of input by default)."""
    prog = ("import resource\n"
            "from zhmask.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", prog, "build-corpus", str(src), "--segmenter", "char", "--entities", "none",
                        "--max-doc-mb", "0.1", "--out", str(out), "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip().splitlines()[-1])


def test_long_line_build_memory_does_not_grow_with_the_line(tmp_path):
    """A 6 MB line costs no more memory than a 1 MB line: pieces, then units of bounded size."""
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text(SENT * 16_000 + "\n", encoding="utf-8")  # 1 MB
    big.write_text(SENT * 96_000 + "\n", encoding="utf-8")  # 6 MB
    rss_small = _peak_rss_kb(small, tmp_path / "o1")
    rss_big = _peak_rss_kb(big, tmp_path / "o6")
    # holding the 5 MB more as documents, words and tokens would cost well over 100 MB
    assert rss_big - rss_small < 30_000, (rss_small, rss_big)
    m = json.loads((tmp_path / "o6" / "manifest.json").read_text())
    assert m["events"]["long_line_piece"] == m["documents_read"] >= 60 and len(m["shards"]) >= 6
    assert verify_build(tmp_path / "o6") == []


def test_long_line_without_sentence_end_is_cut_at_character_boundaries(tmp_path):
    src = tmp_path / "x.txt"
    line = "汉" * 10_000 + "😀" * 3_000  # 42 KB without any sentence end
    src.write_text(line + "\n", encoding="utf-8")
    docs = raws(src, max_doc_bytes=1_000)
    assert all(len(d.text.encode()) <= 1_000 for d in docs)
    assert "".join(d.text for d in docs) == line
    assert docs[0].id == "x.txt:1#0" and docs[-1].id == f"x.txt:1#{len(docs) - 1}"
    assert "long_line_hard_cut" in docs[0].events and "long_line_piece" in docs[0].events


def test_long_jsonl_record_is_split_and_too_large_record_rejected(tmp_path, monkeypatch):
    import zhmask.steps.read as read

    src = tmp_path / "x.jsonl"
    src.write_text(json.dumps({"text": SENT * 100}, ensure_ascii=False) + "\n" + json.dumps({"text": "短。"}, ensure_ascii=False)
                   + "\n", encoding="utf-8")
    docs = raws(src, max_doc_bytes=1_000)
    assert [d.id for d in docs][-1] == "x.jsonl:2" and docs[0].id == "x.jsonl:1#0"
    assert "".join(d.text for d in docs[:-1]) == SENT * 100
    monkeypatch.setattr(read, "MAX_RECORD_BYTES", 3_000)  # the record is 6 KB: over the cap
    docs = raws(src, max_doc_bytes=1_000)
    assert [(d.id, d.reject) for d in docs] == [("x.jsonl:1", "record_too_large"), ("x.jsonl:2", None)]


def test_corrupt_files_stop_the_build_naming_the_file(tmp_path):
    src = tmp_path / "t.txt.gz"
    src.write_bytes(gzip.compress(("\n".join([SENT] * 100) + "\n").encode())[:-30])
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", str(src), "--out", str(out))
    assert code == 2 and str(src) in err and "truncated" in err and len(err.strip().splitlines()) == 1
    zst = tmp_path / "c.txt.zst"
    zst.write_bytes(b"not zstd at all")
    code, _, err = run_cli("build-corpus", str(zst), "--out", str(tmp_path / "o2"))
    assert code == 2 and str(zst) in err


def test_special_files_are_refused_before_any_work(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "ok.txt").write_text(SENT + "\n", encoding="utf-8")
    os.mkfifo(d / "pipe.txt")
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", str(d), "--out", str(out))
    assert code == 2 and "pipe.txt" in err and "--skip-bad-files" in err
    assert not out.exists()  # nothing was started


def _drop_dac(cmd: list[str]) -> list[str]:
    """As root, chmod 000 does not deny reads; drop the capabilities that bypass it."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search",
            "--inh-caps", "-dac_override,-dac_read_search", *cmd]


def test_unreadable_files_in_a_directory(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.txt").write_text(SENT + "\n", encoding="utf-8")
    locked = d / "b.txt"
    locked.write_text(SENT + "\n", encoding="utf-8")
    locked.chmod(0)
    sub = d / "sub"
    sub.mkdir()
    (sub / "c.txt").write_text(SENT + "\n", encoding="utf-8")
    sub.chmod(0)
    zhmask = [sys.executable, "-c", "from zhmask.cli import main; main()"]
    probe = subprocess.run(_drop_dac([sys.executable, "-c", f"open({str(locked)!r}).read()"]), capture_output=True)
    if probe.returncode == 0:
        pytest.skip("this environment cannot deny reads (no capability to drop)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        r = subprocess.run(_drop_dac(zhmask + ["build-corpus", str(d), "--out", str(tmp_path / "o")]),
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 2 and "b.txt" in r.stderr and "ermission denied" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        r = subprocess.run(_drop_dac(zhmask + ["build-corpus", str(d), "--skip-bad-files", "-q",
                                               "--out", str(tmp_path / "o2")]),
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
    finally:
        locked.chmod(0o644)
        sub.chmod(0o755)
    m = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    bad = {Path(b["file"]).name: b["error"] for b in m["bad_files"]}
    assert bad == {"b.txt": "cannot read: Permission denied", "sub": "cannot list directory: Permission denied"}
    assert m["documents_written"] == 1
    assert verify_build(tmp_path / "o2") == []


def test_empty_input_file_builds_an_empty_valid_corpus(tmp_path):
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", str(src), "--out", str(out), "-q")
    assert code == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert m["documents_read"] == 0 and m["examples_written"] == 0
    assert verify_build(out) == []


# ---------------------------------------------------------------------------- input validation
@pytest.mark.parametrize("args, needle", [
    (("--max-doc-mb", "0"), "--max-doc-mb"),
    (("--min-cjk-ratio", "1.5"), "--min-cjk-ratio"),
    (("--short-seq-prob", "-0.1"), "--short-seq-prob"),
    (("--mask-ratios", "0.5,0.5,0.5"), "--mask-ratios"),
    (("--docs-per-shard", "0"), "--docs-per-shard"),
    (("--workers", "0"), "--workers"),
    (("--max-seq-length", "4"), "--max-seq-length"),
    (("--on-decode-error", "ignore"), "--on-decode-error"),
    (("--dupe-factor", "0"), "--dupe-factor"),
    (("--dupe-factor", "101"), "--dupe-factor"),
    (("--option", "nonsense=1"), "--option nonsense"),
    (("--lexicon", "no-such-lexicon.txt"), "lexicon not found: no-such-lexicon.txt"),
    (("--entities", "spacy", "--spacy-model", "no_such_pipeline"), "--spacy-model 'no_such_pipeline'"),
    (("--entities", "spacy", "--spacy-model", "{empty}"), "no config.cfg"),
    (("--segmenter", "pkuseg", "--segmenter-model", "{empty}"), "needs features.msgpack and weights.npz"),
    (("--segmenter", "pkuseg", "--segmenter-model", "{pickled}"), "pickled features.pkl, which zhmask does not load"),
])
def test_bad_options_fail_before_any_work(tmp_path, args, needle):
    out = tmp_path / "o"
    (tmp_path / "empty").mkdir()
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "features.pkl").write_bytes(b"not loaded")
    (tmp_path / "pickled" / "weights.npz").write_bytes(b"")
    args = [a.format(empty=tmp_path / "empty", pickled=tmp_path / "pickled") for a in args]
    code, _, err = run_cli("build-corpus", *args, "--out", str(out))
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_build_that_stopped_before_any_shard_does_not_claim_its_directory(tmp_path, fixtures):
    """Only the build record of a failed start: another configuration takes the directory."""
    out = tmp_path / "o"
    (out / "data").mkdir(parents=True)
    (out / "build.json").write_text('{"fingerprint": "0000", "zhmask_version": "0.1.0"}', encoding="utf-8")
    (out / "data" / "shard-00000.arrow.tmp-1").write_bytes(b"partial")
    code, _, err = run_cli("build-corpus", str(fixtures / "inews_150.jsonl"), "--out", str(out), "-q")
    assert code == 0, err
    assert verify_build(out) == [] and not list((out / "data").glob("*.tmp-*"))
    # a directory holding finished work is still refused
    code, _, err = run_cli("build-corpus", str(fixtures / "inews_150.jsonl"), "--seed", "7", "--out", str(out))
    assert code == 2 and "another configuration" in err


@pytest.mark.parametrize("missing", ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"])
def test_vocab_needs_every_special_token_before_any_work(tmp_path, missing):
    from zhmask.paths import default_vocab

    lines = [t for t in default_vocab().read_text(encoding="utf-8").split("\n") if t != missing]
    v = tmp_path / "vocab.txt"
    v.write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", "--vocab", str(v), "--out", str(out))
    assert code == 2 and missing in err and not out.exists()


def test_broken_tokenizer_json_and_bad_types_are_one_line(tmp_path):
    t = tmp_path / "tokenizer.json"
    t.write_text("{broken", encoding="utf-8")
    code, _, err = run_cli("build-corpus", "--tokenizer", str(t), "--out", str(tmp_path / "o"))
    assert code == 2 and "cannot read tokenizer" in err and len(err.strip().splitlines()) == 1
    toml = tmp_path / "c.toml"
    toml.write_text('[build]\nmax_seq_length = "long"\n', encoding="utf-8")
    code, _, err = run_cli("build-corpus", "--pipeline", str(toml), "--out", str(tmp_path / "o"))
    assert code == 2 and "--max-seq-length must be an integer" in err
    f = tmp_path / "a-file"
    f.write_text("x")
    code, _, err = run_cli("build-corpus", "--out", str(f))
    assert code == 2 and "not a directory" in err


def test_no_pickle_for_data_or_configuration():
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for p in list((root / "zhmask").rglob("*.py")) + list((root / "trainers").rglob("*.py")) + \
            list((root / "benchmarks").rglob("*.py")) + list((root / "scripts").rglob("*.py")):
        src = p.read_text(encoding="utf-8")
        for i, line in enumerate(src.splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(w in code for w in ("import pickle", "pickle.load", "pickle.dump", "import dill", "joblib.load",
                                       "allow_pickle=True", "cloudpickle")):
                offenders.append(f"{p.relative_to(root)}:{i}")
            if "torch.load(" in code and "weights_only=True" not in code:
                offenders.append(f"{p.relative_to(root)}:{i} torch.load without weights_only=True")
    assert offenders == []


# ---------------------------------------------------------------------------- write errors
def _inews_args(fixtures, *extra: str) -> tuple[str, ...]:
    """Unit-level write errors: ``--no-shuffle`` (each unit's shard is a shard of the build)."""
    return (str(fixtures / "inews_150.jsonl"), "--docs-per-shard", "15", "--no-shuffle", *extra)


def _check_finished_shards_valid(out: Path) -> int:
    n = 0
    for st in sorted((out / "data").glob("*.stats.json")):
        stats = json.loads(st.read_text())
        assert sha256_file(out / stats["shard"]["file"]) == stats["shard"]["sha256"]
        n += 1
    assert not list((out / "data").glob("*.tmp-*")), "a temporary file was left behind"
    for shard in (out / "data").glob("*.arrow"):  # every final name is a complete Arrow stream
        with pa.memory_map(str(shard)) as src:
            ipc.open_stream(src).read_all()
    return n


def test_write_error_ends_build_and_leaves_finished_shards_valid(tmp_path, fixtures, monkeypatch):
    """A device that fills up after 200 KB: the build stops with one line, finished shards stay valid."""
    import errno

    from zhmask.write import shards

    written = {"n": 0}

    class FullDisk:
        def __init__(self, path):
            self.fh = open(path, "wb")
            self.closed = False

        def write(self, b):
            written["n"] += len(b)
            if written["n"] > 200_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(b)

        def flush(self):
            self.fh.flush()

        def close(self):
            self.closed = True
            self.fh.close()

        def tell(self):
            return self.fh.tell()

    monkeypatch.setattr(shards.ShardWriter, "_open_sink", lambda self: FullDisk(self.tmp))
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", *_inews_args(fixtures), "--out", str(out))
    assert code == 2 and "No space left on device" in err and "shard-" in err, err
    assert len(err.strip().splitlines()) == 1
    done = _check_finished_shards_valid(out)
    assert 0 < done < 10
    monkeypatch.undo()
    code, _, err = run_cli("build-corpus", *_inews_args(fixtures), "--out", str(out), "-q")
    assert code == 0, err
    clean = tmp_path / "clean"
    run_cli("build-corpus", *_inews_args(fixtures), "--out", str(clean), "-q")
    assert json.loads((out / "manifest.json").read_text())["shards"] == \
        json.loads((clean / "manifest.json").read_text())["shards"]


def test_full_disk_on_a_real_tmpfs(tmp_path, fixtures):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        out = mnt / "o"
        code, _, err = run_cli("build-corpus", *_inews_args(fixtures), "--out", str(out))
        assert code == 2 and "No space left on device" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert _check_finished_shards_valid(out) >= 1
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# ---------------------------------------------------------------------------- crashes
@pytest.fixture
def crashing_task():
    """A task that raises on one document (registered for this test only)."""
    from zhmask.labels import TASKS
    from zhmask.labels.mlm import generate

    def gen(docs, ctx):
        for doc in docs:
            if "梁朝伟" in doc.text:
                if os.environ.get("ZHMASK_TEST_HARD_CRASH") == "1":
                    os._exit(3)  # the worker process dies
                raise RuntimeError("boom")
            yield from generate([doc], ctx)

    TASKS.register("crash_test")(gen)
    yield "crash_test"
    TASKS.pop("crash_test")
    TASKS.entries.pop("crash_test")


def _crash_input(tmp_path: Path) -> Path:
    return crash_input(tmp_path, SENT)


@pytest.mark.parametrize("workers", [1, 2])
def test_crash_in_a_task_names_the_documents_and_fails(tmp_path, crashing_task, workers):
    src = _crash_input(tmp_path)
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", str(src), "--tasks", crashing_task, "--docs-per-shard", "5",
                           "--workers", str(workers), "--out", str(out))
    assert code == 1, err
    assert "unit 3" in err and "in.txt:16 .. in.txt:20" in err and "RuntimeError: boom" in err
    assert not (out / "manifest.json").exists()
    assert not any((out / d / "shard-00003.arrow").exists() for d in ("data", "units"))
    _check_finished_shards_valid(out)


def test_dead_worker_process_is_reported(tmp_path, crashing_task, monkeypatch):
    monkeypatch.setenv("ZHMASK_TEST_HARD_CRASH", "1")
    src = _crash_input(tmp_path)
    out = tmp_path / "o"
    code, _, err = run_cli("build-corpus", str(src), "--tasks", crashing_task, "--docs-per-shard", "5",
                           "--workers", "2", "--out", str(out))
    assert code == 1, err
    assert "worker process died on document in.txt:18 (unit 3, documents in.txt:16 .. in.txt:20)" in err
    assert not (out / "manifest.json").exists()


def test_crash_in_a_document_stage_names_the_document(tmp_path, pipeline):
    from zhmask.pipeline import DocumentCrash
    from zhmask.steps.read import RawDoc

    class Broken(str):  # a text the normaliser cannot handle: not a real str
        def translate(self, *_):
            raise ValueError("cannot translate")

    with pytest.raises(DocumentCrash, match="document x.txt:9 crashed the pipeline: ValueError"):
        pipeline.run_unit(0, [RawDoc("x.txt:9", Broken("好。\u3000"))], tmp_path)


# ---------------------------------------------------------------------------- verify finds damage
@pytest.fixture(scope="module")
def small_build(tmp_path_factory, fixtures):
    out = tmp_path_factory.mktemp("small") / "o"
    res = build_corpus(BuildConfig(inputs=[str(fixtures / "inews_150.jsonl")], docs_per_shard=50, out=str(out)))
    assert verify_build(out) == []
    return out, res


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_verify_finds_a_damaged_shard(small_build, tmp_path):
    out = _copy(small_build[0], tmp_path)
    shard = out / "data" / "shard-00001.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    problems = verify_build(out)
    assert any("shard-00001.arrow: sha256 differs" in p for p in problems)
    code, _, err = run_cli("verify", str(out))
    assert code == 1 and "violation" in err and "sha256" in err


def test_verify_finds_broken_accounting_and_leftovers(small_build, tmp_path):
    out = _copy(small_build[0], tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    m["documents_written"] -= 1
    (out / "manifest.json").write_text(json.dumps(m))
    (out / "data" / "shard-00002.arrow.tmp-99").write_bytes(b"partial")
    (out / "data" / "shard-00009.arrow").write_bytes(b"stray")
    problems = verify_build(out)
    assert any(p.startswith("accounting: documents_read 150 != documents_written 149") for p in problems)
    assert any("documents_written 149 but the rows come from 150 documents" in p for p in problems)
    assert any("temporary file left behind" in p for p in problems)
    assert any("shard-00009.arrow: shard not listed" in p for p in problems)
    (out / "manifest.json").unlink()
    assert "never finished" in verify_build(out)[0]


def test_verify_refuses_another_schema_version(small_build, tmp_path):
    out = _copy(small_build[0], tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    m["schema_version"] = "0"
    (out / "manifest.json").write_text(json.dumps(m))
    assert any(p.startswith("manifest schema version 0 (this zhmask reads") for p in verify_build(out))


def test_verify_finds_broken_rows(small_build, tmp_path, tok):
    from zhmask.schema import schema_with_metadata
    from zhmask.write.arrays import rows_to_block
    from zhmask.write.shards import ShardWriter

    out = _copy(small_build[0], tmp_path)
    shard = out / "data" / "shard-00000.arrow"
    with pa.memory_map(str(shard)) as src:
        reader = ipc.open_stream(src)
        schema = reader.schema
        rows = reader.read_all().to_pylist()
    rows[0]["word_ids"] = rows[0]["word_ids"][:1] + [5] + rows[0]["word_ids"][2:]  # a jump
    rows[1]["labels"] = [tok.cls_id] + rows[1]["labels"][1:]  # a label on [CLS]
    rows[2]["input_ids"] = rows[2]["input_ids"][:3] + [tok.mask_id] + rows[2]["input_ids"][4:]  # unlabelled [MASK]
    for r in rows:
        r["entities"] = [(e["start"], e["end"], e["type"]) for e in r["entities"] or []]
    rows[3]["entities"] = [(0, 2, "PER")]  # covers [CLS]
    rows[4]["token_type_ids"] = rows[4]["token_type_ids"][:-1]
    rows[5]["perm_order"] = list(range(len(rows[5]["input_ids"])))  # a column only plm declares
    with ShardWriter(shard, schema) as w:
        w.write_block(rows_to_block([{k: (np.asarray(v) if isinstance(v, list) and k != "entities" else v)
                                      for k, v in r.items()} for r in rows], schema))
    m = json.loads((out / "manifest.json").read_text())
    m["shards"][0]["sha256"] = w.sha256
    (out / "manifest.json").write_text(json.dumps(m))
    problems = "\n".join(verify_build(out))
    assert "word ids do not start at 0 and rise by steps of 0 or 1" in problems
    assert "a label on a special token" in problems
    assert "a [MASK] in input_ids without a label" in problems
    assert "not on word tokens inside the sequence" in problems
    assert "per-token columns differ in length" in problems
    assert "column perm_order is filled, but neither task mlm nor masking none declares it" in problems
    assert "sha256" not in problems


def test_tokenizer_write_error_is_one_line(tmp_path):
    """The tokenizer files are written after the shards: a write error there (a full disk) ends
    the build with one line too, with no partial file under a final name."""
    from zhmask.steps.tokenize import WordTokenizer
    from zhmask.write.tokenizer import write_tokenizer

    (tmp_path / "vocab.txt.tmp").mkdir()  # cannot be written as a file: an OSError like ENOSPC
    with pytest.raises(ZhmaskError, match=r"cannot write .*vocab\.txt: "):
        write_tokenizer(WordTokenizer(), tmp_path)
    assert not (tmp_path / "vocab.txt").exists()
