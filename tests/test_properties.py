"""Property-based tests (hypothesis) over arbitrary Unicode input.

For every registered label generator (``zhmask.labels.TASKS``) and every registered masking
strategy (``zhmask.masking.STRATEGIES``), including those other modules add: arbitrary text
(any code point, biased towards Chinese, punctuation and the characters that break loaders)
goes through the whole per-document pipeline, the task and the strategy without an exception,
every row passes the checks ``zhmask verify`` runs (common and per task), the masking only
changes labelled positions, and the same seed gives the same rows.  The reader and the
normaliser get their own properties.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zhmask.labels  # noqa: F401  (registers every task)
import zhmask.masking  # noqa: F401  (registers every strategy)
from zhmask.checks import row_checks
from zhmask.commands.verify import check_row
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.labels import TASKS
from zhmask.masking import STRATEGIES
from zhmask.steps.read import RawDoc

HANZI = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研质"
PUNCT = "。，、！？；：“”‘’（）《》【】…—·!?.,;:\"'()[]-"
NASTY = ("\x00\x01\x07\x0b\x0c\x1b\x7f\x85\u00a0\u00ad\u200b\u200c\u200d\u2028\u2029\u2060\ufeff\ufffd\u3000\t\r\n "
         "😀🚀👍🏽𠀀𠀁𪚥𫠠豈\uf900\ufa0a①②ＡＢＣ１２３ｶﾀｶﾅ é́ ﬁ ß ﷺ \u0301\u200f\u202e")
CHARS = st.one_of(
    st.sampled_from(HANZI), st.sampled_from(HANZI), st.sampled_from(HANZI),
    st.sampled_from(PUNCT), st.sampled_from(NASTY),
    st.characters(exclude_categories=("Cs",)),  # any code point (no lone surrogates: not valid UTF-8)
    st.sampled_from("abcXYZ0123456789 "),
)
TEXT = st.text(CHARS, max_size=300)
DOCS = st.lists(st.tuples(TEXT, st.text(CHARS, max_size=40)), min_size=1, max_size=4)
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

REJECT_REASONS = {"empty", "no_tokens", "low_cjk_ratio"}
_PIPES: dict[tuple[str, str], object] = {}


def _config(task: str, masking: str) -> BuildConfig:
    """The default configuration, plus what a task or strategy needs to validate (fields)."""
    from zhmask.paths import pipelines_dir

    tries = [BuildConfig(tasks=[task], masking=masking),
             BuildConfig(tasks=[task], masking=masking, source_field="text", target_field="title", title_field="title")]
    for preset in sorted(pipelines_dir().glob("*.toml")):  # a preset that uses it knows its knobs
        cfg = BuildConfig.from_preset(preset.stem)
        if cfg.masking == masking or task in cfg.tasks:
            opts = {k: v for k, v in cfg.options.items()
                    if k in {**STRATEGIES.declared([masking]), **TASKS.declared([task])}}
            tries.append(BuildConfig.from_dict({**cfg.to_dict(), "tasks": [task], "masking": masking, "options": opts,
                                                "dupe_factor": 1, "inputs": []}))
    last = None
    for cfg in tries:
        try:
            return cfg.validate()
        except ZhmaskError as exc:
            last = exc
    pytest.fail(f"task {task} with masking {masking} does not validate with defaults or source/target fields: {last}")


def _pipeline(task: str, masking: str):
    key = (task, masking)
    if key not in _PIPES:
        from zhmask.pipeline import Pipeline

        _PIPES[key] = Pipeline(_config(task, masking))
    return _PIPES[key]


@pytest.fixture(scope="module")
def row_ctx():
    from zhmask.commands.verify import row_context

    return row_context(BuildConfig().to_dict())


def _check_document(doc) -> None:
    n = len(doc.text)
    sents = doc.sentences
    assert sents[0, 0] == 0 and sents[-1, 1] == n and (sents[1:, 0] == sents[:-1, 1]).all()
    w = doc.words
    assert (w.starts < w.ends).all() and (w.starts[1:] >= w.ends[:-1]).all() and w.ends.max() <= n
    t = doc.tokens
    assert len(t) > 0 and ((t.word[1:] - t.word[:-1]) >= 0).all() and t.word.max() < len(w)
    assert (t.starts >= w.starts[t.word]).all() and (t.ends <= w.ends[t.word]).all()
    for sp in doc.entities:
        assert 0 <= sp.start < sp.end <= n


def _run(task: str, masking: str, docs: list[tuple[str, str]], row_ctx) -> None:
    pipe = _pipeline(task, masking)
    raws = [RawDoc(f"d{i}", text, title=title or None, meta={"title": title}) for i, (text, title) in enumerate(docs)]
    events: Counter = Counter()
    pipe.ctx.events = events
    pipe.ctx.ent_cache = {}
    kept = []
    for doc, reason in pipe.documents(raws, events):  # the production path: the texts as one unit
        if doc is None:
            assert reason in REJECT_REASONS
            continue
        _check_document(doc)
        kept.append(doc)
    ctx = {**row_ctx, "config": pipe.config.to_dict()}
    exs = list(pipe.examples(kept))
    rows, again = _masked(pipe, exs), _masked(pipe, exs)  # a pure function of (examples, seed)
    n = pipe.config.dupe_factor
    assert len(rows) == len(again) == n * len(exs)
    for k, (row, r2) in enumerate(zip(rows, again)):
        assert row["input_ids"] == r2["input_ids"] and row["labels"] == r2["labels"]
        ex = exs[k // n]
        orig, inp, lab = np.asarray(ex.input_ids), np.asarray(row["input_ids"]), np.asarray(row["labels"])
        assert len(inp) == len(orig) == len(lab)
        changed = inp != orig
        assert (lab[changed] != -100).all(), "input corrupted where nothing is predicted"
        assert (lab[lab != -100] == orig[lab != -100]).all(), "a label is not the original token"
        problems = check_row(row, ctx)
        for fn in row_checks(row["task"], pipe.config.masking):
            problems += fn(row, ctx)
        assert problems == [], (row["example_id"], problems)


def _masked(pipe, exs) -> list[dict]:
    """The rows of ``exs`` as the build writes them (mask batches, through the shard schema)."""
    from zhmask.pipeline import MASK_BATCH
    from zhmask.rng import DrawsBatch
    from zhmask.write.arrays import blocks_to_batch

    out: list[dict] = []
    for i in range(0, len(exs), MASK_BATCH):
        blocks = pipe.mask_batch(exs[i:i + MASK_BATCH], DrawsBatch(), {"masking": {}})
        if blocks:
            out += blocks_to_batch(blocks).to_pylist()
    return out


TASK_NAMES = sorted(TASKS)
STRATEGY_NAMES = sorted(STRATEGIES)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_every_task_on_arbitrary_unicode(task, row_ctx):
    @SETTINGS
    @given(DOCS)
    def prop(docs):
        _run(task, "none", docs, row_ctx)

    prop()


@pytest.mark.parametrize("masking", STRATEGY_NAMES)
def test_every_masking_strategy_on_arbitrary_unicode(masking, row_ctx):
    @SETTINGS
    @given(DOCS)
    def prop(docs):
        _run("mlm", masking, docs, row_ctx)

    prop()


def test_registries_are_covered():
    """New tasks and strategies are picked up by the parametrisation above."""
    assert "mlm" in TASK_NAMES and "none" in STRATEGY_NAMES
    assert set(TASK_NAMES) == set(TASKS) and set(STRATEGY_NAMES) == set(STRATEGIES)


@SETTINGS
@given(TEXT)
def test_normalised_text_is_clean(text):
    from zhmask.steps.normalize import normalize

    out = normalize(text)
    assert out == out.strip() and "  " not in out and "\n" not in out
    assert not any(ch in out for ch in "\x00\x0b\x0c\x85\u2028\u2029\u200b\u200d\ufeff\r\t")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.text(CHARS, max_size=60), max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans(),
       st.sampled_from([1, 3, 7, 64, 1 << 20]), st.integers(4, 200))
def test_reader_pieces_reassemble_every_line(tmp_path_factory, lines, sep, bom, block, limit):
    import zhmask.steps.read as read

    path = tmp_path_factory.mktemp("lines") / "x.txt"
    body = sep.join(line.replace("\n", " ").replace("\r", " ") for line in lines) + (sep if lines else "")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body.encode("utf-8"))
    saved = read.READ_BLOCK
    read.READ_BLOCK = block
    try:
        got: dict[int, list] = {}
        for ln in read.iter_lines(path, limit):
            assert len(ln.data) <= limit
            ln.data.decode("utf-8")  # never cut inside a character
            got.setdefault(ln.n, []).append(ln)
    finally:
        read.READ_BLOCK = saved
    expect = [line.replace("\n", " ").replace("\r", " ").encode("utf-8") for line in lines]
    assert sorted(got) == list(range(1, len(expect) + 1))
    for n, pieces in got.items():
        assert b"".join(p.data for p in pieces) == expect[n - 1]
        assert pieces[-1].last and not any(p.last for p in pieces[:-1])
