"""``zhmask inspect``: examples rendered from a tiny real build of the iNews fixture."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from zhmask.api import build_corpus
from zhmask.config import BuildConfig
from zhmask.reader import Build, ShardDataset
from zhmask.schema import SENTENCE_LABEL
from zhmask.view import KEPT, MASKED, NONE, REPLACED, fates

ANSI = "\x1b["


@pytest.fixture(scope="module")
def built(tmp_path_factory, fixtures) -> Path:
    """12 iNews documents, MLM + NSP + sentence reordering, knowledge masking, two shards."""
    tmp = tmp_path_factory.mktemp("inspect")
    src = tmp / "i12.jsonl"
    src.write_text("".join((fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines(True)[:12]),
                   encoding="utf-8")
    out = tmp / "o"
    build_corpus(BuildConfig(inputs=[str(src)], text_field="text", title_field="title",
                             tasks=["mlm", "nsp", "sentence_reorder"], masking="knowledge", docs_per_shard=6,
                             out=str(out)))
    return out


@pytest.fixture(scope="module")
def rows(built) -> list[dict]:
    return list(ShardDataset(built, split=None))


def _piece(t: str) -> str:
    return t[2:] if t.startswith("##") else t


def _blocks(stdout: str) -> list[str]:
    """The examples of an inspect output (after the legend line), one string each."""
    return [b for b in stdout.split("\n\n")[1:] if b.strip()]


def test_fates_of_predicted_tokens():
    ids = np.array([101, 103, 7, 9, 5, 102])
    labels = np.array([-100, 4, 7, 8, -100, -100])
    assert fates(ids, labels, mask_id=103).tolist() == [NONE, MASKED, KEPT, REPLACED, NONE, NONE]


def test_plain_output_shows_text_fates_and_label(built, rows):
    b = Build(built)
    tok = b.tokenizer
    code, out, err = run_cli("inspect", str(built), "-n", "1")
    assert code == 0, err
    assert ANSI not in out  # not a terminal: plain text
    (block,) = _blocks(out)
    row = rows[0]
    assert block.startswith(f"{row['example_id']}  task {row['task']}")
    ids, labels, wid = np.asarray(row["input_ids"]), np.asarray(row["labels"]), np.asarray(row["word_ids"])
    # every word the masking left alone is shown whole, and every predicted token with its fate
    for w in np.unique(wid[(wid >= 0)]):
        pos = np.flatnonzero(wid == w)
        if (labels[pos] == -100).all():
            assert "".join(_piece(tok.id_to_token[int(ids[p])]) for p in pos) in block
    marks = {"masked": 0, "replaced": 0, "kept": 0}
    for p in np.flatnonzero(labels != -100):
        orig = _piece(tok.id_to_token[int(labels[p])])
        if ids[p] == tok.mask_id:
            mark, kind = f"[MASK:{orig}]", "masked"
        elif ids[p] == labels[p]:
            mark, kind = f"[={orig}]", "kept"
        else:
            mark, kind = f"[{_piece(tok.id_to_token[int(ids[p])])}>{orig}]", "replaced"
        assert mark in block
        marks[kind] += 1
    assert sum(marks.values()) > 0
    head = block.splitlines()[0]
    assert f"{sum(marks.values())} predicted" in head
    for kind, n in marks.items():
        assert (f"{n} {kind}" in head) == (n > 0)
    # entities: each entity's text between « and »TYPE
    for e in row["entities"] or []:
        assert f"»{e['type']}" in block


def test_sentence_labels_decoded(built, rows):
    from zhmask.labels.nsp import CLASSES
    from zhmask.labels.sentence_reorder import permutation_of

    nsp = next(r for r in rows if r["task"] == "nsp")
    code, out, _ = run_cli("inspect", str(built), "--id", nsp["example_id"])
    assert code == 0
    assert f"label {nsp[SENTENCE_LABEL]}: {CLASSES[nsp[SENTENCE_LABEL]]}" in out
    assert "\nA: " in out and "\nB: " in out
    # sentence_reorder: the permutation shown restores the segments to document order
    reorder = [r for r in rows if r["task"] == "sentence_reorder" and len(r["segment_sources"]) == 3]
    assert reorder
    for r in reorder[:3]:
        perm = permutation_of(r[SENTENCE_LABEL], 3)
        code, out, _ = run_cli("inspect", str(built), "--id", r["example_id"])
        assert code == 0
        assert f"label {r[SENTENCE_LABEL]}: permutation {perm}: shown segment i is original segment perm[i]" in out
        assert [ln.split(":")[0] for ln in out.splitlines() if ln.startswith("shown ")] == ["shown 0", "shown 1",
                                                                                             "shown 2"]
        restored = [None] * 3
        for i, p in enumerate(perm):
            restored[p] = r["segment_sources"][i]["start"]
        assert restored == sorted(restored)


def test_color_codes_only_when_asked(built):
    code, out, _ = run_cli("inspect", str(built), "-n", "1", "--color")
    assert code == 0 and ANSI in out and "[MASK:" in out
    code, out, _ = run_cli("inspect", str(built), "-n", "1", "--no-color")
    assert code == 0 and ANSI not in out


def test_id_finds_an_example_by_streaming(built, rows):
    target = rows[len(rows) - 2]  # in the second shard
    code, out, err = run_cli("inspect", str(built), "--id", target["example_id"])
    assert code == 0, err
    (block,) = _blocks(out)
    assert block.startswith(f"{target['example_id']}  task {target['task']}  doc {target['doc_id']}")


def test_task_filter_and_count(built, rows):
    code, out, _ = run_cli("inspect", str(built), "--task", "sentence_reorder", "-n", "4")
    assert code == 0
    blocks = _blocks(out)
    want = [r["example_id"] for r in rows if r["task"] == "sentence_reorder"][:4]
    assert [b.split()[0] for b in blocks] == want
    assert all("task sentence_reorder" in b.splitlines()[0] for b in blocks)


def test_one_shard_file(built):
    shard = sorted((built / "data").glob("*.arrow"))[1]
    first = json.loads((built / "manifest.json").read_text())["shards"][1]
    code, out, err = run_cli("inspect", str(shard), "-n", "1")
    assert code == 0, err
    assert first["rows"] > 0 and "#" in _blocks(out)[0].split()[0]
    assert _blocks(out)[0].split()[0] not in run_cli("inspect", str(built), "-n", "1")[1]


@pytest.mark.parametrize("args, message", [
    (["--id", "no-such-example#mlm0"], "no example with id 'no-such-example#mlm0'"),
    (["--task", "capitalization"], "task 'capitalization' not in the build"),
    (["-n", "0"], "-n must be at least 1"),
])
def test_bad_requests_one_line_exit_2(built, args, message):
    code, out, err = run_cli("inspect", str(built), *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("zhmask: error: ") and message in err


def test_not_a_build(tmp_path):
    code, _, err = run_cli("inspect", str(tmp_path / "missing"))
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    code, _, err = run_cli("inspect", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "manifest.json missing" in err


def test_causal_lm_rows_show_targets_and_document_parts(tmp_path, fixtures):
    """clm labels are the inputs (the model shifts them): inspect must not call every token "kept",
    and shows each packed document part on its own line."""
    src = tmp_path / "i12.jsonl"
    src.write_text("".join((fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines(True)[:12]),
                   encoding="utf-8")
    out = tmp_path / "o"
    build_corpus(BuildConfig(inputs=[str(src)], text_field="text", tasks=["clm"], max_seq_length=64, out=str(out)))
    rows = list(ShardDataset(out, split=None))
    multi = next(r for r in rows if len(r["doc_bounds"]) > 2)   # a row that packs two document parts
    code, text, err = run_cli("inspect", str(out), "--id", multi["example_id"])
    assert code == 0, err
    (block,) = _blocks(text)
    head, *lines = block.splitlines()
    targets = int((np.asarray(multi["labels"]) != -100).sum())
    assert f"{targets} next-token targets, {len(multi['doc_bounds']) - 1} document part(s)" in head
    assert "[=" not in block and "kept" not in head
    assert len(lines) == len(multi["doc_bounds"]) - 1


def test_plm_rows_show_the_factorisation_order_and_predicted_tokens(tmp_path, fixtures):
    """plm rows keep labels at -100: inspect shows the last num_predict positions of perm_order as
    predicted, and the order line lists the units in factorisation order, | before the predicted."""
    src = tmp_path / "i6.jsonl"
    src.write_text("".join((fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines(True)[:6]),
                   encoding="utf-8")
    out = tmp_path / "o"
    build_corpus(BuildConfig(inputs=[str(src)], text_field="text", tasks=["plm"], max_seq_length=48, out=str(out)))
    row = next(r for r in ShardDataset(out, split=None) if r["num_predict"] >= 2)
    code, text, err = run_cli("inspect", str(out), "--id", row["example_id"], "--no-color")
    assert code == 0, err
    (block,) = _blocks(text)
    head, *lines = block.splitlines()
    k = int(row["num_predict"])
    assert f"{k} predicted" in head
    tok = Build(out).tokenizer
    order, ids = np.asarray(row["perm_order"]), np.asarray(row["input_ids"])
    predicted = [_piece(tok.id_to_token[int(ids[p])]) for p in sorted(order[-k:].tolist())]
    shown = [m for line in lines if not line.startswith("order:") for m in re.findall(r"\[=([^\]]+)\]", line)]
    assert shown == predicted
    (order_line,) = [x for x in lines if x.startswith("order: ")]
    before, after = order_line[len("order: "):].split(" | ")
    assert "".join(after.split()) == "".join(_piece(tok.id_to_token[int(ids[p])]) for p in order[-k:].tolist())
    assert len("".join(before.split())) + len("".join(after.split())) == len("".join(
        _piece(tok.id_to_token[int(t)]) for t, w in zip(ids, row["word_ids"]) if w >= 0))
