"""SpanBERT span masking: spans that never touch, stored in ``span_bounds``, with the target's
length distribution (docs/masking.md, "span")."""
from __future__ import annotations

import glob
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from oracle import WordTable, example_rows, sample_word_ngrams

from zhmask.config import BuildConfig
from zhmask.masking.span import span_bounds, span_bounds_rows, span_positions
from zhmask.masking.units import geometric_probs
from zhmask.pipeline import Pipeline
from zhmask.steps.read import RawDoc


@pytest.fixture(scope="module")
def long_docs(sample_lines):
    """The bundled People's Daily paragraphs, 20 to a document, so that rows reach 512 tokens."""
    base = Pipeline(BuildConfig())
    docs = []
    for k in range(0, 240, 20):
        doc, _ = base.document(RawDoc(f"pd:{k}", "\n".join(sample_lines[k:k + 20])))
        docs.append(doc)
    return docs


def test_span_rows_store_bounds_and_spans_never_touch(long_docs):
    pipe = Pipeline(BuildConfig(masking="span", max_seq_length=512, max_predictions_per_seq=76).validate())
    stats = {"masking": {}}
    spans = Counter()
    n_rows = 0
    for ex in pipe.examples(long_docs):
        for row in example_rows(pipe, ex, stats):
            n_rows += 1
            lab, wid, ids = (np.asarray(row[k]) for k in ("labels", "word_ids", "input_ids"))
            sb = np.asarray(row["span_bounds"])
            assert sb.dtype == np.int32 and sb[0] == 0 and sb[-1] == (lab != -100).sum()
            assert (np.diff(sb) > 0).all()
            for s, e in span_positions(lab, sb):
                assert (lab[s:e] != -100).all()
                # the boundary tokens exist and are not predicted; whole words only
                assert s >= 1 and e < len(ids) and lab[s - 1] == -100 and lab[e] == -100
                assert wid[s - 1] != wid[s] and wid[e] != wid[e - 1]
                spans[len(np.unique(wid[s:e]))] += 1
    st = stats["masking"]
    assert n_rows > 10
    # the spans read back from span_bounds are the units the strategy chose, length by length
    assert dict(spans) == {int(k[len("span_units_n"):]): v for k, v in st.items() if k.startswith("span_units_n")}
    assert sum(spans.values()) == st["units"]


def test_span_bounds_rows_equals_row_by_row():
    rng = np.random.default_rng(0)
    rows = [np.where(rng.random(n) < 0.3, rng.integers(0, 99, n), -100).astype(np.int32)
            for n in (0, 1, 5, 40, 3, 0, 17)]
    rows.append(np.full(6, 7, np.int32))  # every position predicted: one span
    rows.append(np.full(6, -100, np.int32))  # none: [0]
    flat, counts = span_bounds_rows(np.concatenate(rows), [len(r) for r in rows])
    cuts = np.cumsum(counts)
    for r, b, c in zip(rows, cuts, counts):
        one = span_bounds(r)
        assert flat[b - c:b].tolist() == one.tolist()
        has = r != -100
        runs = int(has[0]) + int((np.diff(has.astype(int)) == 1).sum()) if len(r) else 0
        assert len(one) == runs + 1 and one[-1] == has.sum()
    assert span_bounds(rows[-2]).tolist() == [0, 6] and span_bounds(rows[-1]).tolist() == [0]


def _synthetic_table(rng, words: int) -> WordTable:
    ntok = rng.choice([1, 2, 2, 3], size=words)  # Chinese words: mostly two characters
    end = np.cumsum(ntok)
    return WordTable(end - ntok, end, np.ones(words, bool), np.ones(words - 1, bool))


