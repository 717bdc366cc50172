"""The lexicon cache (zhmask/lexcache.py): used while its inputs are unchanged, rebuilt when a
source changes, a corrupt file rebuilt rather than a traceback, and tables read from it equal
to tables parsed from the text files."""
from __future__ import annotations

import numpy as np
import pytest

from zhmask import lexcache
from zhmask.lexcache import cached


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("ZHMASK_CACHE_DIR", str(d))
    return d


def _counting_builder(src):
    calls = []

    def build():
        calls.append(1)
        words = src.read_text(encoding="utf-8").split()
        return {"words": words, "index": {w: i for i, w in enumerate(words)}, "lens": np.array([len(w) for w in words])}

    return build, calls


def test_built_once_then_read_from_the_cache(cache, tmp_path):
    src = tmp_path / "lex.txt"
    src.write_text("北京 上海 广州市\n", encoding="utf-8")
    build, calls = _counting_builder(src)
    first = cached("test", {"lex": [src]}, build)
    second = cached("test", {"lex": [src]}, build)
    assert len(calls) == 1 and len(list(cache.iterdir())) == 1
    assert second["words"] == first["words"] == ["北京", "上海", "广州市"]
    assert second["index"] == first["index"]
    assert second["lens"].dtype == first["lens"].dtype and second["lens"].tolist() == [2, 2, 3]
    assert not second["lens"].flags.writeable  # a table from the cache is never written to


def test_arrays_of_any_shape_and_layout_come_back_equal(cache, tmp_path):
    """Arrays are stored at aligned offsets and come back as views of the mapped file: 0-d,
    empty, 2-d, Fortran-ordered and strided arrays keep their shape, dtype and values."""
    src = tmp_path / "lex.txt"
    src.write_text("x\n", encoding="utf-8")
    table = {"scalar": np.array(3.5), "empty": np.zeros(0, dtype=np.int64), "empty2": np.zeros((2, 0)),
             "grid": np.arange(12, dtype=np.int16).reshape(3, 4), "fortran": np.asfortranarray(np.arange(6.).reshape(2, 3)),
             "strided": np.arange(10, dtype=np.uint8)[::3], "odd": np.arange(7, dtype=np.int8), "words": ["a", "b"]}
    cached("shapes", {"lex": [src]}, lambda: table)
    got = cached("shapes", {"lex": [src]}, lambda: pytest.fail("built twice"))
    for k, v in table.items():
        if isinstance(v, np.ndarray):
            assert got[k].shape == v.shape and got[k].dtype == v.dtype and np.array_equal(got[k], v), k
            assert not got[k].flags.writeable
    assert got["words"] == ["a", "b"]


def test_a_changed_source_is_a_new_key_never_a_stale_table(cache, tmp_path):
    src = tmp_path / "lex.txt"
    src.write_text("北京 上海\n", encoding="utf-8")
    build, calls = _counting_builder(src)
    assert cached("test", {"lex": [src]}, build)["words"] == ["北京", "上海"]
    src.write_text("北京 天津\n", encoding="utf-8")  # same size, same path
    assert cached("test", {"lex": [src]}, build)["words"] == ["北京", "天津"]
    assert len(calls) == 2
    # the role of a file and the caller's extra key are part of the key too
    cached("test", {"other": [src]}, build)
    cached("test", {"lex": [src]}, build, extra="vocab-b")
    assert len(calls) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "flipped"])
