"""Units as descriptors (zhmask.steps.plan): the driver plans file ranges, each worker reads its own.

Every plan is checked against the reader run over the whole file: the units' documents, read
range by range, must be exactly the file's documents (ids, text, events), cut where the driver
used to cut them, and every byte of every file must belong to exactly one range.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zhmask.api import _inputs, build_corpus
from zhmask.config import BuildConfig
from zhmask.steps import plan
from zhmask.steps.plan import UnitDescriptor, plan_units, read_unit
from zhmask.steps.read import read_file

SENT = "我们今天在北京讨论了这个问题。"  # 45 bytes, ends a sentence
LONG = "今天天气很好，" * 400  # 8,400 bytes without a sentence end: hard cuts


def _whole(cfg: BuildConfig) -> list:
    """The documents of every input, read by the reader as one piece (the reference)."""
    return [raw for f in _inputs(cfg)[0]
            for raw in read_file(f, fmt=cfg.format, doc_sep=cfg.doc_sep, text_field=cfg.text_field,
                                 title_field=cfg.title_field, on_decode_error=cfg.on_decode_error,
                                 max_doc_bytes=plan.max_doc_bytes(cfg))]


def _check_plan(cfg: BuildConfig, exact: bool = True) -> list[UnitDescriptor]:
    """The plan reads back as the whole files do, its ranges tile every file, and (``exact``)
    every unit but the last holds --docs-per-shard documents."""
    descs = list(plan_units(cfg, _inputs(cfg)[0], []))
    assert [d.unit for d in descs] == list(range(len(descs)))
    per_unit = [read_unit(cfg, d).raws for d in descs]
    assert [r for raws in per_unit for r in raws] == _whole(cfg)
    if exact:
        assert all(len(raws) == cfg.docs_per_shard for raws in per_unit[:-1])
    tiles: dict[str, list[tuple[int, int]]] = {}
    for d in descs:
        for s in d.segments:
            tiles.setdefault(s.path, []).append((s.start, s.end))
    for path, ranges in tiles.items():
        size = pq.ParquetFile(path).metadata.num_rows if path.endswith(".parquet") else len(_content(Path(path)))
        assert ranges[0][0] == 0 and ranges[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])), ranges
    return descs


def _content(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


TEXTS = {
    "crlf": "\r\n".join([SENT, "", SENT * 2, "\r", SENT, "  ", SENT]) + "\r\n",
    "no_final_newline": "\n".join([SENT] * 9),
    "bom": "\ufeff" + "\n".join([SENT] * 8) + "\n",
    "empty": "",
    "blank_lines_only": "\n\n\r\n\n",
    "long_lines": "\n".join([SENT, LONG, SENT * 3, SENT * 60, SENT, LONG + "\r"]) + "\n",
    "long_last_line_no_newline": SENT + "\n" + SENT * 70,
}


@pytest.mark.parametrize("name", sorted(TEXTS))
@pytest.mark.parametrize("dps", [1, 2, 3, 7])
def test_text_plans_read_back_exactly_one_document_a_line(tmp_path, name, dps):
    path = tmp_path / f"{name}.txt"
    path.write_bytes(TEXTS[name].encode("utf-8"))
    _check_plan(BuildConfig(inputs=[str(path)], docs_per_shard=dps, max_doc_mb=0.001))


@pytest.mark.parametrize("name", ["crlf", "long_lines", "blank_lines_only", "bom"])
@pytest.mark.parametrize("dps", [1, 2, 5])
def test_blank_line_documents_are_cut_at_their_first_line(tmp_path, name, dps):
    path = tmp_path / f"{name}.txt"
    path.write_bytes(TEXTS[name].encode("utf-8"))
    # lines of spaces separate documents too; pieces of long documents count as documents
    _check_plan(BuildConfig(inputs=[str(path)], docs_per_shard=dps, doc_sep="blank", max_doc_mb=0.001))


def test_a_unit_that_ends_exactly_at_a_newline_and_units_across_files(tmp_path):
    """Three files of 3, 0 and 4 lines, 2 documents a unit: units span files, and one ends
    exactly at the end of the first file (a boundary on its last newline)."""
    for name, n in (("a.txt", 3), ("b.txt", 0), ("c.txt", 4)):
        (tmp_path / name).write_text("".join(f"{SENT}{i}\n" for i in range(n)), encoding="utf-8")
    cfg = BuildConfig(inputs=[str(tmp_path / n) for n in ("a.txt", "b.txt", "c.txt")], docs_per_shard=2)
    descs = _check_plan(cfg)
    assert [[(Path(s.path).name, s.start, s.end) for s in d.segments] for d in descs][1] == \
        [("a.txt", 2 * (len(SENT) * 3 + 2), 3 * (len(SENT) * 3 + 2)), ("b.txt", 0, 0), ("c.txt", 0, len(SENT) * 3 + 2)]


def test_a_long_line_is_cut_into_units_at_its_pieces(tmp_path, monkeypatch):
    """Units close at 16 MiB of input even inside one line: the range ends at a piece cut and
    the next starts at the following piece (ids <file>:<line>#<k> as before)."""
    monkeypatch.setattr(plan, "UNIT_MAX_BYTES", 3_000)
    path = tmp_path / "long.txt"
    path.write_text(SENT + "\n" + LONG + SENT * 100 + "\n" + SENT + "\n", encoding="utf-8")
    descs = _check_plan(BuildConfig(inputs=[str(path)], docs_per_shard=1000, max_doc_mb=0.001), exact=False)
    assert len(descs) >= 4 and any(s.open_end for d in descs for s in d.segments)
    assert any(s.piece > 0 for d in descs for s in d.segments)


def test_a_long_blank_line_document_is_cut_into_units_at_its_pieces(tmp_path, monkeypatch):
    """A blank-line document longer than the unit cap (a file without blank lines read with
    --doc-sep blank) is cut into units at the reader's pieces: a range ends inside the
    document and the next starts at its piece k (ids <file>:<first line>#<k> as before)."""
    monkeypatch.setattr(plan, "UNIT_MAX_BYTES", 3_000)
    path = tmp_path / "book.txt"
    path.write_text(SENT + "\n\n" + "\n".join([SENT] * 150) + "\n" + LONG + "\n  \n" + SENT + "\n", encoding="utf-8")
    cfg = BuildConfig(inputs=[str(path)], docs_per_shard=1000, doc_sep="blank", max_doc_mb=0.001)
    descs = _check_plan(cfg, exact=False)
    segs = [s for d in descs for s in d.segments]
    assert len(descs) >= 4 and any(s.ends_in_doc for s in segs) and any(s.doc_line == 3 and s.doc_piece for s in segs)
    assert all(len(read_unit(cfg, d).raws) <= 5 for d in descs)  # about 3,000 bytes of pieces of up to 1,000
    assert read_unit(cfg, descs[1]).raws[0].id.startswith("book.txt:3#")


def test_jsonl_and_gzip_plans(tmp_path, fixtures):
    records = [json.loads(x) for x in (fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines()][:40]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    lines[3:3] = ["", "   ", "{not json", '{"title": "no text"}']  # a blank line is no record
    data = ("\n".join(lines) + "\n").encode("utf-8")
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(data))
    for name in ("a.jsonl", "b.jsonl.gz"):
        _check_plan(BuildConfig(inputs=[str(tmp_path / name)], docs_per_shard=6, title_field="title"), exact=False)


def test_range_checksums_are_the_sha256_of_the_bytes_read(tmp_path):
    data = ("\n".join(f"{SENT}{i}" for i in range(50)) + "\n").encode("utf-8")
    (tmp_path / "a.txt").write_bytes(data)
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(data))
    cfg = BuildConfig(inputs=[str(tmp_path / "a.txt"), str(tmp_path / "b.txt.gz")], docs_per_shard=7)
    seen = 0
    for d in plan_units(cfg, _inputs(cfg)[0], []):
        got = read_unit(cfg, d)
        assert [(r["start"], r["end"]) for r in got.ranges] == [(s.start, s.end) for s in d.segments]
        for r in got.ranges:  # the uncompressed bytes for .gz
            assert r["sha256"] == hashlib.sha256(data[r["start"]:r["end"]]).hexdigest()
            seen += 1
    assert seen >= 16


