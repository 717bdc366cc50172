"""Entity units that are entities: the tag filter (stop list, person-name shape), the bundled
lexicons without common words, the gold evaluation, and the share of entities a knowledge build
masks."""
from __future__ import annotations

import numpy as np
import pytest

from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.record import Words
from zhmask.steps.entities import LexiconEntities, load_person_chars, load_stoplist
from zhmask.steps.read import RawDoc


def _ents(pipeline, text: str) -> list[tuple[str, str]]:
    doc, _ = pipeline.document(RawDoc("d", text))
    return [(doc.text[s.start:s.end], s.type) for s in doc.entities]


def _words(pieces: list[tuple[str, str]]) -> tuple[str, Words]:
    lens = np.array([len(w) for w, _ in pieces])
    ends = np.cumsum(lens)
    return "".join(w for w, _ in pieces), Words(ends - lens, ends, [t for _, t in pieces])


def test_common_words_are_not_entities_names_and_places_are(pipeline):
    # jieba's dictionary tags 明白, 文明 and 小康 as person names; 合作 and 和平 are place names too
    # (合作市, 和平区) in the administrative-division lexicon
    got = _ents(pipeline, "我明白了，两国的合作促进了和平与文明，人民过上了小康生活。")
    assert not [g for g in got if g[1] in ("PER", "LOC", "ORG", "MISC")], got
    got = _ents(pipeline, "江泽民在北京会见了美国总统克林顿。")
    assert ("江泽民", "PER") in got and ("北京", "LOC") in got and ("克林顿", "PER") in got
    assert ("美国", "LOC") in got


def test_bundled_lexicons_leave_out_the_stop_list():
    from zhmask.steps.entities import default_lexicon_paths, default_stoplist_paths, load_lexicons

    lex = load_lexicons(default_lexicon_paths())
    stop = load_stoplist(default_stoplist_paths())
    assert stop["合作"] and "合作" not in lex and "外国" not in lex
    assert lex["北京"] == "LOC" and lex["新疆"] == "LOC"
    from zhmask.steps.entities import TYPES

    assert not [w for w, t in lex.items() if stop.get(w, 0) >> TYPES.index(t) & 1]


def test_stop_list_filters_the_tags_not_a_users_lexicon(tmp_path):
    stop = tmp_path / "stop.txt"
    stop.write_text("# comment\n和平 LOC MISC\n", encoding="utf-8")
    user = tmp_path / "user.txt"
    user.write_text("和平 5 LOC\n", encoding="utf-8")
    text, words = _words([("和平", "ns"), ("与", "c"), ("北京", "ns")])
    det = LexiconEntities([], stoplist_paths=[stop], person_chars_paths=[])
    assert [(text[s.start:s.end], s.type) for s in det.detect(text, words)] == [("北京", "LOC")]
    det = LexiconEntities([user], stoplist_paths=[stop], person_chars_paths=[])
    assert [(text[s.start:s.end], s.type) for s in det.detect(text, words)] == [("和平", "LOC"), ("北京", "LOC")]
    det = LexiconEntities([], stoplist_paths=[], person_chars_paths=[])
    assert len(det.detect(text, words)) == 2


def test_person_names_need_the_shape_of_a_name(tmp_path):
    chars = tmp_path / "person_chars.txt"
    chars.write_text("江 SURNAME\n徐 SURNAME\n欧阳 SURNAME\n克 FOREIGN\n林 FOREIGN\n顿 FOREIGN\n拉 FOREIGN\n"
                     "菲 FOREIGN\n塔 FOREIGN\n尔 FOREIGN\n", encoding="utf-8")
    det = LexiconEntities([], stoplist_paths=[], person_chars_paths=[chars])
    cases = [
        ([("江", "nr"), ("泽民", "nr"), ("讲话", "v")], [("江泽民", "PER")]),  # surname + given name
        ([("欧阳修", "nr"), ("写", "v")], [("欧阳修", "PER")]),  # a two-character surname
        ([("克林顿", "nr"), ("说", "v")], [("克林顿", "PER")]),  # transliteration characters only
        ([("拉菲克", "nr"), ("·", "x"), ("塔拉尔", "nr")], [("拉菲克·塔拉尔", "PER")]),  # one name across the dot
        ([("徐先生", "nr"), ("说", "v")], []),  # a form of address
        ([("阳光明媚", "nr"), ("。", "x")], []),  # jieba tags it nr: no surname, not a transliteration
        ([("明白", "nr"), ("了", "ul")], []),
    ]
    for pieces, want in cases:
        text, words = _words(pieces)
        assert [(text[s.start:s.end], s.type) for s in det.detect(text, words)] == want, pieces


