"""The unit-level document stages (Pipeline.documents, run_unit) against the per-document oracle
(tests/oracle.py).

Every test compares the two on the same input and fails on any difference: sentences, words
(offsets, dtype, POS tags), entities, tokens, rejections and events.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from zhmask.config import BuildConfig
from zhmask.pipeline import DocumentCrash, Pipeline
from zhmask.record import Words
from zhmask.steps.read import RawDoc
from oracle import reference_document, reference_documents

EDGE = [
    "",
    "   ",
    "好",
    "a",
    "。",
    "！？",
    "中",
    "江泽民",
    "江泽民发表讲话。",
    "iPhone12很好用 hello world 😀😀 Café",
    "他的email是abc@example.com，电话025-12345678。",
    "ＣＰＵ温度达到８０℃，GPU也很热！",
    "𠀀𠀁是扩展B区的汉字，㐀是扩展A。",
    "Mr. Smith went to Washington. 他说：“好。”然后走了……U.S.A. 3.5 度。",
    "他说。 A sentence. 中文。",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" * 3,
    "12345678901234567890123456789012345678901234567890",
    "中华人民共和国中央人民政府今天成立了",
    "全国人民代表大会常务委员会副委员长",
    "\u200b\u200b",
    "\x00\x01控制字符\x7f",
    "tab\there\u3000全角空格\u00a0nbsp",
    "カタカナとひらがな、한국어도 있어요。",
    "カタカナとひらがなの中文。",  # runs split into words, yet align() does not look (no run outside U+3000..U+9FFF)
    "「引号」『书名』（括号）【方括号】《书名号》",
    "……",
    "...",
    "e.g. i.e. a.m. 3.14159",
    "“你好”，他说。“再见！”",
    "北京。上海。广州。深圳。",
    "画蛇添足，一举两得，实事求是。",
    "张三和李四在北京大学见到了王五。",
    "\n",
    "第一行\n第二行\n\n第三段",
    "A",
    "A.",
    ".A",
    "朱镕基总理在人民大会堂会见了克林顿。",
]


def _same_doc(a, b) -> None:
    assert (a is None) == (b is None)
    if a is None:
        return
    assert (a.id, a.text, a.title, a.meta) == (b.id, b.text, b.title, b.meta)
    assert a.sentences.dtype == b.sentences.dtype and a.sentences.shape == b.sentences.shape
    assert np.array_equal(a.sentences, b.sentences), a.text
    for f in ("starts", "ends"):
        x, y = getattr(a.words, f), getattr(b.words, f)
        assert x.dtype == y.dtype and np.array_equal(x, y), (f, a.text)
    assert a.words.pos == b.words.pos, a.text
    assert a.entities == b.entities, a.text
    for f in ("ids", "starts", "ends", "word"):
        x, y = getattr(a.tokens, f), getattr(b.tokens, f)
        assert x.dtype == y.dtype and np.array_equal(x, y), (f, a.text)


def _compare(pipe: Pipeline, raws: list[RawDoc]) -> None:
    ev_one: Counter = Counter()
    one = [reference_document(pipe, r, ev_one) for r in raws]
    many, ev_many, unk = pipe._documents_batched(raws)
    for (d, _), u in zip(one, unk):
        if d is not None and u is not None:
            assert u == bool((d.tokens.ids == pipe.tok.unk_id).any())
    assert len(one) == len(many)
    for (d1, r1), (d2, r2) in zip(one, many):
        assert r1 == r2
        _same_doc(d1, d2)
    assert ev_one == ev_many


@pytest.fixture(scope="module")
def pipes():
    cache: dict = {}

    def get(**kw) -> Pipeline:
        key = tuple(sorted(kw.items()))
        if key not in cache:
            cache[key] = Pipeline(BuildConfig(**kw))
        return cache[key]

    return get


def _raws(texts, prefix="d", titles=None) -> list[RawDoc]:
    return [RawDoc(f"{prefix}{i}", t, title=(titles[i] if titles else None)) for i, t in enumerate(texts)]


# ---------------------------------------------------------------------------- whole documents
def test_fixtures_default_pipeline(pipes, fixtures, sample_lines, inews_docs):
    pipe = pipes()
    _compare(pipe, _raws(sample_lines))
    _compare(pipe, [RawDoc(d["id"], d["text"], title=d.get("title")) for d in inews_docs])
    gold = (fixtures / "pd1998_gold_200.txt").read_text(encoding="utf-8").splitlines()
    _compare(pipe, _raws([" ".join(ln.split()) for ln in gold], "g"))  # segmented text: spaces between words


def test_edge_cases_one_unit_and_alone(pipes):
    pipe = pipes()
    _compare(pipe, _raws(EDGE))
    for i, t in enumerate(EDGE):  # each alone, and each between neighbours
        _compare(pipe, _raws([t]))
        _compare(pipe, _raws([EDGE[i - 1], t, EDGE[(i + 1) % len(EDGE)]]))


def test_rejections_inside_a_unit(pipes):
    pipe = pipes(min_cjk_ratio=0.5)
    raws = _raws(["中文句子。", "English only text here.", "", "  "] + EDGE)
    raws.append(RawDoc("bad", "x", reject="invalid_utf8"))
    _compare(pipe, raws)


@pytest.mark.parametrize("kw", [
    {"segmenter": "char"},
    {"segmenter": "jieba"},
    {"entities": "none"},
    {"hmm": True},
    {"lowercase": False},
    {"t2s": True},
])
def test_other_configurations(pipes, sample_lines, inews_docs, kw):
    if kw.get("t2s"):
        pytest.importorskip("opencc")
    pipe = pipes(**kw)
    texts = sample_lines[:120] + [d["text"] for d in inews_docs[:30]] + EDGE
    _compare(pipe, _raws(texts))


def test_blank_line_documents_keep_newlines(pipes, fixtures):
    pipe = pipes(doc_sep="blank")
    gold = (fixtures / "pd1998_gold_200.txt").read_text(encoding="utf-8").splitlines()
    docs = ["\n".join(gold[i:i + 7]) for i in range(0, 120, 7)]
    _compare(pipe, _raws(docs + ["第一行\n第二行\n\n第三段", "A.\nB.\n中文。\n", "\n\n好\n\n"]))


def test_exact_tokenizer(tmp_path, pipes, sample_lines):
    pipe = pipes()
    pipe.tok.tk.save(str(tmp_path / "tokenizer.json"))
    exact = Pipeline(BuildConfig(tokenizer=str(tmp_path / "tokenizer.json")))
    assert exact.tok.mode == "exact"
    _compare(exact, _raws(sample_lines[:60] + EDGE))


@pytest.mark.parametrize("segmenter", ["rjieba", "char"])
def test_lone_surrogates(tmp_path, pipes, segmenter):
    """A text with a lone surrogate (the readers replace them; a plugin's RawDoc may not) fails
    one by one; the batched path fails too and the unit's crash names that document."""
    pipe = pipes(segmenter=segmenter)
    texts = ["正常的句子。", "好\ud800的", "前\udfff"]
    with pytest.raises(Exception):
        pipe.document(RawDoc("s", texts[1]))
    with pytest.raises(Exception):
        pipe.documents(_raws(texts))
    with pytest.raises(DocumentCrash, match="document d1 crashed"):
        pipe.run_unit(0, _raws(texts), tmp_path)


def test_texts_the_separator_could_join_go_alone(pipes, monkeypatch):
    pipe = pipes()
    norm = pipe.normalizer

    class Loose:  # a normaliser that leaves edge whitespace (as a t2s conversion might)
        def __call__(self, text, keep_newlines=False):
            return norm(text, keep_newlines) + (" " if text.startswith("x") else "")

    monkeypatch.setattr(pipe, "normalizer", Loose())
    _compare(pipe, _raws(["x江泽民", "中文。", "x好 ", "末尾。"]))


# ---------------------------------------------------------------------------- the stages alone
def test_sentences_joined_fuzz():
    from zhmask.steps.segment import JOIN, joinable
    from oracle import split_sentences
    from zhmask.steps.sentences import split_sentences_joined

    rnd = random.Random(7)
    alpha = list("。！？!?；;…. \nABCxyz)]\"'”’」』）中文3U")
    for _ in range(300):
        texts = []
        while len(texts) < 8:
            t = "".join(rnd.choice(alpha) for _ in range(rnd.randint(1, 14)))
            if joinable(t):
                texts.append(t)
        joined = JOIN.join(texts)
        lens = np.array([len(t) for t in texts], dtype=np.int64)
        d0 = np.cumsum(lens + 1) - (lens + 1)
        s, e, cnt = split_sentences_joined(joined, d0, d0 + lens)
        k = 0
        for t, off, c in zip(texts, d0.tolist(), cnt.tolist()):
            want = split_sentences(t)
            got = np.stack([s[k:k + c] - off, e[k:k + c] - off], axis=1)
            assert np.array_equal(want, got), t
            k += c


def test_resolve_arrays_matches_resolve():
    from zhmask.steps.entities import TYPES, resolve, resolve_arrays

    rnd = random.Random(3)
    for _ in range(500):
        n = rnd.randint(1, 30)
        cands = []
        for _ in range(n):
            a = rnd.randint(0, 40)
            cands.append((a, a + rnd.randint(1, 6), rnd.choice(TYPES)))
        cands += rnd.sample(cands, min(len(cands), 3))  # the same span twice
        want = resolve(list(cands))
        cs = np.array([c[0] for c in cands], dtype=np.int64)
        ce = np.array([c[1] for c in cands], dtype=np.int64)
        ct = np.array([TYPES.index(c[2]) for c in cands], dtype=np.int8)
        s, e, t = resolve_arrays(cs, ce, ct)
        assert [(sp.start, sp.end, sp.type) for sp in want] == list(zip(s.tolist(), e.tolist(),
                                                                        [TYPES[x] for x in t.tolist()]))


def test_lexicon_walk_with_a_small_lexicon(tmp_path):
    """Entries longer than words, entries inside entries, prefixes that are entries, PER runs."""
    from zhmask.steps.entities import LexiconEntities
    from zhmask.steps.segment import JOIN, make_segmenter

    lex = tmp_path / "lex.txt"
    lex.write_text("北京 10 LOC\n北京大学 5 ORG\n北京大学生 3 MISC\n人民大会堂 5 LOC\n大会 3 PHRASE\n"
                   "中华人民共和国 9 LOC\n人民 2 MISC\n一举两得 4 IDIOM\nab 1 MISC\nabc12 1 ORG\n", encoding="utf-8")
    det = LexiconEntities([lex])
    seg = make_segmenter("rjieba")
    texts = ["北京大学生在人民大会堂开大会", "中华人民共和国", "一举两得", "ab abc12 ab", "江泽民和李鹏在北京",
             "北京", "京", "北京大学生北京大学北京"]
    joined = JOIN.join(texts)
    words = seg.segment(joined)
    s, e, t = det.detect_joined(joined, words)
    off = 0
    got = []
    for text in texts:
        w = seg.segment(text)
        want = [(sp.start + off, sp.end + off, sp.type) for sp in det.detect(text, w)]
        got += want
        off += len(text) + 1
    assert list(zip(s.tolist(), e.tolist(), t)) == got


def test_hash_collision_in_the_lexicon_falls_back(pipes, sample_lines):
    pipe = Pipeline(BuildConfig())
    table = pipe.entities._hash_table()
    table.ambiguous = True  # as if two entries shared a hash: the walk refuses, texts go one by one
    _compare(pipe, _raws(sample_lines[:50]))


# ---------------------------------------------------------------------------- run_unit
def _run(pipe: Pipeline, raws, out: Path) -> tuple[str, dict]:
    stats = pipe.run_unit(0, raws, out)
    shard = out / stats["shard"]["file"]
    return hashlib.sha256(shard.read_bytes()).hexdigest(), json.loads(shard.with_suffix(".stats.json").read_text())


def test_run_unit_same_shard_and_stats_as_the_oracle(tmp_path, monkeypatch, sample_lines, inews_docs):
    pipe = Pipeline(BuildConfig(tasks=["mlm", "sop"]))
    raws = _raws(sample_lines[:200] + [d["text"] for d in inews_docs[:40]] + EDGE)
    raws.append(RawDoc("bad", "x", reject="invalid_utf8", where="f:1"))
    raws.append(RawDoc("unk", "这是一个含有未知字符的句子\U0001F9FF\u2E80。"))
    a = _run(pipe, raws, tmp_path / "a")

    monkeypatch.setattr(pipe, "documents_or_crash", lambda raws: reference_documents(pipe, raws))
    b = _run(pipe, raws, tmp_path / "b")
    assert a == b
    assert a[1].get("unk_chars")


def test_crash_in_a_unit_names_the_document(tmp_path, pipes):
    class Broken(str):  # a text the normaliser cannot handle
        def translate(self, *_):
            raise ValueError("cannot translate")

    raws = _raws(["好。", "江泽民发表讲话。"]) + [RawDoc("x.txt:9", Broken("好。\u3000"))] + _raws(["再见。"], "e")
    with pytest.raises(DocumentCrash, match="document x.txt:9 crashed the pipeline: ValueError"):
        pipes().run_unit(0, raws, tmp_path)


def test_document_views_are_contiguous_and_local(pipes, sample_lines):
    pipe = pipes()
    docs = [d for d, _ in pipe.documents(_raws(sample_lines[:30])) if d is not None]
    for d in docs:
        assert isinstance(d.words, Words)
        for arr in (d.words.starts, d.words.ends, d.tokens.ids, d.tokens.starts, d.tokens.word, d.sentences):
            assert arr.flags.c_contiguous
        assert d.words.starts[0] == 0 and d.words.ends[-1] == len(d.text)
        assert d.sentences[0, 0] == 0 and d.sentences[-1, 1] == len(d.text)


def test_units_larger_than_one_join_are_cut(pipes, sample_lines, monkeypatch):
    import zhmask.pipeline as pl

    monkeypatch.setattr(pl, "JOIN_CHARS", 200)  # a few documents a batch, some alone
    _compare(pipes(), _raws(sample_lines[:80] + ["长" * 500] + EDGE))


def test_the_normaliser_skips_only_texts_its_table_leaves_alone():
    from zhmask.steps.normalize import _TABLE, _TO_TRANSLATE

    for cp in range(0x110000):
        ch = chr(cp)
        if _TO_TRANSLATE.search(ch) is None:
            assert cp not in _TABLE
        else:
            assert cp in _TABLE


def test_user_dictionary_words_and_tags(tmp_path, sample_lines):
    ud = tmp_path / "user.txt"
    ud.write_text("全词掩码 10 n\n预训练模型 5 nz\n北京 ns\n江泽民 nt\n人民日报 20 nz\n", encoding="utf-8")
    pipe = Pipeline(BuildConfig(user_dict=[str(ud)]))
    _compare(pipe, _raws(sample_lines[:80] + ["全词掩码用于预训练模型。", "江泽民在北京看人民日报。"] + EDGE))