def test_parquet_plans_are_record_ranges_reading_only_the_named_columns(tmp_path):
    n = 23
    table = pa.table({"text": [f"{SENT}{i}" for i in range(n)], "title": [f"t{i}" for i in range(n)],
                      "big": ["x" * 1000] * n, "label": list(range(n))})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=4)
    cfg = BuildConfig(inputs=[str(path)], docs_per_shard=5, title_field="title")
    descs = _check_plan(cfg)
    assert [(s.start, s.end) for d in descs for s in d.segments] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    raws = read_unit(cfg, descs[1]).raws
    assert raws[0].id == "t.parquet:5" and raws[0].title == "t5" and raws[0].meta == {}  # big, label: not read


def test_jsonl_field_check_looks_past_the_first_unit(tmp_path):
    """A field first seen after the first unit's records is still found (the check reads on)."""
    path = tmp_path / "late.jsonl"
    path.write_text("".join(json.dumps({"other": i}) + "\n" for i in range(4)) +
                    "".join(json.dumps({"text": f"{SENT}{i}"}, ensure_ascii=False) + "\n" for i in range(6)),
                    encoding="utf-8")
    res = build_corpus(BuildConfig(inputs=[str(path)], docs_per_shard=2, out=str(tmp_path / "o"),
                                   segmenter="char", entities="none", masking="none", tasks=["mlm"]))
    assert res.manifest["documents_rejected"]["missing_text_field"] == 4


