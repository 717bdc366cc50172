"""Render one sentence under every masking strategy into docs/masking.md.

Usage: python scripts/render_masking_docs.py [docs/masking.md]

The block between ``<!-- masking-examples:start -->`` and ``<!-- masking-examples:end -->`` is
replaced by the output of the real pipeline (default configuration, seed 12345): the words the
segmenter found, the entities, then per strategy the corrupted input with predicted positions
in brackets (``[MASK]``, a random token, or the token kept), and what is predicted.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SENTENCE = "国务院总理李鹏今天在人民大会堂会见了来自日本的经济代表团，双方就进一步加强中日经贸合作交换了意见。"
STRATEGIES = ("char", "wwm", "ngram", "mac", "knowledge", "span")
START, END = "<!-- masking-examples:start -->", "<!-- masking-examples:end -->"


def render() -> str:
    from zhmask.config import BuildConfig
    from zhmask.pipeline import Pipeline
    from zhmask.steps.read import RawDoc

    lines = []
    base = Pipeline(BuildConfig())
    doc, _ = base.document(RawDoc("example", SENTENCE))
    words = doc.word_texts()
    lines.append(f"Sentence: {SENTENCE}")
    lines.append("")
    lines.append("Words (rjieba): " + " / ".join(words))
    lines.append("Entities: " + ", ".join(f"{doc.text[e.start:e.end]} {e.type}" for e in doc.entities))
    lines.append("")
    for name in STRATEGIES:
        pipe = Pipeline(BuildConfig(masking=name, seed=12345).validate())
        ex = next(iter(pipe.examples([doc])))
        row = next(iter(pipe.rows(ex, {"masking": {}})))
        tok = pipe.tok
        orig, inp, lab = (np.asarray(x) for x in (ex.input_ids, row["input_ids"], row["labels"]))
        wid = np.asarray(ex.word_ids)
        out = []
        for i in range(len(orig)):
            if wid[i] < 0:
                continue
            t = tok.id_to_token[int(inp[i])]
            sep = " " if i > 1 and wid[i] != wid[i - 1] else ""
            out.append(sep + (f"[{t}]" if lab[i] != -100 and t != "[MASK]" else t))
        pred = []
        i = 0
        while i < len(lab):
            if lab[i] != -100:
                j = i
                while j < len(lab) and lab[j] != -100:
                    j += 1
                pred.append("".join(tok.id_to_token[int(x)] for x in orig[i:j]))
                i = j
            else:
                i += 1
        lines.append(f"{name:<9}  " + "".join(out))
        lines.append(f"{'':<9}  predicts: {' | '.join(pred)}")
    return "```text\n" + "\n".join(lines) + "\n```"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "docs" / "masking.md"
    text = path.read_text(encoding="utf-8")
    a, b = text.index(START) + len(START), text.index(END)
    path.write_text(text[:a] + "\n" + render() + "\n" + text[b:], encoding="utf-8")
    print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
