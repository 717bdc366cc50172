"""Every build preset validates, builds on a fixture, passes ``zhmask verify`` and gives the golden
shard; ``zhmask presets``; ``--packing full``; ERNIE 1.0's staged knowledge masking.

The builds keep each preset's own options and change only the input (the first documents of
tests/fixtures/inews_150.jsonl), ``max_seq_length`` (small, so that the file runs in seconds)
and the title field (ernie2 needs titles).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, run_cli
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.record import NO_LABEL, SENTENCE_LABEL

N_DOCS = 24
MAX_LEN = 64
INPUT = "presets_input.jsonl"  # a fixed relative name: the input path is part of the shards' metadata

# sha256 of the one shard each preset builds here (test_preset_builds_and_matches_golden).  The
# shard holds the rows and, in its schema metadata, the configuration, zhmask's version and the
# schema version, so a change to any of them changes these values.  A changed value means the
# bytes zhmask writes changed: make that change deliberately, update the value in the same
# commit and say in its message why the output changed.  To print the new values, run
#   ZHMASK_PRINT_GOLDEN=1 pytest tests/test_presets.py -q -s -k golden
# and copy the printed dict here.
GOLDEN = {
    "bert": "6b0b049c6ce4fdccc390701a0621dbb12b9c076977fdc57f001096fd8b4ebe89",
    "bert-wwm": "e71b474a9dd668b3e93e6a349501d5b3b1635c2272578b3e96fdcbd117864e5e",
    "electra": "79be7cd01f5bc4969e745d22aaf7c2f33cdc2236b22316988794dbb9de709924",
    "ernie-gen": "1067047a907bb9cb18a81c211bda503dacc3ef3526fcdd8d59aebccaf2a6663f",
    "ernie1": "79895fab7633188e475c81279fc2baf8290bb7a20d8dabc6b22a353d0dc4b801",
    "ernie2": "039362e240afa73221b6f01ec72b502525364297477647960cd66b140fc5c9ca",
    "gpt": "a7294fe922a652273c29dffd085ea7d28457dfd3ea402fccf3ae2703f2086fec",
    "macbert": "0167842b5a90145fd362b4c79637ab643e4945c227493160a7bdc986004f9b65",
    "roberta": "27b2c3082d016685dded70fe72364247e5338338b00d914e05e02d8c40c8dc59",
    "xlnet": "6af20cf2c53cfa20773908d8d2bbf5d7521b672f6511f1c45b3f8f666b11def3",
}


def _presets() -> list[str]:
    from zhmask.paths import pipelines_dir

    return sorted(p.stem for p in pipelines_dir().glob("*.toml"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("presets")
    lines = (FIXTURES / "inews_150.jsonl").read_text(encoding="utf-8").splitlines()[:N_DOCS]
    (d / INPUT).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


_BUILT: dict[str, Path] = {}


def build_preset(workdir: Path, name: str, **over) -> Path:
    """The preset's build on the fixture, with ``over`` changed (built once per module)."""
    from zhmask.api import build_corpus

    key = name + "".join(f"-{k}={v}" for k, v in sorted(over.items()))
    if key in _BUILT:
        return _BUILT[key]
    out = workdir / f"out-{len(_BUILT)}"
    cfg = BuildConfig.from_preset(name, inputs=[INPUT], text_field="text", title_field="title",
                                  max_seq_length=MAX_LEN, out=str(out), overwrite=True, **over)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        result = build_corpus(cfg)
    finally:
        os.chdir(cwd)
    _BUILT[key] = out
    return result.out_dir


def rows_of(out: Path) -> list[dict]:
    from zhmask.reader import Build, open_shard

    rows: list[dict] = []
    for p in Build(out).shards:
        with open_shard(p) as r:
            for batch in r:
                rows += batch.to_pylist()
    return rows


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------ every preset
def test_golden_lists_every_preset():
    assert sorted(GOLDEN) == _presets(), "a preset without a golden sha256 (or a golden without its preset)"