def test_workers_get_descriptors_and_the_manifest_checksum_comes_from_their_ranges(tmp_path, fixtures, monkeypatch):
    """The local pool is sent each unit's descriptor (a few hundred bytes, no document text);
    --workers 2 writes the shards --workers 1 writes; the per-input checksum is the sha256 of
    the ranges' sha256 digests, which are those of the file's bytes."""
    from zhmask.engines import local

    sent = []
    real = local.LocalEngine._pool

    class Recording:
        def __init__(self, pool):
            self.pool = pool

        def submit(self, fn, *args):
            sent.append(args)
            return self.pool.submit(fn, *args)

        def shutdown(self, **kw):
            self.pool.shutdown(**kw)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.pool.__exit__(*exc)

    monkeypatch.setattr(local.LocalEngine, "_pool", lambda self, n: Recording(real(self, n)))
    src = fixtures / "inews_150.jsonl"
    common = dict(inputs=[str(src)], docs_per_shard=40, shuffle=False, segmenter="char", entities="none",
                  masking="none", tasks=["mlm"])
    one = build_corpus(BuildConfig(**common, out=str(tmp_path / "w1")))
    two = build_corpus(BuildConfig(**common, workers=2, out=str(tmp_path / "w2")))
    assert [s["sha256"] for s in one.manifest["shards"]] == [s["sha256"] for s in two.manifest["shards"]]
    assert len(sent) == 4 and all(isinstance(job, str) and len(job) < 400 for _, job, _ in sent)
    assert [UnitDescriptor.from_json(job).unit for _, job, _ in sent] == [0, 1, 2, 3]
    data = src.read_bytes()
    digests = b"".join(hashlib.sha256(data[s.start:s.end]).digest()
                       for _, job, _ in sent for s in UnitDescriptor.from_json(job).segments)
    entry = two.manifest["inputs"][0]
    assert entry["ranges"] == 4 and entry["sha256_of_ranges"] == hashlib.sha256(digests).hexdigest()
    assert one.manifest["inputs"] == two.manifest["inputs"]


