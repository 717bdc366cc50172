"""ERNIE-GEN targets (fragments, spans, noise), seq2seq pairs and the multi-flow attention masks."""
from __future__ import annotations

import glob
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from conftest import run_cli
from zhmask.api import build_corpus
from zhmask.config import BuildConfig
from zhmask.generation.attention import batch_masks, flow_masks, row_masks, span_starts, to_additive
from zhmask.generation.fragments import reassemble, sample_fragments, word_runs
from zhmask.generation.ngram_stats import SEP, NgramCounter, split_spans, t_stat
from zhmask.generation.noise import dynamic_noise, noise_target
from zhmask.labels.ernie_gen import check_ernie_gen
from zhmask.labels.seq2seq import check_seq2seq
from zhmask.rng import rng_for
from zhmask.steps.normalize import Normalizer, vocab_equivalents
from zhmask.steps.read import RawDoc

ROOT = Path(__file__).resolve().parents[2]


def rows_of(out: Path) -> list[dict]:
    t = pa.concat_tables([ipc.open_stream(p).read_all() for p in sorted(glob.glob(str(out / "data" / "*.arrow")))])
    return t.to_pylist()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("eg") / "out"
    res = build_corpus(BuildConfig(tasks=["ernie_gen"], out=str(out)))
    return res, rows_of(out)


@pytest.fixture(scope="module")
def docs(pipeline, sample_lines):
    return {f"pd1998_sample.txt:{i + 1}": pipeline.document(RawDoc(f"pd1998_sample.txt:{i + 1}", ln))[0]
            for i, ln in enumerate(sample_lines)}


def test_target_share_near_25_percent(built):
    _, rows = built
    src = sum(len(r["source_ids"]) - 2 for r in rows)
    tgt = sum(len(r["target_ids"]) for r in rows)
    share = tgt / (src + tgt)
    assert len(rows) > 500
    assert abs(share - 0.25) < 0.02, share


def test_reassembles_documents_exactly_and_fragments_keep_words(built, docs, tok):
    res, rows = built
    assert res.manifest["events"].get("ernie_gen_example_too_short", 0) == 0
    by_doc: dict[str, list[dict]] = {}
    for r in rows:
        by_doc.setdefault(r["doc_id"], []).append(r)
    assert len(by_doc) == 400
    for doc_id, rs in by_doc.items():
        doc = docs[doc_id]
        rs.sort(key=lambda r: int(r["example_id"].rsplit("ernie_gen", 1)[1]))
        off = 0
        pieces = []
        for r in rs:
            orig = reassemble(np.array(r["source_ids"][1:-1]), np.array(r["target_ids"]), r["fragment_bounds"])
            pieces.append(orig)
            words = doc.tokens.word[off:off + len(orig)]
            for b in r["fragment_bounds"]:  # every fragment edge is a word edge of the real document
                if 0 < b < len(orig):
                    assert words[b] != words[b - 1], (doc_id, b)
            off += len(orig)
        assert np.array_equal(np.concatenate(pieces), doc.tokens.ids), doc_id
    ctx = {"cls_id": tok.cls_id, "sep_id": tok.sep_id}
    assert [b for r in rows if (b := check_ernie_gen(r, ctx))] == []


def test_verify_catches_broken_fragments(built, tok):
    """The ernie_gen check fails rows whose fragments cut a word or do not add up."""
    _, rows = built
    ctx = {"cls_id": tok.cls_id, "sep_id": tok.sep_id}
    # a row whose last fragment ends before the example does (else the bounds check fires first)
    r = dict(next(r for r in rows if r["fragment_bounds"][-1] < len(r["source_ids"]) - 2 + len(r["target_ids"])))
    r["target_ids"] = r["target_ids"][:-1]
    assert any("do not add up" in p for p in check_ernie_gen(r, ctx))
    for r in rows:  # move a fragment's start one token into a multi-token word
        src_w = r["word_ids"][1:len(r["source_ids"]) - 1]
        fb = list(r["fragment_bounds"])
        s = fb[0]
        if 0 < s < len(src_w) and s >= 2 and src_w[s - 1] == src_w[s - 2]:
            bad = dict(r, fragment_bounds=[s - 1] + fb[1:])
            bad["target_ids"] = [r["source_ids"][s]] + list(r["target_ids"])  # keep the sums consistent
            assert check_ernie_gen(bad, ctx), r["example_id"]
            return
    pytest.fail("no fragment after a multi-token word")