def test_an_organisation_after_a_place_word_is_no_unit():
    """美国/ns 国防部/nt: the tail of a compound name (the gold tags it n there); the place stays."""
    det = LexiconEntities([], stoplist_paths=[], person_chars_paths=[])
    for pieces, want in [
        ([("美国", "ns"), ("国防部", "nt"), ("发言人", "n")], [("美国", "LOC")]),
        ([("中", "j"), ("外交部", "nt")], []),
        ([("国防部", "nt"), ("发言人", "n")], [("国防部", "ORG")]),
        ([("美国", "ns"), ("、", "x"), ("国防部", "nt")], [("美国", "LOC"), ("国防部", "ORG")]),
    ]:
        text, words = _words(pieces)
        assert [(text[s.start:s.end], s.type) for s in det.detect(text, words)] == want, pieces


def test_filter_files_with_bad_lines_fail_in_one_line(tmp_path):
    bad = tmp_path / "stop.txt"
    bad.write_text("合作 PLACE\n", encoding="utf-8")
    with pytest.raises(ZhmaskError, match=r"stop.txt:1: expected 'word TYPE"):
        load_stoplist([bad])
    bad.write_text("江\n", encoding="utf-8")
    with pytest.raises(ZhmaskError, match=r"stop.txt:1: expected 'chars SURNAME'"):
        load_person_chars([bad])
    with pytest.raises(ZhmaskError, match="cannot read entity stop list"):
        load_stoplist([tmp_path / "missing.txt"])


def test_joined_detection_equals_one_by_one_with_the_filter(pipeline, sample_lines):
    from zhmask.steps.segment import JOIN, make_segmenter

    det = pipeline.entities
    assert det._filter is not None and det._filter.names
    seg = make_segmenter("rjieba")
    texts = sample_lines[:40] + ["拉菲克·塔拉尔说", "徐先生和江泽民", "合作与和平", "美国国防部发言人", "国防部"]
    joined = JOIN.join(texts)
    s, e, t = det.detect_joined(joined, seg.segment(joined))
    want, off = [], 0
    for text in texts:
        want += [(sp.start + off, sp.end + off, sp.type) for sp in det.detect(text, seg.segment(text))]
        off += len(text) + 1
    assert list(zip(s.tolist(), e.tolist(), t)) == want


def test_entity_quality_on_gold_fixture(fixtures):
    """The evaluation on 200 gold paragraphs: exact spans against People's Daily tags (the text
    kept as it is, --keep-unmapped: mapping “ ” … to the vocabulary's equivalents moves offsets)."""
    from zhmask.config import BuildConfig
    from zhmask.pipeline import Pipeline
    from zhmask.segquality.entities import score_entities
    from zhmask.segquality.gold import read_gold

    pipeline = Pipeline(BuildConfig(keep_unmapped=True))
    gold = read_gold(fixtures / "pd1998_gold_200.txt")
    res = score_entities(gold, pipeline, batch=64, keep_errors=5)
    assert res.sentences == len(gold.sentences) and res.skipped == 0
    per, loc, org = (res.per_type[t] for t in ("PER", "LOC", "ORG"))
    print({t: (round(p.precision, 3), round(p.recall, 3)) for t, p in res.per_type.items()})
    assert per.gold > 100 and loc.gold > 100
    assert per.precision > 0.8 and loc.precision > 0.85 and org.precision > 0.6
    assert per.recall > 0.4 and loc.recall > 0.6
    # what the main-branch detector got wrong most often on such text is gone
    assert not {"文明", "合作", "城市"} & (set(res.errors["PER"]) | set(res.errors["LOC"]))


def test_masked_entity_share_stays_near_the_budget(tmp_path, fixtures):
    from zhmask.api import build_corpus
    from zhmask.segquality.entities import masked_entity_share
    from zhmask.segquality.gold import read_gold

    txt = tmp_path / "plain.txt"
    txt.write_text("\n".join(s.text for s in read_gold(fixtures / "pd1998_gold_200.txt").sentences) + "\n",
                   encoding="utf-8")
    cfg = BuildConfig(inputs=[str(txt)], masking="knowledge", out=str(tmp_path / "out"))
    build_corpus(cfg)
    share = masked_entity_share(cfg.out)
    print(share)
    assert share["entity_units"] > 300
    assert 0.08 < share["share_masked"] < 0.25
    assert abs(share["predicted_token_share"] - 0.15) < 0.02
