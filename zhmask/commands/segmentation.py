"""``zhmask eval-segmenter``, ``train-segmenter`` and ``build-dict``: thin over :mod:`zhmask.segquality`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from zhmask.cli import CONTEXT, PartsOption, cli
from zhmask.errors import ZhmaskError

FORMAT_HELP = "Gold form: pku (word/tag), plain (space-separated words) or auto (decided from the file)."
FORMATS = click.Choice(["auto", "pku", "plain"])

EVAL_HELP = """Score segmenters (and the entity detector) against a gold-segmented file.

Prints one row per backend: word precision, recall and F1 (character-span match), recall of
out-of-vocabulary words, and MB/s of segmentation; with a PKU word/tag gold also precision,
recall and F1 of persons (adjacent nr tokens are one name), places (ns) and organisations (nt).
Gold text goes through build-corpus's normaliser first (full-width digits become half-width),
so a segmenter is scored on the text it sees in the pipeline; --no-normalize scores raw text.

OOV words are gold words missing from --train (a segmented corpus: the training split) or
--vocab (a word list); with neither, from jieba's dictionary.

\b
Example:
  zhmask eval-segmenter --gold test.txt --segmenter rjieba --segmenter jieba --train train.txt
  zhmask eval-segmenter --gold test.txt --segmenter rjieba --user-dict pku.dict \\
      --lexicon ents/per.txt --lexicon ents/loc.txt --lexicon ents/org.txt
  zhmask eval-segmenter --gold test.txt --segmenter pkuseg --segmenter-model pku-model/ --json
"""


@cli.command("eval-segmenter", help=EVAL_HELP, context_settings=CONTEXT)
@click.option("--gold", required=True, help="Gold file: PKU word/tag or space-separated words, one sentence a line.")
@click.option("--segmenter", "segmenters", multiple=True, cls=PartsOption, kind="segmenter",
              help="{names} (default rjieba); repeatable or comma-separated.")
@click.option("--segmenter-model", default=None, help="Model directory for pkuseg (zhmask train-segmenter).")
@click.option("--user-dict", multiple=True, help="jieba-format user dictionary, as in build-corpus; repeatable.")
@click.option("--hmm/--no-hmm", default=False, show_default=True, help="jieba's HMM for unknown words.")
@click.option("--lexicon", "lexicons", multiple=True, help="Entity lexicon file or bundled name (default: the bundled ones); repeatable.")
@click.option("--no-entities", is_flag=True, help="Score words only.")
@click.option("--train", "train_file", default=None, help="Segmented training corpus whose words are the in-vocabulary words.")
@click.option("--vocab", "vocab_file", default=None, help="Word list (first field a line) of in-vocabulary words.")
@click.option("--format", "form", type=FORMATS, default="auto", show_default=True, help=FORMAT_HELP)
@click.option("--no-normalize", is_flag=True, help="Score on the raw gold text, not build-corpus's normalised text.")
@click.option("--limit", type=int, default=None, help="Only the first N gold sentences.")
@click.option("--speed-repeats", type=click.IntRange(min=1), default=1, show_default=True, help="Time segmentation this many times, keep the fastest.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.option("--markdown", is_flag=True, help="A Markdown table.")
def eval_segmenter_cmd(gold: str, segmenters: tuple[str, ...], segmenter_model: str | None, user_dict: tuple[str, ...],
                       hmm: bool, lexicons: tuple[str, ...], no_entities: bool, train_file: str | None,
                       vocab_file: str | None, form: str, no_normalize: bool, limit: int | None, as_json: bool,
                       markdown: bool, speed_repeats: int) -> None:
    from zhmask.segquality import evaluate_backends, format_table, read_gold, read_vocabulary
    from zhmask.segquality.training import jieba_base_dictionary

    names = [n.strip() for s in (segmenters or ("rjieba",)) for n in s.split(",") if n.strip()]
    from zhmask.steps.segment import SEGMENTERS

    for n in names:
        if n not in SEGMENTERS.entries:
            raise ZhmaskError(f"unknown segmenter {n!r} (expected one of {', '.join(SEGMENTERS.names())})")
    for n in names:
        if SEGMENTERS.has(n, "needs_model") and not segmenter_model:
            raise ZhmaskError(f"--segmenter {n} needs --segmenter-model DIR (train one with `zhmask train-segmenter`)")
    if segmenter_model and not Path(segmenter_model).is_dir():
        raise ZhmaskError(f"--segmenter-model {segmenter_model}: not a directory")
    for p in user_dict:
        if not Path(p).is_file():
            raise ZhmaskError(f"user dictionary not found: {p}")
    if limit is not None and limit < 1:
        raise ZhmaskError(f"--limit must be at least 1, got {limit}")
    if train_file and vocab_file:
        raise ZhmaskError("give --train or --vocab, not both")
    normalize = not no_normalize
    corpus = read_gold(gold, form, normalize=normalize, limit=limit)
    if train_file:
        vocabulary, vocab_src = read_gold(train_file, form, normalize=normalize).vocabulary(), f"words of {train_file}"
    elif vocab_file:
        vocabulary, vocab_src = read_vocabulary(vocab_file), f"words of {vocab_file}"
    else:
        base = jieba_base_dictionary()
        vocabulary = read_vocabulary(base) if base else None
        vocab_src = "jieba's dictionary" if base else "none (jieba not installed)"
    results = evaluate_backends(corpus, names, model=segmenter_model, user_dicts=list(user_dict), hmm=hmm,
                                entities=not no_entities, lexicons=list(lexicons) or None, vocabulary=vocabulary,
                                speed_repeats=speed_repeats)
    if as_json:
        click.echo(json.dumps({"gold": gold, "form": corpus.form, "sentences": len(corpus.sentences),
                               "skipped_lines": len(corpus.skipped), "normalized": normalize,
                               "vocabulary": vocab_src, "results": [r.to_dict() for r in results]},
                              ensure_ascii=False, indent=2))
        return
    words = sum(len(s.words) for s in corpus.sentences)
    click.echo(f"gold {gold}: {len(corpus.sentences):,} sentences, {words:,} words, "
               f"{corpus.text_bytes() / 1e6:.2f} MB, {corpus.form} form"
               f"{', normalised' if normalize else ''}; OOV vs {vocab_src}")
    if corpus.skipped:
        click.echo(corpus.describe_skipped(), err=True)
    click.echo(format_table(results, markdown=markdown))


TRAIN_HELP = """Train a spacy-pkuseg segmentation model offline from a segmented corpus.

