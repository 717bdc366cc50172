"""Segmentation and entity quality: gold parsing, scores, eval-segmenter, train-segmenter, build-dict."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli

from zhmask.errors import ZhmaskError
from zhmask.record import Span, Words
from zhmask.segquality import evaluate, format_table, prf, read_gold
from zhmask.segquality.gold import detect_form, parse_gold_lines, parse_line, split_holdout
from zhmask.segquality.training import build_dict, entity_lexicons


def ents(s):
    return [(s.text[a:b], t) for a, b, t in s.entities]


# ---------------------------------------------------------------- gold parsing

def test_pku_line_words_tags_and_entities():
    line = "中共中央/nt  总书记/n  、/w  国家/n  主席/n  江/nr  泽民/nr  在/p  北京/ns  讲话/v"
    s = parse_line(line, "pku")
    assert s.text == "中共中央总书记、国家主席江泽民在北京讲话"
    assert s.word_texts() == ["中共中央", "总书记", "、", "国家", "主席", "江", "泽民", "在", "北京", "讲话"]
    assert s.tags[:2] == ["nt", "n"]
    # adjacent nr tokens are one person; ns a place; nt an organisation
    assert ents(s) == [("中共中央", "ORG"), ("江泽民", "PER"), ("北京", "LOC")]


def test_person_runs_end_at_other_tags():
    s = parse_line("邓/nr  小平/nr  同志/n  和/c  毛/nr  泽东/nr", "pku")
    assert ents(s) == [("邓小平", "PER"), ("毛泽东", "PER")]


def test_bracketed_compound_is_one_entity_over_its_words():
    s = parse_line("[中国/ns  共产党/nt]nt  总书记/n  [香港/ns  特别/a  行政区/n]ns", "pku")
    # the inner words are the gold words (the PKU standard segments inside compounds) ...
    assert s.word_texts() == ["中国", "共产党", "总书记", "香港", "特别", "行政区"]
    # ... and the compound replaces the inner tokens' entities
    assert ents(s) == [("中国共产党", "ORG"), ("香港特别行政区", "LOC")]


def test_normalised_like_build_corpus():
    s = parse_gold_lines(["１９９８年/t  新年/t  ６０％/m  ，/w"]).sentences[0]
    assert s.word_texts() == ["1998年", "新年", "60%", "，"]
    raw = parse_gold_lines(["１９９８年/t  新年/t"], normalize=False).sentences[0]
    assert raw.word_texts() == ["１９９８年", "新年"]


def test_plain_form_and_detection():
    lines = ["迈向 充满 希望 的 新 世纪", "", "中国 人民 决心"]
    assert detect_form(lines) == "plain"
    assert detect_form(["迈向/v  充满/v  希望/n"]) == "pku"
    corpus = parse_gold_lines(lines)
    assert corpus.form == "plain" and not corpus.tagged
    assert [s.word_texts() for s in corpus.sentences] == [["迈向", "充满", "希望", "的", "新", "世纪"], ["中国", "人民", "决心"]]
    assert corpus.sentences[1].line == 3


def test_malformed_lines_are_skipped_and_counted():
    lines = ["迈向/v  充满/v", "这行 没有 标注", "[中国/ns  共产党/nt", "希望/n  的/u"]
    corpus = parse_gold_lines(lines, "pku")
    assert [s.text for s in corpus.sentences] == ["迈向充满", "希望的"]
    assert [n for n, _ in corpus.skipped] == [2, 3]
    assert "2 malformed line(s) skipped (first: line 2" in corpus.describe_skipped()
    with pytest.raises(ZhmaskError, match="no gold sentence"):
        parse_gold_lines(["这行 没有 标注"], "pku")


def test_fixture_reads(fixtures):
    corpus = read_gold(fixtures / "pd1998_gold_200.txt")
    assert corpus.form == "pku" and len(corpus.sentences) == 200 and not corpus.skipped
    first = corpus.sentences[0]
    assert first.text.startswith("据新华社纽约1月19日电（记者丁宝忠）")
    assert ents(first)[:4] == [("新华社", "ORG"), ("纽约", "LOC"), ("丁宝忠", "PER"), ("美国", "LOC")]


def test_holdout_split_is_the_tail():
    lines = [f"l{i}" for i in range(20)] + [""]
    train, test = split_holdout(lines, 0.1)
    assert train == [f"l{i}" for i in range(18)] and test == ["l18", "l19"]


# ---------------------------------------------------------------- scores

def test_prf_exact():
    gold = {(0, 1), (1, 2), (2, 4), (4, 7)}  # 我 爱 北京 天安门
    pred = {(0, 1), (1, 4), (4, 7)}  # 我 爱北京 天安门
    p = prf(gold, pred)
    assert (p.tp, p.precision, p.recall) == (2, 2 / 3, 2 / 4)
    assert p.f1 == pytest.approx(4 / 7)
    assert prf(set(), set()).f1 == 0.0


class FixedSegmenter:
    """Pretends to segment: returns the words given for each text."""

    name = "fixed"

    def __init__(self, table):
        self.table = table

    def segment(self, text):
        words = self.table[text]
        ends = np.cumsum([len(w) for w in words]).astype(np.int32)
        return Words(ends - np.array([len(w) for w in words], dtype=np.int32), ends, ["x"] * len(words))


class FixedDetector:
    def __init__(self, table):
        self.table = table

    def detect(self, text, words):
        return [Span(a, b, t) for a, b, t in self.table[text]]


def test_evaluate_words_oov_entities_exact():
    corpus = parse_gold_lines(["我/r  爱/v  北京/ns  天安门/ns", "江/nr  泽民/nr  讲话/v"])
    seg = FixedSegmenter({"我爱北京天安门": ["我", "爱北京", "天安门"], "江泽民讲话": ["江泽民", "讲话"]})
    det = FixedDetector({"我爱北京天安门": [(4, 7, "LOC"), (2, 4, "ORG")], "江泽民讲话": [(0, 3, "PER")]})
    res = evaluate(corpus, seg, det, vocabulary={"我", "爱", "北京", "讲话", "江"})
    # words: gold 4 + 3 = 7, predicted 3 + 2 = 5, correct 2 (我 天安门) + 1 (讲话)
    assert (res.words.tp, res.words.gold, res.words.pred) == (3, 7, 5)
    # OOV gold words: 天安门 (found), 泽民 (missed)
    assert (res.oov_gold, res.oov_found, res.oov_recall) == (2, 1, 0.5)
    e = res.entities
    assert (e["PER"].tp, e["PER"].gold, e["PER"].pred) == (1, 1, 1)
    assert (e["LOC"].tp, e["LOC"].gold, e["LOC"].pred) == (1, 2, 1)
    assert (e["ORG"].tp, e["ORG"].gold, e["ORG"].pred) == (0, 0, 1)
    total = res.entities_all
    assert (total.tp, total.gold, total.pred) == (2, 3, 3)
    d = res.to_dict()
    assert d["words"]["f1"] == round(2 * (3 / 5) * (3 / 7) / (3 / 5 + 3 / 7), 4)
    assert d["entities"]["ALL"]["f1"] == round(2 / 3, 4)
    assert res.bytes == len("我爱北京天安门江泽民讲话".encode()) and res.seconds > 0
    table = format_table([res])
    assert "fixed" in table and "66.7" in table  # ALL F1


def test_real_detector_on_pipeline_words():
    from zhmask.segquality import evaluate_backends

    corpus = parse_gold_lines(["中共中央/nt  总书记/n  、/w  国家/n  主席/n  江/nr  泽民/nr"])
    res = evaluate_backends(corpus, ["rjieba", "char"])
    rj, ch = res
    assert rj.words.f1 > ch.words.f1
    assert (rj.entities["PER"].tp, rj.entities["ORG"].tp) == (1, 1)  # 江泽民 and 中共中央 from jieba's tags
    # single characters carry no tags: no person; 中共中央 still matches the bundled org lexicon
    assert (ch.entities["PER"].pred, ch.entities["ORG"].tp) == (0, 1)


# ---------------------------------------------------------------- build-dict

def test_build_dict_entries_and_conflicts(fixtures):
    corpus = read_gold(fixtures / "pd1998_gold_200.txt")
    entries, summary = build_dict(corpus)
    table = {w: (f, t) for w, f, t in entries}
    assert table["新华社"][1] == "nt" and table["的"][1] == "u" and table["兼并"][1] == "v"
    assert table["的"][0] > table["新华社"][0] > table["兼并"][0] > 0
    # 一个月 is a jieba word; People's Daily writes 一 个 月: removed (frequency 0)
    assert table["一个月"] == (0, None)
    removed = [w for w, f, _ in entries if f == 0]
    assert len(removed) == summary["removed"] > 0 and summary["scale"] > 1
    vocab = corpus.vocabulary()
    assert not any(w in vocab for w in removed)
    text = "".join(s.text for s in corpus.sentences)
    assert all(w in text for w in removed)


def test_entity_lexicons(fixtures):
    lex = entity_lexicons(read_gold(fixtures / "pd1998_gold_200.txt"))
    assert dict(lex["PER"])["丁宝忠"] >= 1 and dict(lex["LOC"])["北京"] > 10 and dict(lex["ORG"])["新华社"] >= 4
    assert all(len(w) >= 2 for t in lex for w, _ in lex[t])


def _split_fixture(fixtures, tmp_path):
    lines = (fixtures / "pd1998_gold_200.txt").read_text(encoding="utf-8").splitlines()
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("\n".join(lines[:150]) + "\n", encoding="utf-8")
    test.write_text("\n".join(lines[150:]) + "\n", encoding="utf-8")
    return train, test


def test_build_dict_cli_moves_rjieba_toward_the_gold(fixtures, tmp_path):
    train, test = _split_fixture(fixtures, tmp_path)
    d, ents_dir = tmp_path / "pku.dict", tmp_path / "ents"
    code, out, err = run_cli("build-dict", "--train", str(train), "--out", str(d), "--entities-out", str(ents_dir))
    assert code == 0, err
    lines = d.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# zhmask build-dict")
    for line in lines[1:]:
        parts = line.split()
        assert len(parts) in (2, 3) and parts[1].isdigit()
    assert {p.name for p in ents_dir.iterdir()} == {"per.txt", "loc.txt", "org.txt"}
    assert "\n丁宝忠 1 PER\n" in (ents_dir / "per.txt").read_text(encoding="utf-8")

    from zhmask.steps.segment import make_segmenter

    plain, adapted = make_segmenter("rjieba"), make_segmenter("rjieba", user_dicts=[str(d)])
    text = "发现有的单位意见箱上的铁锁"  # a held-out sentence: PKU writes 有的 as one word
    assert plain.segment(text).texts(text)[:3] == ["发现", "有", "的"]
    assert adapted.segment(text).texts(text)[:3] == ["发现", "有的", "单位"]
    gold = read_gold(test)
    assert evaluate(gold, adapted).words.f1 > evaluate(gold, plain).words.f1 + 0.01

    # the dictionary and the learned lexicons in build-corpus
    src = tmp_path / "in.txt"
    src.write_text("记者丁宝忠报道：美国商业银行兼并活跃。\n", encoding="utf-8")
    lex = [a for t in ("per", "loc", "org") for a in ("--lexicon", str(ents_dir / f"{t}.txt"))]
    code, _, err = run_cli("build-corpus", str(src), "--user-dict", str(d), *lex, "--masking", "knowledge",
                           "--out", str(tmp_path / "out"), "-q")
    assert code == 0, err
    m = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert m["config"]["lexicons"] == lex[1::2] and m["config"]["user_dict"] == [str(d)]
    code, _, err = run_cli("build-corpus", str(src), "--lexicon", str(tmp_path / "nope.txt"), "--out",
                           str(tmp_path / "out2"), "-q")
    assert code == 2 and "lexicon not found" in err and len(err.strip().splitlines()) == 1


def test_user_dict_tags_reach_rjieba_pos(tmp_path):
    """rjieba's add_word keeps the tag of a word it knows; the segmenter applies the user's tag."""
    from zhmask.steps.segment import make_segmenter

    d = tmp_path / "tags.dict"
    d.write_text("伊拉克 100 ns\n新春 50 t\n", encoding="utf-8")
    text = "伊拉克新春"
    assert make_segmenter("rjieba").segment(text).pos == ["nrt", "ns"]  # jieba's own tags
    for backend in ("rjieba", "jieba"):
        assert make_segmenter(backend, user_dicts=[str(d)]).segment(text).pos == ["ns", "t"]


def test_rjieba_rebuilt_for_tags_cuts_like_rjieba(tmp_path, sample_lines):
    """The dictionary rebuilt to carry user tags (jieba's dict.txt) cuts exactly as rjieba's own."""
    from zhmask.steps.segment import make_segmenter

    d = tmp_path / "tags.dict"
    d.write_text("伊拉克 100 ns\n", encoding="utf-8")
    plain = make_segmenter("rjieba")
    for hmm in (False, True):
        retagged = make_segmenter("rjieba", user_dicts=[str(d)], hmm=hmm)
        plain.hmm = hmm
        assert not retagged._retag  # rebuilt, no per-cut re-tagging
        for line in sample_lines[:100]:
            a, b = plain.segment(line), retagged.segment(line)
            assert a.texts(line) == b.texts(line) and a.pos == b.pos


# ---------------------------------------------------------------- eval-segmenter CLI

def test_eval_segmenter_cli_table_and_json(fixtures, tmp_path):
    train, test = _split_fixture(fixtures, tmp_path)
    code, out, err = run_cli("eval-segmenter", "--gold", str(test), "--segmenter", "rjieba,char", "--train", str(train))
    assert code == 0, err
    lines = out.splitlines()
    assert "50 sentences" in lines[0] and "OOV vs words of" in lines[0]
    assert lines[1].split()[:6] == ["backend", "word", "P", "word", "R", "word"]
    assert [ln.split()[0] for ln in lines[2:]] == ["rjieba", "char"]
    code, out, err = run_cli("eval-segmenter", "--gold", str(test), "--segmenter", "rjieba", "--json", "--no-entities")
    assert code == 0, err
    data = json.loads(out)
    r = data["results"][0]
    assert data["sentences"] == 50 and data["vocabulary"] == "jieba's dictionary"
    assert 0.7 < r["words"]["f1"] < 1 and r["mb_per_s"] > 0 and "entities" not in r


@pytest.mark.parametrize("args, message", [
    (["--gold", "missing.txt"], "gold file not found: missing.txt"),
    (["--gold", "{test}", "--segmenter", "pkuseg"], "needs --segmenter-model"),
    (["--gold", "{test}", "--segmenter", "ltp"], "unknown segmenter 'ltp'"),
    (["--gold", "{test}", "--user-dict", "nope.dict"], "user dictionary not found"),
    (["--gold", "{bad}"], "no gold sentence"),
])
def test_eval_segmenter_errors_are_one_line(fixtures, tmp_path, args, message):
    _, test = _split_fixture(fixtures, tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("迈向/v  /v\n", encoding="utf-8")
    args = [a.format(test=test, bad=bad) for a in args]
    code, out, err = run_cli("eval-segmenter", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_malformed_gold_lines_reported(fixtures, tmp_path):
    gold = tmp_path / "g.txt"
    gold.write_text("迈向/v  充满/v  希望/n\n坏 行\n中国/ns  人民/n\n", encoding="utf-8")
    code, out, err = run_cli("eval-segmenter", "--gold", str(gold), "--format", "pku")
    assert code == 0 and "2 sentences" in out and "1 malformed line(s) skipped (first: line 2" in err


# ---------------------------------------------------------------- train-segmenter

def test_train_segmenter_then_build_corpus_and_eval(fixtures, tmp_path):
    pytest.importorskip("spacy_pkuseg")
    train, test = _split_fixture(fixtures, tmp_path)
    model = tmp_path / "model"
    code, out, err = run_cli("train-segmenter", "--train", str(train), "--out", str(model), "--iterations", "1",
                             "--limit", "50")
    assert code == 0, err
    assert "50 sentences" in out and "1 iteration(s)" in out
    assert (model / "weights.npz").exists() and (model / "features.msgpack").exists()
    meta = json.loads((model / "zhmask-model.json").read_text(encoding="utf-8"))
    assert meta["train_sentences"] == 50 and meta["iterations"] == 1

    from zhmask.steps.segment import make_segmenter

    text = "中国人民决心继承邓小平同志的遗志"
    words = make_segmenter("pkuseg", model=str(model)).segment(text)
    assert "".join(words.texts(text)) == text and 3 < len(words) < len(text)
    # user words are forced; frequency-0 entries (removals in jieba's format) are not words
    ud = tmp_path / "user.dict"
    ud.write_text("继承邓小平 5 n\n同志的 0\n", encoding="utf-8")
    forced = make_segmenter("pkuseg", model=str(model), user_dicts=[str(ud)]).segment(text).texts(text)
    assert "继承邓小平" in forced and "同志的" not in forced

    code, out, err = run_cli("eval-segmenter", "--gold", str(test), "--segmenter", "pkuseg",
                             "--segmenter-model", str(model), "--limit", "10")
    assert code == 0, err
    assert out.splitlines()[2].startswith("pkuseg (model)")

    src = tmp_path / "in.txt"
    src.write_text("中国人民决心继承邓小平同志的遗志。\n我们要把建设有中国特色社会主义事业推向前进。\n", encoding="utf-8")
    code, out, err = run_cli("build-corpus", str(src), "--segmenter", "pkuseg", "--segmenter-model", str(model),
                             "--masking", "wwm", "--out", str(tmp_path / "out"), "-q")
    assert code == 0, err
    m = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert m["documents_written"] == 2 and m["config"]["segmenter"] == "pkuseg"


def test_train_segmenter_relative_out(fixtures, tmp_path, monkeypatch):
    """A relative --out is the model directory under the current directory (not a temporary one)."""
    pytest.importorskip("spacy_pkuseg")
    train, _ = _split_fixture(fixtures, tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("train-segmenter", "--train", "train.txt", "--out", "rel-model", "--iterations", "1",
                           "--limit", "20")
    assert code == 0, err
    assert (tmp_path / "rel-model" / "weights.npz").exists() and (tmp_path / "rel-model" / "features.msgpack").exists()


def test_train_segmenter_errors(tmp_path):
    code, _, err = run_cli("train-segmenter", "--train", str(tmp_path / "none.txt"), "--out", str(tmp_path / "m"))
    assert code == 2 and "gold file not found" in err
    t = tmp_path / "t.txt"
    t.write_text("迈向 充满 希望\n", encoding="utf-8")
    code, _, err = run_cli("train-segmenter", "--train", str(t), "--out", str(tmp_path / "m"), "--iterations", "0")
    assert code == 2 and "--iterations must be at least 1" in err
    code, _, err = run_cli("build-dict", "--train", str(t), "--out", str(tmp_path / "d"), "--entities-out", str(tmp_path / "e"))
    assert code == 2 and "--entities-out needs tags" in err


def test_help_has_examples():
    for cmd in ("eval-segmenter", "train-segmenter", "build-dict"):
        code, out, _ = run_cli(cmd, "-h")
        assert code == 0 and "Example:" in out
