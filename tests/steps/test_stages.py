"""Golden tables for the per-document stages, on real Chinese sentences."""
from __future__ import annotations

import numpy as np
import pytest

from zhmask.steps.normalize import normalize
from zhmask.steps.read import RawDoc
from zhmask.steps.segment import make_segmenter
from oracle import sentence_texts, split_sentences
from zhmask.steps.sentences import split_sentences_joined


@pytest.mark.parametrize("raw, expected", [
    ("ＡＢＣ１２３　全角", "ABC123 全角"),
    ("中文，标点！保持？（全角）", "中文，标点！保持？（全角）"),
    ("零\u200b宽\u200d字符\ufeff", "零宽字符"),
    ("行\u2028分隔\u2029段落\x85下一行\x0b竖\x0c换页", "行 分隔 段落 下一行 竖 换页"),
    ("控制\x00字符\x07删除", "控制字符删除"),
    ("  多个   空格\t\r\n ", "多个 空格"),
    ("兼容汉字\uf900保留", "兼容汉字\uf900保留"),
    ("e\u0301", "é"),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_t2s():
    assert normalize("漢字轉換，臺灣的電腦", t2s=True) == "汉字转换，台湾的电脑"


@pytest.mark.parametrize("text, expected", [
    ("他说：“今天天气很好。”我们走吧！真的吗？好……那就这样；再见",
     ["他说：“今天天气很好。”", "我们走吧！", "真的吗？", "好……", "那就这样；", "再见"]),
    ("It costs 3.5 dollars. Then we go. 我们走。", ["It costs 3.5 dollars.", " Then we go.", " 我们走。"]),
    ("（新华社记者兰红光摄）", ["（新华社记者兰红光摄）"]),
    ("《人民日报》发表社论。社论指出，……要坚持改革！", ["《人民日报》发表社论。", "社论指出，……", "要坚持改革！"]),
    ("第一行\n第二行", ["第一行\n", "第二行"]),
    # ASCII quotes (“ ” mapped to " where the vocabulary lacks them) open as well as close
    ('他说："好......"我们走吧。"你去吗？"他问。', ['他说："好......"', "我们走吧。", '"你去吗？"', "他问。"]),
    ("", []),
])
def test_sentences(text, expected):
    """The production path (a text as a unit of one; an empty text is rejected before) and the
    per-document oracle."""
    if text:
        starts, ends, counts = split_sentences_joined(text, np.array([0]), np.array([len(text)]))
        assert [text[a:b] for a, b in zip(starts.tolist(), ends.tolist())] == expected
        assert counts.tolist() == [len(expected)]
    assert sentence_texts(text) == expected
    spans = split_sentences(text)
    if text:  # spans cover the text exactly, in order
        assert spans[0, 0] == 0 and spans[-1, 1] == len(text)
        assert (spans[1:, 0] == spans[:-1, 1]).all()


WORDS = [
    ("中共中央总书记、国家主席江泽民发表1998年新年讲话",
     ["中共中央", "总书记", "、", "国家", "主席", "江泽民", "发表", "1998", "年", "新年", "讲话"]),
    ("北京大学的学生在颐和园游览", ["北京大学", "的", "学生", "在", "颐和园", "游览"]),
    ("iPhone12很好用 hello world", ["iPhone12", "很", "好", "用", " ", "hello", " ", "world"]),
]


@pytest.mark.parametrize("text, words", WORDS)
@pytest.mark.parametrize("backend", ["rjieba", "jieba"])
def test_words(backend, text, words):
    seg = make_segmenter(backend)
    w = seg.segment(text)
    assert w.texts(text) == words
    assert w.starts[0] == 0 and w.ends[-1] == len(text)
    assert (w.starts[1:] == w.ends[:-1]).all()


def test_char_segmenter():
    seg = make_segmenter("char")
    text = "我爱NLP和BERT模型"
    assert seg.segment(text).texts(text) == ["我", "爱", "NLP", "和", "BERT", "模", "型"]


def test_user_dict(tmp_path):
    d = tmp_path / "user.txt"
    d.write_text("全词掩码 100 n\n预训练模型 50\n", encoding="utf-8")
    text = "全词掩码用于预训练模型"
    for backend in ("rjieba", "jieba"):
        seg = make_segmenter(backend, user_dicts=[str(d)])
        assert seg.segment(text).texts(text) == ["全词掩码", "用于", "预训练模型"]


def test_rjieba_and_jieba_agree_on_fixture(sample_lines, inews_docs):
    rj, jb = make_segmenter("rjieba"), make_segmenter("jieba")
    for line in sample_lines + [d["title"] + "。" + d["text"] for d in inews_docs]:
        text = normalize(line)
        assert rj.segment(text).texts(text) == jb.segment(text).texts(text)


def test_entities_golden(pipeline):
    doc, _ = pipeline.document(RawDoc("d", "中共中央总书记、国家主席江泽民在北京人民大会堂会见了美国总统克林顿，双方坚定不移地推进合作。"))
    got = [(doc.text[s.start:s.end], s.type) for s in doc.entities]
    assert ("中共中央", "ORG") in got
    assert ("江泽民", "PER") in got
    assert all(w != "合作" for w, _ in got)  # a common word, though a place name too (合作市)
    assert ("美国", "LOC") in got
    assert ("克林顿", "PER") in got
    assert ("坚定不移", "IDIOM") in got
    # entities cover whole words and never overlap
    bounds = set(doc.words.starts.tolist()) | set(doc.words.ends.tolist())
    prev_end = 0
    for sp in doc.entities:
        assert sp.start in bounds and sp.end in bounds and sp.start >= prev_end
        prev_end = sp.end


def test_adjacent_person_tokens_form_one_name():
    from zhmask.record import Words
    from zhmask.steps.entities import LexiconEntities

    text = "主席江泽民讲话"
    words = Words(np.array([0, 2, 3, 5]), np.array([2, 3, 5, 7]), ["n", "nr", "nr", "n"])
    spans = LexiconEntities([], use_pos=True).detect(text, words)
    assert [(text[s.start:s.end], s.type) for s in spans] == [("江泽民", "PER")]


def test_spacy_backend_with_entity_ruler():
    spacy = pytest.importorskip("spacy")
    from zhmask.steps.entities import SpacyEntities

    nlp = spacy.blank("zh")  # character tokenizer, no download
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": "江泽民"}, {"label": "GPE", "pattern": "北京"}])
    det = SpacyEntities.from_nlp(nlp)
    text = "江泽民在北京讲话"
    words = make_segmenter("rjieba").segment(text)
    got = [(text[s.start:s.end], s.type) for s in det.detect(text, words)]
    assert got == [("江泽民", "PER"), ("北京", "LOC")]


TOKEN_CASES = [
    "中共中央总书记、国家主席江泽民发表1998年新年讲话《迈向充满希望的新世纪》。",
    "iPhone12很好用 hello world 😀😀 Café",
    "他的email是abc@example.com，电话025-12345678。",
    "ＣＰＵ温度达到８０℃，GPU也很热！",
    "𠀀𠀁是扩展B区的汉字，㐀是扩展A。",
]


@pytest.mark.parametrize("text", TOKEN_CASES)
def test_tokens_equal_whole_text_tokenizer(pipeline, text):
    doc, _ = pipeline.document(RawDoc("d", text))
    tok = pipeline.tok
    assert doc.tokens.ids.tolist() == tok.encode_text(doc.text)
    # every token lies inside its word: no token straddles two words
    w = doc.words
    for s, e, wi in zip(doc.tokens.starts, doc.tokens.ends, doc.tokens.word):
        assert w.starts[wi] <= s and e <= w.ends[wi]


def test_token_word_alignment_golden(pipeline):
    doc, _ = pipeline.document(RawDoc("d", "江泽民发表讲话"))
    tok = pipeline.tok
    assert tok.decode_tokens(doc.tokens.ids) == ["江", "泽", "民", "发", "表", "讲", "话"]
    assert doc.tokens.word.tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_tokens_equal_whole_text_on_fixture(pipeline, sample_lines, inews_docs):
    texts = sample_lines[:150] + [d["text"] for d in inews_docs[:60]]
    for i, t in enumerate(texts):
        doc, _ = pipeline.document(RawDoc(str(i), t))
        assert doc.tokens.ids.tolist() == pipeline.tok.encode_text(doc.text), doc.text[:50]


def test_exact_path_agrees_with_fast_path(tmp_path, pipeline, sample_lines):
    from zhmask.steps.tokenize import WordTokenizer

    pipeline.tok.tk.save(str(tmp_path / "tokenizer.json"))
    exact = WordTokenizer(tokenizer_json=tmp_path / "tokenizer.json")
    assert exact.mode == "exact"
    for i, t in enumerate(sample_lines[:40] + TOKEN_CASES):
        doc, _ = pipeline.document(RawDoc(str(i), t))
        ex = exact.tokenize(doc.text, doc.words)
        assert ex.ids.tolist() == doc.tokens.ids.tolist()
        assert ex.word.tolist() == doc.tokens.word.tolist()


def test_words_never_cross_sentences(pipeline, inews_docs):
    for d in inews_docs[:40]:
        doc, _ = pipeline.document(RawDoc(d["id"], d["text"]))
        sent_starts = set(doc.sentences[:, 0].tolist())
        for s, e in zip(doc.words.starts.tolist(), doc.words.ends.tolist()):
            assert not any(s < b < e for b in sent_starts)


def test_stored_pretoken_ranges_match_unicode_database():
    """The generated table of BERT's single-character pre-tokens equals the computation."""
    import unicodedata

    from zhmask.steps import _pretoken_ranges as pre
    from zhmask.steps.tokenize import single_ranges

    if pre.UNIDATA_VERSION != unicodedata.unidata_version:
        pytest.skip("another Unicode database: the table is computed at start-up instead")
    assert list(pre.SINGLE_RANGES) == single_ranges()