def test_realised_span_lengths_match_the_target_at_512_tokens():
    """400 rows of ~230 words (~512 tokens), budget 76 tokens: the realised distribution is
    SpanBERT's clipped Geo(0.2) within 5% (mean, share of 1-word spans), and spans never touch."""
    probs = geometric_probs(0.2, 10)
    rng = np.random.default_rng(7)
    counts = np.zeros(10)
    for i in range(400):
        wt = _synthetic_table(rng, 230)
        sw, nw, nt = sample_word_ngrams(wt, probs, 76, np.random.default_rng(i), Counter(), "span", gap=1)
        assert nt.sum() <= 76
        o = np.argsort(sw)
        assert (sw[o][1:] > sw[o][:-1] + nw[o][:-1]).all()  # a free word between two spans
        counts += np.bincount(nw, minlength=11)[1:]
    real = counts / counts.sum()
    lens = np.arange(1, 11)
    mean, target = (real * lens).sum(), (probs * lens).sum()
    assert abs(mean / target - 1) < 0.05, (mean, target)
    assert abs(real[0] / probs[0] - 1) < 0.05, (real[0], probs[0])


def test_dynamic_span_bounds_follow_the_epoch(long_docs):
    from zhmask.masking.dynamic import DynamicMasking
    from oracle import rows_to_batch

    cfg = BuildConfig(masking="span", max_seq_length=512, max_predictions_per_seq=76).validate()
    static = Pipeline(BuildConfig(masking="span", max_seq_length=512, max_predictions_per_seq=76,
                                  dupe_factor=2).validate())
    from zhmask.masking.unigram import CurrentUnit

    dyn = DynamicMasking("span", config=cfg, tables=CurrentUnit(None, static.unit_table(long_docs[:3])))
    exs = list(static.examples(long_docs[:3]))
    copies = rows_to_batch([r for ex in exs for r in example_rows(static, ex, {"masking": {}})]).to_pydict()
    epoch0 = {k: v[0::2] for k, v in copies.items()}
    epoch1 = {k: v[1::2] for k, v in copies.items()}
    # the rows of copy 0 re-masked at epoch 1 equal copy 1, span_bounds included
    got = dyn.for_epoch(1)({**epoch0, "example_id": [e.split("@")[0] for e in epoch0["example_id"]]})
    assert got["labels"] == epoch1["labels"] and got["span_bounds"] == epoch1["span_bounds"]
    assert got["span_bounds"] != epoch0["span_bounds"]
    one = dyn.for_epoch(1)({k: v[0] for k, v in epoch0.items()} | {"example_id": exs[0].example_id})
    assert one["span_bounds"] == epoch1["span_bounds"][0]


def test_a_span_build_verifies_and_the_check_catches_wrong_bounds(tmp_path, fixtures):
    from conftest import run_cli
    from zhmask.masking import STRATEGIES
    from zhmask.masking.checks import check_masked_row as common_checks
    from zhmask.reader import Build

    out = tmp_path / "out"
    src = tmp_path / "inews_40.jsonl"
    src.write_text("".join((fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines(True)[:40]),
                   encoding="utf-8")
    code, _, err = run_cli("build-corpus", str(src), "--masking", "span",
                           "--tasks", "mlm,sentence_reorder", "--max-seq-length", "256", "--out", str(out), "-q")
    assert code == 0, err
    code, _, err = run_cli("verify", str(out))
    assert code == 0, err
    rows = pa.concat_tables([ipc.open_stream(p).read_all() for p in sorted(glob.glob(str(out / "data" / "*.arrow")))]
                           ).to_pylist()
    ctx = {"config": {"masking": "span", "max_predictions_per_seq": Build(out).max_seq_length}}

    def check_masked_row(row, ctx):  # every masked row's checks, then those span registers
        return common_checks(row, ctx) + [msg for fn in STRATEGIES.checks_of("span") for msg in fn(row, ctx)]
    mlm = next(r for r in rows if r["task"] == "mlm" and len(r["span_bounds"]) > 2)
    reorder = next(r for r in rows if r["task"] == "sentence_reorder")
    assert check_masked_row(mlm, ctx) == [] and check_masked_row(reorder, ctx) == []
    assert reorder["span_bounds"][0] == 1  # sentence_reorder keeps its own layout (segment starts)
    merged = dict(mlm, span_bounds=[mlm["span_bounds"][0]] + mlm["span_bounds"][2:])  # two spans as one
    assert check_masked_row(merged, ctx) == ["--masking span: span_bounds are not the runs of predicted positions"]
    assert check_masked_row(dict(mlm, span_bounds=None), ctx) == ["--masking span: no span_bounds"]
