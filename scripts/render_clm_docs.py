"""Render one ``clm`` row into docs/autoregressive.md.

Usage: python scripts/render_clm_docs.py [docs/autoregressive.md]

The block between ``<!-- clm-example:start -->`` and ``<!-- clm-example:end -->`` is replaced by
the row the real task produces (default configuration, ``max_seq_length`` 40) from three short
documents written here: each part of the row with its ``doc_bounds``, and the labels (``·`` where
a label is -100).  tests/labels/test_clm.py checks that the page shows what this script renders.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MARKS = ("<!-- clm-example:start -->", "<!-- clm-example:end -->")
DOCS = ["今天北京天气晴朗，气温二十度。市民纷纷到公园散步。",
        "新华社消息：国家图书馆新馆正式开放。",
        "长江流域今年降水偏多，防汛部门加强巡查，确保大堤安全。沿江各地已做好准备。"]


def render() -> str:
    from zhmask.config import BuildConfig
    from zhmask.labels.clm import clm_examples
    from zhmask.pipeline import Pipeline
    from zhmask.steps.read import RawDoc

    pipe = Pipeline(BuildConfig(tasks=["clm"], max_seq_length=40))
    docs = [pipe.document(RawDoc(f"doc{i}", t))[0] for i, t in enumerate(DOCS)]
    pipe.ctx.ent_cache = {}
    pipe.ctx.set_unit([d.id for d in docs])
    rows = clm_examples(docs, pipe.ctx, pipe.ctx.events)
    tok = pipe.tok
    out = ["```text"]
    for ex in rows:
        ids, db = ex.input_ids.tolist(), ex.extra["doc_bounds"].tolist()
        lab = ex.extra["labels"].tolist()
        out.append(f"{ex.example_id}  ({len(ids)} tokens)  doc_bounds {db}")
        for k, src in enumerate(ex.extra["segment_sources"]):
            a, b = db[k], db[k + 1]
            text = "".join(tok.id_to_token[t] for t in ids[a:b])
            labels = "".join(tok.id_to_token[t] if t != -100 else "·" for t in lab[a:b])
            out.append(f"  part {k} [{a}, {b}) {src['doc_id']}:")
            out.append(f"    input_ids {text}")
            out.append(f"    labels    {labels}")
    out.append("```")
    return "\n".join(out)


def write_block(path: Path, marks: tuple[str, str], block: str) -> None:
    """Replace the text between the two ``marks`` of ``path`` by ``block`` (scripts/render_plm_docs.py too)."""
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(marks[0], 1)
    _, tail = rest.split(marks[1], 1)
    path.write_text(f"{head}{marks[0]}\n{block}\n{marks[1]}{tail}", encoding="utf-8")


def main() -> None:
    write_block(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "autoregressive.md", MARKS, render())


if __name__ == "__main__":
    main()