def test_a_corrupt_cache_file_is_rebuilt(cache, tmp_path, damage):
    src = tmp_path / "lex.txt"
    src.write_text("北京 上海 广州市\n", encoding="utf-8")
    build, calls = _counting_builder(src)
    good = cached("test", {"lex": [src]}, build)
    (path,) = cache.iterdir()
    blob = path.read_bytes()
    path.write_bytes({"garbage": b"not a cache file at all",
                      "truncated": blob[:len(blob) // 2],
                      "empty": b"",
                      "flipped": blob[:-3] + bytes([blob[-3] ^ 0xFF]) + blob[-2:]}[damage])
    again = cached("test", {"lex": [src]}, build)
    assert len(calls) == 2 and again["words"] == good["words"]
    assert path.read_bytes() == blob  # rewritten whole
    cached("test", {"lex": [src]}, build)
    assert len(calls) == 2


def test_cache_off_or_unusable_still_builds(tmp_path, monkeypatch):
    src = tmp_path / "lex.txt"
    src.write_text("北京\n", encoding="utf-8")
    build, calls = _counting_builder(src)
    monkeypatch.setenv("ZHMASK_CACHE_DIR", "off")
    assert lexcache.cache_dir() is None
    assert cached("test", {"lex": [src]}, build)["words"] == ["北京"]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("ZHMASK_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    assert cached("test", {"lex": [src]}, build)["words"] == ["北京"]
    assert len(calls) == 2


def test_an_unreadable_source_is_reported_by_the_builder(cache, tmp_path):
    from zhmask.errors import ZhmaskError
    from zhmask.steps.entities import LexiconEntities

    with pytest.raises(ZhmaskError, match="cannot read lexicon"):
        LexiconEntities([tmp_path / "missing.txt"], stoplist_paths=[], person_chars_paths=[])


def test_entity_tables_from_the_cache_detect_the_same_spans(cache, tmp_path, monkeypatch, pipeline):
    """The bundled lexicons: parsed (cache off), built into the cache, read back: same entities."""
    from zhmask.steps.entities import LexiconEntities

    text = "江泽民在北京会见了美国国防部长，双方就中美关系交换了意见，认为一衣带水、守望相助。"
    words = pipeline.segmenter.segment(text)
    monkeypatch.setenv("ZHMASK_CACHE_DIR", "off")
    parsed = LexiconEntities()
    ref = parsed.detect_joined(text, words)
    monkeypatch.setenv("ZHMASK_CACHE_DIR", str(cache))
    cold = LexiconEntities()
    warm = LexiconEntities()
    assert len(list(cache.iterdir())) == 1
    for det in (cold, warm):
        got = det.detect_joined(text, words)
        assert got[0].tolist() == ref[0].tolist() and got[1].tolist() == ref[1].tolist() and got[2] == ref[2]
    assert warm.detect(text, words) == parsed.detect(text, words)  # the per-text path (lexicon parsed on use)
    assert len(ref[2]) >= 3


def test_synonym_table_is_keyed_by_the_tokenizer(cache, tmp_path):
    """The synonym table holds token ids: another vocabulary (or casing) is another cache file."""
    from zhmask.masking.similar_word import SimilarLexicon
    from zhmask.paths import default_vocab
    from zhmask.steps.tokenize import WordTokenizer

    table = tmp_path / "syn.txt"
    table.write_text("美丽 漂亮\n苹果\t香蕉\n", encoding="utf-8")
    vocab = default_vocab().read_text(encoding="utf-8").split("\n")
    美, 漂 = vocab.index("美"), vocab.index("漂")
    vocab[美], vocab[漂] = vocab[漂], vocab[美]  # the same tokens, two ids swapped
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(vocab), encoding="utf-8")
    a = SimilarLexicon([table], WordTokenizer())
    b = SimilarLexicon([table], WordTokenizer(other))
    assert len(list(cache.iterdir())) == 2
    assert a.words != b.words and sorted(a.key_to_word.values()) == sorted(b.key_to_word.values())
    again = SimilarLexicon([table], WordTokenizer())
    assert again.words == a.words and again.ranked == a.ranked and again.groups == a.groups
    assert {k: v.tolist() for k, v in again.by_len.items()} == {k: v.tolist() for k, v in a.by_len.items()}


def test_old_files_are_pruned_per_kind(cache, tmp_path):
    src = tmp_path / "lex.txt"
    src.write_text("北京\n", encoding="utf-8")
    build, calls = _counting_builder(src)
    cached("other", {"lex": [src]}, build)
    for i in range(lexcache.KEEP + 3):  # e.g. as many versions of a lexicon
        cached("test", {"lex": [src]}, build, extra=str(i))
    assert len(list(cache.glob("test-*.bin"))) == lexcache.KEEP
    assert len(list(cache.glob("other-*.bin"))) == 1  # another kind of table is not touched
    assert not list(cache.glob("*.tmp"))