def test_fragment_lengths_follow_the_mixture(docs):
    """Lengths are counted in tokens (the paper's D): one distribution per example, U(1,4) w.p.
    0.4, U(4,32) w.p. 0.6, each fragment rounded to the nearest word edge.

    Examples of 509 tokens (``--pipeline ernie-gen``: 512 minus [CLS] [SEP] [SEP]) cut from the
    real word sequence of the 400 paragraphs.
    """
    counts = np.concatenate([word_runs(d.tokens.word)[1] for d in docs.values()])
    cum = np.cumsum(counts)
    examples = np.split(counts, np.searchsorted(cum, np.arange(509, cum[-1], 509)))
    choice = Counter()
    drawn = {0: [], 1: []}
    real = {0: [], 1: []}
    for k in range(6):
        for j, c in enumerate(examples):
            plan = sample_fragments(c, rng_for(k, "mixture", j))
            choice[plan.dist] += 1
            lo, hi = ((1, 4), (4, 32))[plan.dist]
            ct = np.concatenate([[0], np.cumsum(c)])
            for (s, e), d, clipped in zip(plan.frags, plan.drawn, plan.clipped):
                t = int(ct[e] - ct[s])
                assert lo <= d <= hi and e > s
                assert t <= hi or e - s == 1  # above the maximum only when one word is longer
                if not clipped:
                    # the word edge nearest the drawn length: no neighbouring edge is nearer
                    # (one word at least; the next edge only while it stays within the maximum)
                    if e - s > 1:
                        assert abs(t - d) <= abs(int(ct[e - 1] - ct[s]) - d)
                    if e < len(c) and ct[e + 1] - ct[s] <= hi:
                        assert abs(t - d) <= abs(int(ct[e + 1] - ct[s]) - d)
                    drawn[plan.dist].append(d)
                    real[plan.dist].append(t)
            assert sum(plan.clipped) <= 1 + plan.gap_clipped  # only the fragment reaching the budget
    n = sum(choice.values())
    assert n > 800 and abs(choice[0] / n - 0.4) < 4 * math.sqrt(0.24 / n), (choice, n)
    short = Counter(drawn[0])
    assert set(short) == {1, 2, 3, 4} and all(abs(short[v] / len(drawn[0]) - 0.25) < 0.04 for v in short)
    assert min(drawn[1]) == 4 and max(drawn[1]) == 32 and 16 < np.mean(drawn[1]) < 20  # U(4,32): mean 18
    # realised token lengths stay close to the drawn ones (rounding to word edges is unbiased
    # but for the first word of a U(1,4) fragment, which is kept whole)
    assert abs(np.mean(real[1]) - np.mean(drawn[1])) < 1.0, (np.mean(real[1]), np.mean(drawn[1]))
    assert max(real[1]) <= 32 + max(counts) and np.mean(np.asarray(real[1]) > 32) < 0.005
    assert 1.5 < np.mean(real[0]) < 3.5, np.mean(real[0])


def test_noise_rate_labels_clean_and_dynamic_equals_static(built, tmp_path, tok):
    _, rows = built
    n_noise = sum(len(r["noise_positions"]) for r in rows)
    n_tgt = sum(len(r["target_ids"]) for r in rows)
    assert abs(n_noise / n_tgt - 0.05) < 0.01, n_noise / n_tgt
    for r in rows:
        ns, t = len(r["source_ids"]), np.array(r["target_ids"])
        inp = np.array(r["input_ids"][ns:ns + len(t)])
        assert set(np.flatnonzero(inp != t).tolist()) == set(r["noise_positions"])
        assert r["input_ids"][:ns] == r["source_ids"] and r["input_ids"][-1] == tok.sep_id
    # dynamic: clean inputs in the shard; dynamic_noise at epoch 0 reproduces the static shard
    out = tmp_path / "dyn"
    build_corpus(BuildConfig(tasks=["ernie_gen"], out=str(out), options={"noise": "dynamic"}))
    dyn = rows_of(out)
    assert len(dyn) == len(rows)
    for d, s in zip(dyn[:200], rows[:200]):
        assert d["noise_positions"] is None and d["input_ids"][len(d["source_ids"]):-1] == d["target_ids"]
        ids, pos = dynamic_noise(d, seed=12345, epoch=0, rate=0.05, replace_ids=tok.replaceable_ids)
        assert ids.tolist() == s["input_ids"] and pos.tolist() == s["noise_positions"]
    ids1, _ = dynamic_noise(dyn[0], seed=12345, epoch=1, rate=0.5, replace_ids=tok.replaceable_ids)
    assert ids1.tolist() != dyn[0]["input_ids"]