TRAIN is PKU word/tag or space-separated words, one sentence a line. The words are normalised
as build-corpus normalises text. OUT becomes a model directory for
`--segmenter pkuseg --segmenter-model OUT` (build-corpus, eval-segmenter), with train.log
(F1 on --dev after each iteration) and zhmask-model.json (how it was trained). The model
segments only: its words carry no POS tags, so entities come from lexicons alone.

\b
Example:
  zhmask train-segmenter --train pd1998_train.txt --out pku-model/ --iterations 10
  zhmask build-corpus corpus/ --segmenter pkuseg --segmenter-model pku-model/ --out out/
"""


@cli.command("train-segmenter", help=TRAIN_HELP, context_settings=CONTEXT)
@click.option("--train", "train_file", required=True, help="Segmented training corpus.")
@click.option("--out", required=True, help="Model directory to write.")
@click.option("--iterations", type=int, default=10, show_default=True, help="Training iterations (passes).")
@click.option("--dev", "dev_file", default=None, help="Segmented dev corpus scored after each iteration (default: the training tail).")
@click.option("--limit", type=int, default=None, help="Only the first N training sentences.")
@click.option("--format", "form", type=FORMATS, default="auto", show_default=True, help=FORMAT_HELP)
def train_segmenter_cmd(train_file: str, out: str, iterations: int, dev_file: str | None, limit: int | None,
                        form: str) -> None:
    from zhmask.segquality import read_gold
    from zhmask.segquality.training import train_segmenter

    if limit is not None and limit < 1:
        raise ZhmaskError(f"--limit must be at least 1, got {limit}")
    train = read_gold(train_file, form, limit=limit)
    if train.skipped:
        click.echo(train.describe_skipped(), err=True)
    dev = read_gold(dev_file, form) if dev_file else None
    if sys.stderr.isatty():  # percentage and time left, an update per training iteration
        from zhmask.cli import progress_bar

        with progress_bar() as bar:
            task = bar.add_task(f"training {len(train.sentences):,} sentences", total=iterations)
            meta = train_segmenter(train, out, iterations=iterations, dev=dev,
                                   progress=lambda k: bar.update(task, completed=k))
    else:
        meta = train_segmenter(train, out, iterations=iterations, dev=dev)
    last = meta["dev_log"][-1] if meta["dev_log"] else ""
    click.echo(f"trained {out}: {meta['train_sentences']:,} sentences, {meta['train_words']:,} words, "
               f"{iterations} iteration(s), {meta['seconds']:.1f}s{'; ' + last if last else ''}")
    click.echo(f"use: zhmask build-corpus --segmenter pkuseg --segmenter-model {out} ...")


DICT_HELP = """Extract a jieba-format user dictionary (word freq tag) from a segmented corpus.

