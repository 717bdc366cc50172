"""``zhmask span-table`` and ERNIE-GEN builds that read it (docs/ernie_gen.md, "Spans")."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.generation.ngram_stats import SEP, NgramCounter
from zhmask.generation.span_table import count_corpus, read_table, write_table
from zhmask.pipeline import Pipeline
from zhmask.steps.read import RawDoc


@pytest.fixture(scope="module")
def sample_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("spantable") / "spans.tsv"
    code, stdout, err = run_cli("span-table", "--out", str(out), "-q")
    assert code == 0, err
    return out, json.loads(stdout)


def test_table_equals_the_t_test_over_the_whole_corpus(sample_table, sample_lines):
    out, summary = sample_table
    # the same counts by hand: every document of the embedded sample in one counter
    pipe = Pipeline(BuildConfig())
    counter = NgramCounter(10**6)
    for i, ln in enumerate(sample_lines):
        doc, _ = pipe.document(RawDoc(f"s:{i}", ln))
        counter.add(doc.word_texts(), doc.words.pos)
    bi, tri = counter.collocations(2.576)
    assert read_table(out, 2.576) == (bi, tri)
    assert summary["bigrams"] == len(bi) > 50 and summary["trigrams"] == len(tri) > 5
    assert summary["words"] == counter.n and summary["keys_pruned"] == 0
    # a stricter threshold at read time keeps a subset
    strict = read_table(out, 4.0)
    assert strict[0] < bi and strict[1] <= tri


def test_capped_counts_are_bounded_and_deterministic(tmp_path):
    cfg = BuildConfig().validate()
    a = count_corpus(cfg, cap=2000)
    b = count_corpus(cfg, cap=2000)
    assert max(len(a.uni), len(a.bi), len(a.tri)) <= 2000 and a.pruned > 0 and a.floor >= 1
    write_table(a, tmp_path / "a.tsv")
    write_table(b, tmp_path / "b.tsv")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    head = (tmp_path / "a.tsv").read_text(encoding="utf-8").splitlines()[:6]
    assert f"# keys_pruned\t{a.pruned}" in head and f"# floor\t{a.floor}" in head


def _spans(table_opts: dict, docs) -> tuple[int, int, list, list]:
    """(multi-word spans, spans, (example, start, end) of each multi-word span, examples)."""
    pipe = Pipeline(BuildConfig(tasks=["ernie_gen"], options=table_opts).validate())
    multi, total, seen = 0, 0, []
    exs = list(pipe.examples(docs))
    for ex in exs:
        ns = len(ex.extra["source_ids"])
        tw = np.asarray(ex.word_ids)[ns:ns + len(ex.extra["target_ids"])]
        sb = ex.extra["span_bounds"]
        for a, b in zip(sb[:-1], sb[1:]):
            n = len(np.unique(tw[a:b]))
            total += 1
            if n > 1:
                multi += 1
                seen.append((ex, a, b))
    return multi, total, seen, exs


def test_builds_use_the_table_and_its_hash_is_in_the_fingerprint(sample_table, sample_lines, tmp_path):
    out, _ = sample_table
    pipe = Pipeline(BuildConfig())
    docs = [pipe.document(RawDoc(f"s:{i}", ln))[0] for i, ln in enumerate(sample_lines[:100])]
    words = {d.id: d.word_texts() for d in docs}
    bi, tri = read_table(out, 2.576)
    multi, total, seen, exs = _spans({"span_table": str(out)}, docs)
    none, _, _, _ = _spans({"span_stats": "none"}, docs)
    unit, _, _, _ = _spans({"span_stats": "unit"}, docs)  # the same 100 documents' own statistics
    # a table over the whole (400-paragraph) corpus finds more collocations than one unit of 100
    assert none == 0 and multi > 1.3 * unit and multi / total > 0.015, (multi, unit, total)
    from zhmask.generation.fragments import original_positions

    by_id = {d.id: d for d in docs}
    off: dict = {}
    start = {}  # every multi-word span is an n-gram of the table: its words, found in the document
    for ex in exs:
        n = len(ex.extra["source_ids"]) - 2 + len(ex.extra["target_ids"])
        start[ex.example_id] = off.get(ex.doc_id, 0)  # the example's first token in its document
        off[ex.doc_id] = off.get(ex.doc_id, 0) + n
    for ex, a, b in seen:
        _, tpos = original_positions(len(ex.extra["source_ids"]) - 2, len(ex.extra["target_ids"]),
                                     ex.extra["fragment_bounds"])
        doc = by_id[ex.doc_id]
        w = doc.tokens.word[tpos[a:b] + start[ex.example_id]]
        key = SEP.join(words[ex.doc_id][i] for i in dict.fromkeys(w.tolist()))
        assert key in bi or key in tri, key
    # the fingerprint follows the table's content, not its path
    copy = tmp_path / "spans.tsv"
    copy.write_bytes(out.read_bytes())
    same = BuildConfig(tasks=["ernie_gen"], options={"span_table": str(copy)})
    before = same.fingerprint()
    lines = copy.read_text(encoding="utf-8").splitlines()
    copy.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # one collocation fewer
    assert same.fingerprint() != before
    assert BuildConfig(tasks=["mlm"]).fingerprint() == BuildConfig(tasks=["mlm"]).fingerprint()


def test_bad_tables_and_options_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("n\twords\tcount\tt\n2\ta b\t3\t4.0\n", encoding="utf-8")
    with pytest.raises(ZhmaskError, match="not a span table"):
        BuildConfig(tasks=["ernie_gen"], options={"span_table": str(bad)}).validate()
    bad.write_text("# zhmask-span-table 1\n2\ta b c\t3\t4.0\n", encoding="utf-8")
    with pytest.raises(ZhmaskError, match="line 2"):
        BuildConfig(tasks=["ernie_gen"], options={"span_table": str(bad)}).validate()
    with pytest.raises(ZhmaskError, match="cannot read"):
        BuildConfig(tasks=["ernie_gen"], options={"span_table": str(tmp_path / "missing.tsv")}).validate()
    with pytest.raises(ZhmaskError, match="needs span_stats=table"):
        BuildConfig(tasks=["ernie_gen"], options={"span_table": str(bad), "span_stats": "unit"}).validate()
    code, out, err = run_cli("build-corpus", "--tasks", "ernie_gen", "--option", f"span_table={bad}",
                             "--out", str(tmp_path / "o"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "line 2" in err
    code, out, err = run_cli("span-table", str(tmp_path / "nothing-here.txt"), "--out", str(tmp_path / "t.tsv"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