@pytest.mark.parametrize("name", _presets())
def test_preset_builds_and_matches_golden(workdir, name):
    from zhmask.commands.presets import preset_summary
    from zhmask.commands.verify import verify_build

    BuildConfig.from_preset(name).validate()
    summary = preset_summary(name)  # the [preset] keys are there
    assert summary["paper"] and summary["trains_on"]
    out = build_preset(workdir, name)
    assert verify_build(out) == []
    m = manifest(out)
    assert m["documents_written"] == N_DOCS and m["examples_written"] > 0
    assert len(m["shards"]) == 1
    sha = m["shards"][0]["sha256"]
    if os.environ.get("ZHMASK_PRINT_GOLDEN"):
        print(f'\n    "{name}": "{sha}",')
    assert sha == GOLDEN.get(name), f"{name}: the shard changed ({sha}); see GOLDEN's comment"


def test_presets_command(workdir):
    from zhmask.commands.presets import all_presets

    code, out, err = run_cli("presets")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["name", "masking", "tasks", "packing"]
    assert sorted(ln.split()[0] for ln in lines[1:]) == _presets()
    assert any("Liu et al. 2019, RoBERTa" in ln and " full " in ln for ln in lines)
    code, out, err = run_cli("presets", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got == all_presets()
    assert {r["name"]: r["tasks"] for r in got}["bert"] == ["nsp"]


def test_preset_without_paper_is_one_line_error(tmp_path):
    from zhmask.commands.presets import preset_summary

    p = tmp_path / "mine.toml"
    p.write_text('[build]\nmasking = "char"\n', encoding="utf-8")
    with pytest.raises(ZhmaskError, match=r"lacks \[preset\] paper and trains_on"):
        preset_summary(str(p))


# ------------------------------------------------------------------------------------ BERT / MacBERT
@pytest.mark.parametrize("name,task", [("bert", "nsp"), ("macbert", "sop")])
def test_pair_rows_carry_the_masks(workdir, name, task):
    """BERT's instances carry both objectives: every pair row is masked, no separate mlm rows."""
    out = build_preset(workdir, name)
    rows = rows_of(out)
    assert {r["task"] for r in rows} == {task}
    cap = BuildConfig.from_preset(name).max_predictions_per_seq
    n_pred = [sum(x != -100 for x in r["labels"]) for r in rows]
    assert min(n_pred) >= 1 and max(n_pred) <= cap
    assert Counter(r[SENTENCE_LABEL] for r in rows).keys() == {0, 1}


# ------------------------------------------------------------------------------------ --packing full
def _doc_tokens(rows: list[dict], ctx_special: set[int]) -> dict[str, list[int]]:
    """Per document, its word tokens in row order (segments split at [SEP]) ."""
    out: dict[str, list[int]] = {}
    for r in rows:
        srcs = r["segment_sources"] or [{"doc_id": r["doc_id"]}]
        ids = r["input_ids"][1:]
        k = 0
        for tok in ids:
            if tok in ctx_special:
                k += 1
                continue
            out.setdefault(srcs[k]["doc_id"], []).append(tok)
    return out


def test_packing_full_fills_rows_across_documents(workdir):
    from zhmask.steps.tokenize import WordTokenizer

    full = build_preset(workdir, "roberta", shuffle=False)  # document order, to compare the text
    per_doc = build_preset(workdir, "roberta", packing="document", shuffle=False)
    rf, rd = rows_of(full), rows_of(per_doc)
    tok = WordTokenizer(None, None)
    special = {tok.cls_id, tok.sep_id}
    # the same text, document by document, in the same order; nothing lost or repeated
    assert _doc_tokens(rf, special) == _doc_tokens(rd, special)
    assert max(len(r["input_ids"]) for r in rf) <= MAX_LEN
    assert len(rf) < len(rd)  # fuller rows
    multi = [r for r in rf if len(r["segment_sources"]) > 1]
    assert multi, "no row spans two documents"
    for r in multi:  # [CLS] a [SEP] b [SEP]: one [SEP] per document, token types all 0
        assert r["input_ids"].count(tok.sep_id) == len(r["segment_sources"])
        assert r["doc_id"] == r["segment_sources"][0]["doc_id"] and not any(r["token_type_ids"])
    assert {r[SENTENCE_LABEL] for r in rf} == {NO_LABEL} and all(x == -100 for r in rf for x in r["labels"])


def test_packing_full_validation_split_holds_out_whole_documents(workdir):
    """Rows of one group of documents share the document part of their example_id, so a held-out
    document's text is never in a training row."""
    from zhmask.reader import ShardDataset

    out = build_preset(workdir, "roberta")
    docs = {}
    for split in ("train", "validation"):
        ds = ShardDataset(out, split=split, validation=0.5, salt="presets", columns=["segment_sources"])
        docs[split] = {s["doc_id"] for i in range(len(ds)) for s in ds[i]["segment_sources"]}
    assert docs["train"] and docs["validation"]
    assert not docs["train"] & docs["validation"]
    assert len(docs["train"] | docs["validation"]) == N_DOCS


def test_packing_full_refuses_pair_tasks(tmp_path):
    with pytest.raises(ZhmaskError, match="--packing full .* --tasks nsp"):
        BuildConfig(tasks=["mlm", "nsp"], packing="full").validate()
    with pytest.raises(ZhmaskError, match="--packing: 'fill' is not one of document, full"):
        BuildConfig(packing="fill").validate()
    code, _, err = run_cli("build-corpus", "--packing", "full", "--tasks", "sop", "--out", str(tmp_path / "o"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--packing full" in err


# ------------------------------------------------------------------------------------ ERNIE 1.0
def test_ernie1_stages_basic_phrase_entity(workdir):
    """A third of the rows per stage (copy @0, @1, @2), each stage masking only its levels."""
    out = build_preset(workdir, "ernie1")
    m = manifest(out)
    st = m["masking"]
    n = m["examples_written"]
    assert n % 3 == 0 and [st[f"knowledge_stage{s}_rows"] for s in range(3)] == [n // 3] * 3
    levels = {s: {k.split("_units_")[1] for k, v in st.items()
                  if k.startswith(f"knowledge_stage{s}_units_") and v and k.split("_units_")[1] in
                  ("char", "word", "phrase", "entity")} for s in range(3)}
    assert levels == {0: {"char"}, 1: {"phrase", "word"}, 2: {"entity"}}
    rows = rows_of(out)
    copies = Counter(r["example_id"].rsplit("@", 1)[1] for r in rows)
    assert copies == {"0": n // 3, "1": n // 3, "2": n // 3}


def test_knowledge_stages_validation_and_dynamic_epochs():
    from zhmask.masking.dynamic import DynamicMasking
    from zhmask.record import Example

    stages = [{"char": 1}, {"word": 1}]
    with pytest.raises(ZhmaskError, match="need --dupe-factor a multiple of 2"):
        BuildConfig(masking="knowledge", dupe_factor=3, options={"knowledge_stages": stages}).validate()
    with pytest.raises(ZhmaskError, match="give one"):
        BuildConfig(masking="knowledge", dupe_factor=2,
                    options={"knowledge_stages": stages, "knowledge_levels": {"char": 1}}).validate()
    with pytest.raises(ZhmaskError, match=r"knowledge_stages\[1\]: unknown level 'words'"):
        BuildConfig(masking="knowledge", dupe_factor=2, options={"knowledge_stages": [{"char": 1}, {"words": 1}]}).validate()
    dm = DynamicMasking("knowledge", dupe_factor=2, options={"knowledge_stages": stages}, return_tensors="np",
                        random_tokens="vocab")  # a hand-made row of no build: no unit table to draw from
    ids = np.array([101] + list(range(2000, 2030)) + [102], dtype=np.int32)  # [CLS] 30 characters [SEP]
    ex = Example(doc_id="d", example_id="d#mlm0", task="mlm", input_ids=ids,
                 token_type_ids=np.zeros(len(ids), np.int8),
                 word_ids=np.array([-1] + [i // 2 for i in range(30)] + [-1], np.int32), label=NO_LABEL, entities=[])
    for epoch, stage in ((0, 0), (1, 1), (5, 1)):  # epochs past the last copy stay in the last stage
        dm.stats.clear()
        dm.mask_example(ex, epoch)
        assert dm.stats[f"knowledge_stage{stage}_rows"] == 1
        assert dm.stats[f"knowledge_stage{stage}_units_{'char' if stage == 0 else 'word'}"] > 0
    # a mixed stage weighs each unit by its level (3 per character, 1 per word, docs/masking.md):
    # 30 characters against 15 words make a character the first pick at odds 90:15 (0.857), and
    # only a character fits the budget's last token, so characters come out a little above that
    # (0.887-0.912 over four example ids, with numpy generators before the counter-based values too)
    mixed = DynamicMasking("knowledge", dupe_factor=2, return_tensors="np", random_tokens="vocab",
                           options={"knowledge_stages": [{"char": 1}, {"char": 3, "word": 1}]})
    for epoch in range(1, 401):
        mixed.mask_example(ex, epoch)
    c, w = mixed.stats["knowledge_stage1_units_char"], mixed.stats["knowledge_stage1_units_word"]
    assert mixed.stats["knowledge_stage1_rows"] == 400 and 0.84 <= c / (c + w) <= 0.94, (c, w)


def test_ernie1_static_copy_k_equals_dynamic_epoch_k(workdir):
    """Copy k of the staged build and dynamic masking at epoch k mask with the same stage and draws."""
    from zhmask.masking.dynamic import DynamicMasking

    out = build_preset(workdir, "ernie1")
    dm = DynamicMasking.from_build(out, return_tensors="np")
    seen = set()
    for r in rows_of(out)[:60]:
        base, k = r["example_id"].rsplit("@", 1)
        ids, labels = dm.mask_row({**r, "example_id": base}, int(k))
        assert np.array_equal(ids, r["input_ids"]) and np.array_equal(labels, r["labels"]), r["example_id"]
        seen.add(k)
    assert seen == {"0", "1", "2"}


def test_packing_full_row_check_catches_bad_rows():
    """``zhmask verify``'s mlm check: one [SEP] per listed document, the first is the row's doc_id."""
    from zhmask.labels.mlm import check_mlm

    ctx = {"sep_id": 102, "config": {"packing": "full"}}
    good = {"doc_id": "a", "input_ids": [101, 7, 8, 102, 9, 102], "word_ids": [-1, 0, 1, -1, 2, -1],
            "token_type_ids": [0] * 6,
            "segment_sources": [{"doc_id": "a", "start": 5, "end": 7}, {"doc_id": "b", "start": 0, "end": 1}]}
    assert check_mlm(good, ctx) == []
    assert check_mlm({**good, "doc_id": "b"}, ctx) == ["doc_id is not the document of the first segment"]
    assert check_mlm({**good, "segment_sources": good["segment_sources"][:1]}, ctx) == [
        "segment_sources does not list the 2 segment(s)"]
    same = [{"doc_id": "a", "start": 0, "end": 2}, {"doc_id": "a", "start": 3, "end": 4}]
    assert check_mlm({**good, "segment_sources": same}, ctx) == ["two consecutive segments of one document"]
    assert check_mlm({**good, "token_type_ids": [0, 0, 0, 0, 1, 1]}, ctx) == ["token_type_ids not all 0"]
    assert check_mlm({**good, "segment_sources": None}, {**ctx, "config": {"packing": "document"}}) == [
        "2 segments in a row of --packing document"]
    empty = {**good, "input_ids": [101, 102, 9, 102], "word_ids": [-1, -1, 0, -1], "token_type_ids": [0] * 4}
    assert check_mlm(empty, ctx) and check_mlm(empty, ctx)[0].startswith("not [CLS] text [SEP]")