def test_noise_target_rate_and_replacements(tok):
    t = np.arange(1000, 1400, dtype=np.int32)
    tot = 0
    for k in range(50):
        noised, pos = noise_target(t, 0.05, rng_for(1, "x", "n", k), tok.replaceable_ids)
        assert (noised[pos] != t[pos]).all() and np.array_equal(np.delete(noised, pos), np.delete(t, pos))
        assert np.isin(noised[pos], tok.replaceable_ids).all()
        tot += len(pos)
    assert abs(tot / (50 * 400) - 0.05) < 0.01


# ------------------------------------------------------------------------------ attention
def grid(lines: str) -> np.ndarray:
    return np.array([[c == "1" for c in ln.replace(" ", "")] for ln in lines.strip().splitlines()])


# source [CLS] a [SEP] (3), target t0 t1 t2 [SEP] (4), spans {t0 t1} {t2} {[SEP]}
CONTEXTUAL = grid("""
111 0000
111 0000
111 0000
111 1000
111 1100
111 1110
111 1111
""")
# keys: C a S | t0 t1 t2 E | A0 A1 A2 A3
WORD = grid("""
111 0000 1000
111 1000 0100
111 1100 0010
111 1110 0001
""")
SPAN = grid("""
111 0000 1000
111 0000 0100
111 1100 0010
111 1110 0001
""")


def test_three_flows_cell_by_cell():
    starts = span_starts([0, 2, 3], 4)
    assert starts.tolist() == [0, 0, 2, 3]
    m = flow_masks(3, 4, starts)
    assert m.contextual.tolist() == CONTEXTUAL.tolist()
    assert m.word.tolist() == WORD.tolist()
    assert m.span.tolist() == SPAN.tolist()
    # without spans the span flow is the word flow minus the earlier-target columns of... nothing:
    # every position its own span equals word-by-word
    assert flow_masks(3, 4).span.tolist() == WORD.tolist()


def test_batched_masks_pad_and_match_single():
    b = batch_masks([3, 2], [4, 2], [[0, 0, 2, 3], [0, 1]])
    assert b.contextual.shape == (2, 7, 7) and b.word.shape == (2, 4, 11)
    assert b.contextual[0].tolist() == CONTEXTUAL.tolist() and b.span[0].tolist() == SPAN.tolist()
    one = flow_masks(2, 2, [0, 1])
    assert np.array_equal(b.contextual[1][:4, :4], one.contextual) and not b.contextual[1][4:].any()
    # the padded generation flows keep [ATTN] keys at column Lm = 7
    assert np.array_equal(b.word[1][:2, :4], one.word[:, :4]) and b.word[1][0, 7] and b.word[1][1, 8]
    assert not b.word[1][2:].any() and not b.word[1][:, 4:7].any()
    add = to_additive(b.word)
    arr = add.numpy() if hasattr(add, "numpy") else add
    assert (arr[b.word] == 0).all() and np.isneginf(arr[~b.word]).all()


def test_row_masks_on_a_shard_row(built):
    _, rows = built
    r = rows[0]
    ns, nt = len(r["source_ids"]), len(r["input_ids"]) - len(r["source_ids"])
    m = row_masks(r)
    assert m.contextual.shape == (ns + nt, ns + nt) and m.span.shape == (nt, ns + 2 * nt)
    sb = r["span_bounds"]
    for a, b in zip(sb, sb[1:]):  # inside a span every query sees the same context
        assert all(np.array_equal(m.span[a, :ns + nt], m.span[i, :ns + nt]) for i in range(a, b))


