"""Segmentation and entity quality of every backend on a held-out split of People's Daily 1998.

Splits the PKU corpus (non-blank lines; the first 90% train, the last 10% test: later January
days, so test stories are not spread through training), builds a jieba user dictionary and
entity lexicons from the training split (``zhmask build-dict``), trains a spacy-pkuseg model
on it (``zhmask train-segmenter``, or reuses one with ``--model``), scores each backend on the
test split (``zhmask eval-segmenter``'s library) and writes the table between the GENERATED
markers of ``docs/segmentation.md``.

    python benchmarks/segmentation_quality.py ../shared/corpora/pd1998_pos_train.txt \\
        --work /tmp/segbench --iterations 10

The machine is shared: MB/s are of one process on whatever the other processes left over.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _report import cpu_model  # noqa: E402
from zhmask.segquality import evaluate, format_table, read_gold, split_holdout  # noqa: E402
from zhmask.segquality.training import build_dict, entity_lexicons, train_segmenter, write_dict  # noqa: E402
from zhmask.steps.entities import make_entity_detector  # noqa: E402
from zhmask.steps.segment import make_segmenter  # noqa: E402

BEGIN, END = "<!-- BEGIN GENERATED: benchmarks/segmentation_quality.py -->", "<!-- END GENERATED -->"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", help="pd1998_pos_train.txt (PKU word/tag, a paragraph a line)")
    ap.add_argument("--work", default="/tmp/zhmask-segbench", help="directory for the split, dictionary, lexicons, model")
    ap.add_argument("--test-share", type=float, default=0.1)
    ap.add_argument("--iterations", type=int, default=10, help="spacy-pkuseg training iterations")
    ap.add_argument("--model", default=None, help="reuse this trained pkuseg model directory instead of training")
    ap.add_argument("--docs", default=str(ROOT / "docs" / "segmentation.md"))
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    lines = Path(args.corpus).read_text(encoding="utf-8").splitlines()
    train_lines, test_lines = split_holdout(lines, args.test_share)
    train_file, test_file = work / "train.txt", work / "test.txt"
    train_file.write_text("\n".join(train_lines) + "\n", encoding="utf-8")
    test_file.write_text("\n".join(test_lines) + "\n", encoding="utf-8")
    train, test = read_gold(train_file), read_gold(test_file)
    log(f"split: {len(train.sentences)} train / {len(test.sentences)} test paragraphs")

    dict_file, ents_dir = work / "pku.dict", work / "entities"
    t0 = time.time()
    entries, summary = build_dict(train)
    write_dict(entries, dict_file, [f"from {train_file.name}: freq = count x {summary['scale']}"])
    ents_dir.mkdir(exist_ok=True)
    lex_files = []
    for typ, items in entity_lexicons(train).items():
        p = ents_dir / f"{typ.lower()}.txt"
        write_dict([(w, c, typ) for w, c in items], p)
        lex_files.append(str(p))
    dict_seconds = time.time() - t0
    log(f"build-dict: {summary} in {dict_seconds:.1f}s")

    if args.model:
        model = Path(args.model)
        meta = json.loads((model / "zhmask-model.json").read_text(encoding="utf-8"))
        log(f"reusing {model}: {meta['train_sentences']} sentences, {meta['iterations']} iterations, {meta['seconds']}s")
    else:
        model = work / "pkuseg-model"
        log(f"training pkuseg, {args.iterations} iterations ...")
        meta = train_segmenter(train, model, iterations=args.iterations)
        log(f"trained in {meta['seconds']}s")

    vocab = train.vocabulary()
    bundled = make_entity_detector("lexicon")
    learned = make_entity_detector("lexicon", lexicons=lex_files)
    d = str(dict_file)
    runs = [
        # (label, segmenter, entity detector, what entities come from)
        ("char", make_segmenter("char"), bundled, "bundled lexicons"),
        ("jieba", make_segmenter("jieba"), bundled, "jieba tags + bundled lexicons"),
        ("rjieba", make_segmenter("rjieba"), bundled, "jieba tags + bundled lexicons"),
        ("rjieba HMM", make_segmenter("rjieba", hmm=True), bundled, "jieba tags + bundled lexicons"),
        ("jieba + pku.dict", make_segmenter("jieba", user_dicts=[d]), learned, "dict tags + learned lexicons"),
        ("rjieba + pku.dict", make_segmenter("rjieba", user_dicts=[d]), learned, "dict tags + learned lexicons"),
        ("rjieba + pku.dict HMM", make_segmenter("rjieba", user_dicts=[d], hmm=True), learned,
         "dict tags + learned lexicons"),
        ("pkuseg (trained)", make_segmenter("pkuseg", model=str(model)), learned, "learned lexicons only (no tags)"),
    ]
    results, sources = [], []
    for label, seg, det, src in runs:
        # fast backends: the best of 3 passes (the machine is shared); pkuseg and jieba: one
        r = evaluate(test, seg, det, vocab, name=label, speed_repeats=3 if "rjieba" in label or label == "char" else 1)
        log(f"{label}: word F1 {r.words.f1:.4f}, entities F1 {r.entities_all.f1:.4f}, {r.mb_per_s:.2f} MB/s")
        results.append(r)
        sources.append(src)

    table = format_table(results, markdown=True)
    # an extra column: where each row's entities come from
    rows = table.splitlines()
    rows[0] += " entities from |"
    rows[1] += "---|"
    for i, src in enumerate(sources):
        rows[2 + i] += f" {src} |"
    table = "\n".join(rows)
    cpu = cpu_model()
    words = sum(len(s.words) for s in test.sentences)
    block = "\n".join([
        BEGIN,
        "",
        f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by",
        (f"`python benchmarks/segmentation_quality.py {Path(args.corpus).name} --model DIR`, DIR trained on the same"
         f" split by `zhmask train-segmenter --train train.txt --out DIR --iterations {meta['iterations']}`,"
         if args.model else
         f"`python benchmarks/segmentation_quality.py {Path(args.corpus).name} --iterations {meta['iterations']}`")
        + f" on {cpu}, {os.cpu_count()} cores (shared with other jobs), Python {platform.python_version()}.",
        "",
        f"Test split: the last {len(test.sentences):,} paragraphs ({words:,} words, {test.text_bytes() / 1e6:.2f} MB);"
        f" training split: the first {len(train.sentences):,} ({sum(len(s.words) for s in train.sentences):,} words)."
        f" OOV words: test words not among the training split's {len(vocab):,} distinct words.",
        f"`pku.dict`: {summary['corpus_words']:,} training words (freq = count x {summary['scale']}) and"
        f" {summary['removed']:,} jieba words removed; learned lexicons: "
        + ", ".join(f"{Path(p).name} {sum(1 for _ in open(p, encoding='utf-8')):,}" for p in lex_files)
        + f"; built in {dict_seconds:.0f}s.",
        f"pkuseg model: {meta['train_sentences']:,} paragraphs, {meta['iterations']} iterations,"
        f" trained in {meta['seconds'] / 60:.0f} min wall clock (one process, on the shared machine).",
        "",
        "Scores in %; MB/s: UTF-8 megabytes per second of `Segmenter.segment` (words and POS tags, as",
        "build-corpus runs it), one process; for char and rjieba the fastest of three passes.",
        "",
        table,
        "",
        END,
    ])
    docs = Path(args.docs)
    text = docs.read_text(encoding="utf-8") if docs.exists() else f"# Segmentation quality\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        text = text[:a] + block + text[b:]
    else:
        text += "\n" + block + "\n"
    docs.write_text(text, encoding="utf-8")
    log(f"wrote the table into {docs}")
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": [r.to_dict() for r in results], "model": meta,
                                               "dict": summary}, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