def test_a_jsonl_file_without_the_field_fails_before_any_worker_writes(tmp_path):
    """The driver checks the field before planning the file's ranges: with two workers and a
    unit a record, no unit of the failing file reaches a shard."""
    from zhmask.errors import ZhmaskError

    path = tmp_path / "news.jsonl"
    path.write_text("".join(json.dumps({"content": f"{SENT}{i}"}, ensure_ascii=False) + "\n" for i in range(6)),
                    encoding="utf-8")
    out = tmp_path / "o"
    with pytest.raises(ZhmaskError, match=r"news.jsonl: no field 'text' \(--text-field\) in the records"):
        build_corpus(BuildConfig(inputs=[str(path)], docs_per_shard=1, workers=2, out=str(out)))
    assert not list(out.rglob("*.arrow"))


_PARTS = ["好", "。", "\n", "\n", "\r\n", " ", "\n\n", "今天天气很好" * 40, "”", "\ufeff"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(_PARTS), max_size=40), dps=st.integers(1, 4),
       doc_sep=st.sampled_from(["line", "blank", "jsonl"]), cap=st.sampled_from([700, 1500, 1 << 24]),
       gz=st.booleans())
def test_any_text_plans_back_to_the_whole_files_documents(tmp_path_factory, monkeypatch, parts, dps, doc_sep, cap, gz):
    """Random text (CRLF, BOM, blank lines, spaces, lines over --max-doc-mb, small unit caps that
    cut inside lines and documents, gzip; as text or as JSONL, whose lines are then mostly
    bad_json records): the units' ranges read back as the whole file and tile it."""
    monkeypatch.setattr(plan, "UNIT_MAX_BYTES", cap)
    data = "".join(parts).encode("utf-8")
    name = "x.jsonl" if doc_sep == "jsonl" else "x.txt"
    path = tmp_path_factory.mktemp("p") / (name + ".gz" if gz else name)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    cfg = BuildConfig(inputs=[str(path)], docs_per_shard=dps, doc_sep="line" if doc_sep == "jsonl" else doc_sep,
                      max_doc_mb=0.001)
    _check_plan(cfg, exact=cap > len(data) and doc_sep != "jsonl")  # JSONL: a line of spaces is no record


def test_a_worker_decompresses_a_file_once_for_its_ranges_in_order(tmp_path, monkeypatch):
    """A .gz range starts where the previous range of the file in the same process ended (the
    stream is kept open), instead of decompressing the file from its start for every unit;
    a range before it opens the file again.  The documents are the same either way."""
    from zhmask.steps import read

    data = ("\n".join(f"{SENT}{i}" for i in range(60)) + "\n").encode("utf-8")
    path = tmp_path / "a.txt.gz"
    path.write_bytes(gzip.compress(data))
    cfg = BuildConfig(inputs=[str(path)], docs_per_shard=7)
    descs = list(plan_units(cfg, _inputs(cfg)[0], []))
    opened = []
    real = read.open_binary
    monkeypatch.setattr(read, "open_binary", lambda p: opened.append(p) or real(p))
    monkeypatch.setattr(read, "_LEFT_OPEN", {})
    in_order = [read_unit(cfg, d) for d in descs]
    assert len(descs) == 9 and len(opened) == 1
    assert [r["sha256"] for u in in_order for r in u.ranges] == \
        [hashlib.sha256(data[s.start:s.end]).hexdigest() for d in descs for s in d.segments]
    backwards = [read_unit(cfg, d).raws for d in reversed(descs)]
    assert len(opened) == 1 + len(descs) and backwards[::-1] == [u.raws for u in in_order]


def test_a_crlf_line_one_byte_over_the_limit_reads_alike_whatever_the_blocks(tmp_path, monkeypatch):
    """A line of exactly --max-doc-mb bytes before its CRLF is one document, also when a read
    block ends between its \\r and its newline (the reader keeps a byte in reserve), so a
    worker whose blocks start elsewhere reads it as the whole file does."""
    from zhmask.steps import read

    path = tmp_path / "crlf.txt"
    path.write_bytes(b"a" * 1000 + b"\r\n" + SENT.encode("utf-8") + b"\r\n")
    whole = list(read.iter_lines(path, 1000))
    monkeypatch.setattr(read, "READ_BLOCK", 1001)  # the first block ends with the \r
    assert list(read.iter_lines(path, 1000)) == whole and whole[0].piece is None and len(whole[0].data) == 1000
