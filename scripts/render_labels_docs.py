"""Render one example per sentence-level / word-aware task into docs/labels.md.

Usage: python scripts/render_labels_docs.py [docs/labels.md]

The block between ``<!-- labels-examples:start -->`` and ``<!-- labels-examples:end -->`` is
replaced by rows the real generators produce (default configuration, seed 12345) from the first
40 documents of the test fixture ``tests/fixtures/inews_150.jsonl`` (iNews, one work unit), and,
for ``capitalization`` (the iNews texts are lowercased), from one mixed Chinese-English sentence.
The connective table of ``discourse_relation`` is rendered between
``<!-- connectives:start -->`` and ``<!-- connectives:end -->`` from the library's data.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "inews_150.jsonl"
MIXED = "苹果发布了新款iPhone和MacBook。NBA球星James也来到了北京，还用app拍了照片。"
TASKS = ("nsp", "sop", "sentence_reorder", "sentence_distance", "ir_relevance", "discourse_relation",
         "token_document_relation", "capitalization")
# which example of the unit to show, chosen for a short, readable one of the class named
WANT = {"nsp": 1, "sop": 1, "sentence_reorder": 7, "sentence_distance": 1, "ir_relevance": 1,
        "discourse_relation": 0}
MARKS = {
    "examples": ("<!-- labels-examples:start -->", "<!-- labels-examples:end -->"),
    "connectives": ("<!-- connectives:start -->", "<!-- connectives:end -->"),
}


def _text(tok, ids, wids, limit: int = 70, spaced: bool = False) -> str:
    out = []
    prev_w, prev_ascii = None, False
    for t, w in zip(ids, wids):
        piece = tok.id_to_token[int(t)]
        cont = piece.startswith("##")
        piece = piece[2:] if cont else piece
        asc = piece.isascii() and piece.isalnum()
        if out and not cont and w != prev_w and (spaced or (asc and prev_ascii)):
            out.append(" ")
        out.append(piece)
        prev_w, prev_ascii = w, asc
    s = "".join(out)
    return s if len(s) <= limit else s[: limit // 2] + " … " + s[-limit // 2:]


def _docs(pipe):
    from zhmask.steps.read import InputFile, read_file

    docs = []
    for raw in read_file(InputFile(FIXTURE, FIXTURE.name), fmt="jsonl", doc_sep="line", text_field="text",
                         title_field="title", on_decode_error="replace", max_doc_bytes=1_000_000):
        doc, _ = pipe.document(raw)
        if doc is not None:
            docs.append(doc)
        if len(docs) == 40:
            break
    return docs


def _segments(ex, sep_id):
    ids, wid = ex.input_ids.tolist(), ex.word_ids.tolist()
    segs, cur = [], ([], [])
    for t, w in zip(ids[1:], wid[1:]):
        if w == -1 and t == sep_id:
            segs.append(cur)
            cur = ([], [])
        else:
            cur[0].append(t)
            cur[1].append(w)
    return segs


def render_examples() -> str:
    from zhmask.config import BuildConfig
    from zhmask.labels import TASKS as REG
    from zhmask.labels.sentence_reorder import permutation_of
    from zhmask.pipeline import Pipeline
    from zhmask.steps.read import RawDoc

    lines: list[str] = []
    for task in TASKS:
        pipe = Pipeline(BuildConfig(tasks=[task], title_field="title").validate())
        tok = pipe.tok
        mod = sys.modules[REG[task].__module__]
        classes = getattr(mod, "CLASSES", {})
        if task == "capitalization":
            docs = [pipe.document(RawDoc("mixed", MIXED))[0]]
        else:
            docs = _docs(pipe)
        exs = list(REG[task](docs, pipe.ctx))
        if task in WANT:
            want = WANT[task]
            cands = [e for e in exs if e.label == want]
            if task == "ir_relevance":  # a document whose title reads like news (many iNews titles are site names)
                ex = next((e for e in cands if e.doc_id.endswith(":17")), cands[0])
            else:
                ex = min(cands[:40], key=len)
        else:
            ex = exs[0]
        lines.append(f"### {task}")
        lines.append("")
        lines.append("```text")
        src = ex.extra.get("segment_sources") or []
        if ex.label >= 0:
            desc = classes.get(ex.label, "")
            if task == "sentence_reorder":
                desc = f"permutation {permutation_of(ex.label, 3)}: shown segment i is original segment perm[i]"
            lines.append(f"label {ex.label}  ({desc})")
        segs = _segments(ex, tok.sep_id)
        for k, (ids, wids) in enumerate(segs):
            name = "ABCDEFG"[k] if task != "sentence_reorder" else f"shown {k}"
            where = ""
            if k < len(src):
                s = src[k]
                where = f"   <- {s['doc_id']}" + (f" [{s['start']}:{s['end']})" if s["start"] >= 0 else "")
            lines.append(f"{name}: {_text(tok, ids, wids, spaced=task == 'ir_relevance' and k == 0)}{where}")
        if task == "sentence_reorder":
            from zhmask.labels.sentence_reorder import restore

            lines.append("restored: " + " | ".join(_text(tok, i, w, 40) for i, w in restore(segs, ex.label)))
            lines.append(f"span_bounds: {ex.extra['span_bounds'].tolist()}")
        if task == "discourse_relation":
            s = src[1]
            doc = next(d for d in docs if d.id == s["doc_id"])
            k = int((doc.sentences[:, 0] <= s["start"]).sum()) - 1
            a, b = doc.sentences[k].tolist()
            lines.append(f"original B: {doc.text[a:b].strip()}")
        if "token_labels" in ex.extra:
            lab = ex.extra["token_labels"].tolist()
            ids, wid = ex.input_ids.tolist(), ex.word_ids.tolist()
            words: list[str] = []
            cur_w, cur = None, ""
            cur_l = -100
            for t, w, l in zip(ids, wid, lab):
                if w != cur_w and cur:
                    words.append(f"{cur}/{cur_l}" if cur_l != -100 else cur)
                    cur = ""
                if w < 0:
                    cur_w = w
                    continue
                piece = tok.id_to_token[t]
                cur += piece[2:] if piece.startswith("##") else piece
                cur_w, cur_l = w, l
            if cur:
                words.append(f"{cur}/{cur_l}" if cur_l != -100 else cur)
            lines.append("words/label: " + " ".join(words[:40]) + (" …" if len(words) > 40 else ""))
            if task == "capitalization":
                lines.append(f"original text: {MIXED}")
        lines.append("```")
        lines.append("")
    return "\n".join(lines).rstrip()


def render_connectives() -> str:
    from zhmask.labels.discourse_relation import NEEDS_COMMA, PAIRED, RELATIONS

    out = ["| label | class | connectives opening the second sentence | paired first halves (first sentence) |",
           "|---|---|---|---|"]
    for i, (name, desc, words) in enumerate(RELATIONS):
        shown = " ".join(w + ("\\*" if w in NEEDS_COMMA else "") for w in words)
        out.append(f"| {i} | `{name}`: {desc} | {shown} | {' '.join(PAIRED.get(name, [])) or '—'} |")
    out.append("")
    out.append("\\* only when a comma follows (the word also reads as an ordinary word: 最后一天, 只有三人, 另外两名).")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else ROOT / "docs" / "labels.md"
    text = path.read_text(encoding="utf-8")
    for key, fn in (("examples", render_examples), ("connectives", render_connectives)):
        start, end = MARKS[key]
        a, b = text.index(start) + len(start), text.index(end)
        text = text[:a] + "\n" + fn() + "\n" + text[b:]
    path.write_text(text, encoding="utf-8")
    print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
