"""Render one ``plm`` row, under word and under token units, into docs/autoregressive.md.

Usage: python scripts/render_plm_docs.py [docs/autoregressive.md]

The block between ``<!-- plm-example:start -->`` and ``<!-- plm-example:end -->`` is replaced by
the rows the real task produces (default configuration) from one short document written here:
the row's tokens, its factorisation order (``|`` between units, ``‖`` where the predicted suffix
starts) and the tokens predicted, for ``--plm-units word`` and ``token``.  tests/labels/test_plm.py
checks that the page shows what this script renders.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MARKS = ("<!-- plm-example:start -->", "<!-- plm-example:end -->")
DOC = "国家图书馆新馆今天正式开放，市民纷纷前往参观。"


def render() -> str:
    from zhmask.config import BuildConfig
    from zhmask.labels.plm import predicted_positions, unit_examples, units
    from zhmask.pipeline import Pipeline
    from zhmask.steps.read import RawDoc

    out = ["```text"]
    for kind in ("word", "token"):
        pipe = Pipeline(BuildConfig(tasks=["plm"], plm_units=kind))
        docs = [pipe.document(RawDoc("doc0", DOC))[0]]
        pipe.ctx.ent_cache = {}
        pipe.ctx.set_unit([d.id for d in docs])
        ex = unit_examples(docs, pipe.ctx, pipe.ctx.events)[0]
        name = pipe.tok.id_to_token
        ids, order, p = ex.input_ids.tolist(), ex.extra["perm_order"].tolist(), ex.extra["num_predict"]
        unit = units(ex.word_ids, kind == "word")
        cut = len(order) - p
        text = []
        for k, pos in enumerate(order):
            if k and (k == cut or unit[pos] != unit[order[k - 1]]):
                text.append(" ‖ " if k == cut else " | ")
            text.append(name[ids[pos]])
        pred = predicted_positions(order, p).tolist()
        out.append(f"--plm-units {kind}: {ex.example_id} ({len(ids)} tokens), num_predict {p}")
        out.append(f"  input_ids  {''.join(name[t] for t in ids)}")
        out.append(f"  perm_order {order}")
        out.append(f"  as tokens  {''.join(text)}")
        out.append(f"  predicted  positions {pred}: {''.join(name[ids[t]] for t in pred)}")
    out.append("```")
    return "\n".join(out)


def main() -> None:
    spec = importlib.util.spec_from_file_location("render_clm_docs", ROOT / "scripts" / "render_clm_docs.py")
    clm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(clm)
    clm.write_block(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "autoregressive.md", MARKS, render())


if __name__ == "__main__":
    main()