Each corpus word gets its count scaled to jieba's dictionary and its most frequent tag; words of
jieba's dictionary that the corpus text contains but (mostly) does not treat as words get
frequency 0, which removes them, so rjieba and jieba follow the corpus's standard. Use it with
--user-dict in build-corpus and eval-segmenter. --entities-out DIR also writes person, place
and organisation lexicons (per.txt, loc.txt, org.txt) learned from the corpus's tags, for
--lexicon.

\b
Example:
  zhmask build-dict --train pd1998_train.txt --out pku.dict --entities-out pku-entities/
  zhmask build-corpus corpus/ --user-dict pku.dict --out out/
"""


@cli.command("build-dict", help=DICT_HELP, context_settings=CONTEXT)
@click.option("--train", "train_file", required=True, help="Segmented corpus (PKU word/tag or space-separated).")
@click.option("--out", required=True, help="Dictionary file to write.")
@click.option("--entities-out", default=None, help="Directory for per.txt, loc.txt, org.txt (needs word/tag input).")
@click.option("--base", default="jieba", show_default=True, help="Base dictionary to scale to and prune: jieba (installed dict.txt), a file, or none.")
@click.option("--scale", type=float, default=None, help="Frequency = count x scale (default: base dictionary total / corpus tokens).")
@click.option("--min-count", type=int, default=1, show_default=True, help="Leave out rarer corpus words.")
@click.option("--keep-conflicts", is_flag=True, help="Do not remove base-dictionary words the corpus does not treat as words.")
@click.option("--format", "form", type=FORMATS, default="auto", show_default=True, help=FORMAT_HELP)
def build_dict_cmd(train_file: str, out: str, entities_out: str | None, base: str, scale: float | None,
                   min_count: int, keep_conflicts: bool, form: str) -> None:
    from zhmask.segquality import read_gold
    from zhmask.segquality.training import build_dict, entity_lexicons, write_dict

    if min_count < 1:
        raise ZhmaskError(f"--min-count must be at least 1, got {min_count}")
    if scale is not None and scale <= 0:
        raise ZhmaskError(f"--scale must be positive, got {scale}")
    base_arg: str | None = None if base.lower() == "none" else base
    if base_arg and base_arg != "jieba" and not Path(base_arg).is_file():
        raise ZhmaskError(f"--base {base}: not a file (or 'jieba', 'none')")
    corpus = read_gold(train_file, form)
    if corpus.skipped:
        click.echo(corpus.describe_skipped(), err=True)
    if entities_out and not corpus.tagged:
        raise ZhmaskError(f"--entities-out needs tags: {train_file} is in the space-separated form")
    entries, summary = build_dict(corpus, base=base_arg, scale=scale, min_count=min_count,
                                  remove_conflicts=not keep_conflicts)
    header = [f"zhmask build-dict from {Path(train_file).name}: {summary['corpus_words']} words, "
              f"{summary['corpus_tokens']} tokens; freq = count x {summary['scale']}; "
              f"{summary['removed']} base-dictionary words removed (freq 0)"]
    write_dict(entries, out, header)
    msg = (f"wrote {out}: {summary['entries'] - summary['removed']:,} words (scale {summary['scale']}), "
           f"{summary['removed']:,} base words removed")
    if entities_out:
        d = Path(entities_out)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ZhmaskError(f"cannot create {d}: {exc}") from None
        lex = entity_lexicons(corpus)
        for typ, items in lex.items():
            write_dict([(w, c, typ) for w, c in items], d / f"{typ.lower()}.txt",
                       [f"{typ} entries learned from {Path(train_file).name} by zhmask build-dict"])
        msg += "; " + ", ".join(f"{d / (t.lower() + '.txt')} {len(v):,}" for t, v in lex.items())
    click.echo(msg)
