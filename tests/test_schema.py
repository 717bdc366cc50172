"""zhmask.schema declares the columns and who fills them: every row's columns, and the columns
tasks and masking strategies declare when they register (``zhmask verify`` holds rows to it)."""
from __future__ import annotations

from zhmask.labels import TASKS, tasks_filling
from zhmask.masking import STRATEGIES
from zhmask.schema import COLUMNS, DECLARED_COLUMNS, ROW_COLUMNS, undeclared_columns


def test_every_column_is_filled_by_every_row_or_declared_by_a_task_or_strategy():
    assert set(ROW_COLUMNS) | set(DECLARED_COLUMNS) == set(COLUMNS) and not set(ROW_COLUMNS) & set(DECLARED_COLUMNS)
    declared = {}
    for reg in (TASKS, STRATEGIES):
        for name, entry in reg.entries.items():
            unknown = set(entry.columns) - set(DECLARED_COLUMNS)
            assert not unknown, f"{reg.kind} {name} declares {unknown}: not a column, or one every row has"
            for c in entry.columns:
                declared.setdefault(c, []).append(name)
    assert sorted(declared) == sorted(DECLARED_COLUMNS), "a column no task or strategy fills"
    assert tasks_filling("span_bounds") == {"ernie_gen", "seq2seq", "sentence_reorder"}
    assert tasks_filling("perm_order") == {"plm"}


def test_undeclared_columns():
    row = {c: None for c in COLUMNS}
    row.update(doc_id="d", input_ids=[1, 2], perm_order=[0, 1], token_labels=[-100, 3])
    assert undeclared_columns(row, {"perm_order"}) == ["token_labels"]
    assert undeclared_columns(row, TASKS.entries["plm"].columns) == ["token_labels"]
    assert undeclared_columns(row, {"perm_order", "token_labels"}) == []