# ------------------------------------------------------------------------------ spans
def test_t_test_and_span_split():
    c = NgramCounter()
    words = ["北京", "大学", "的", "学生", "，"] * 30 + ["学生", "的", "大学", "北京"] * 3
    c.add(words, ["ns", "n", "uj", "n", "x"] * 30 + ["n", "uj", "n", "ns"] * 3)
    n = len(words)
    assert c.bi["北京" + SEP + "大学"] == 30 and "学生" + SEP + "，" not in c.bi  # punctuation never counts
    expected = (30 / n - (33 / n) * (33 / n)) / math.sqrt((30 / n) / n)
    assert math.isclose(t_stat(30, n, (33 / n) ** 2), expected)
    bi, tri = c.collocations()
    assert "北京" + SEP + "大学" in bi and "北京" + SEP + "大学" + SEP + "的" in tri
    assert "大学" + SEP + "北京" not in bi  # seen 3 times: not significant
    ws = ["北京", "大学", "的", "学生", "在", "北京"]
    assert split_spans(ws, [(0, 4)], (bi, tri)) == [(0, 3), (3, 4)]
    assert split_spans(ws, [(0, 2), (3, 6)], (bi, set())) == [(0, 2), (3, 4), (4, 5), (5, 6)]
    assert split_spans(ws, [(1, 3)], None) == [(1, 2), (2, 3)]


def test_ngram_counter_is_bounded_and_deterministic():
    words = [f"w{(i * 7919) % 5003}" for i in range(20000)]
    pos = ["n"] * len(words)
    a, b = NgramCounter(cap=1000), NgramCounter(cap=1000)
    for k in range(0, 20000, 500):
        a.add(words[k:k + 500], pos[k:k + 500])
        b.add(words[k:k + 500], pos[k:k + 500])
    assert max(len(a.uni), len(a.bi), len(a.tri)) <= 1000 and a.pruned > 0
    assert a.bi == b.bi and a.tri == b.tri


# ------------------------------------------------------------------------------ seq2seq
def test_seq2seq_pairs_from_inews(tmp_path, inews_docs, tok):
    out = tmp_path / "s2s"
    res = build_corpus(BuildConfig(inputs=[str(ROOT / "tests/fixtures/inews_150.jsonl")], tasks=["seq2seq"],
                                   source_field="text", target_field="title", out=str(out)))
    rows = sorted(rows_of(out), key=lambda r: int(r["doc_id"].rsplit(":", 1)[1]))  # input order (the build shuffles)
    assert res.manifest["examples_by_task"] == {"seq2seq": 150} and len(rows) == 150
    ctx = {"cls_id": tok.cls_id, "sep_id": tok.sep_id}
    normalize = Normalizer(equivalents=vocab_equivalents(tok))  # the build's, “ ” … mapped included
    for rec, r in zip(inews_docs, rows):
        assert r["target_ids"] == tok.encode_text(normalize(rec["title"]))
        src = tok.encode_text(normalize(rec["text"]))
        assert r["source_ids"][1:-1] == src[:len(r["source_ids"]) - 2] and len(r["input_ids"]) <= 128
        assert r["fragment_bounds"] is None and check_seq2seq(r, ctx) == []
    code, _, err = run_cli("build-corpus", str(ROOT / "tests/fixtures/inews_150.jsonl"), "--tasks", "seq2seq",
                           "--source-field", "text", "--out", str(tmp_path / "x"))
    assert code == 2 and "--target-field" in err and err.count("\n") == 1


def test_bad_option_is_one_line(tmp_path):
    code, _, err = run_cli("build-corpus", "--tasks", "ernie_gen", "--option", "fragment_probs=[0.5,0.6]",
                           "--out", str(tmp_path / "x"))
    assert code == 2 and "fragment_probs" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------ determinism, docs
def test_byte_identical_for_one_and_two_workers(tmp_path):
    shas = []
    for w in (1, 2):
        res = build_corpus(BuildConfig(tasks=["ernie_gen"], docs_per_shard=100, workers=w, out=str(tmp_path / f"w{w}")))
        shas.append([s["sha256"] for s in res.manifest["shards"]])
    assert len(shas[0]) == 4 and shas[0] == shas[1]


def test_docs_example_is_current():
    from zhmask.generation.render import BEGIN, END, build

    text = (ROOT / "docs" / "ernie_gen.md").read_text(encoding="utf-8")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")
    assert block == build()
