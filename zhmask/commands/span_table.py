"""``zhmask span-table``: corpus-level collocations for ERNIE-GEN's span-by-span targets."""
from __future__ import annotations

import json

import click

from zhmask.cli import CONTEXT, cli
from zhmask.errors import ZhmaskError

SPAN_TABLE_HELP = """Count word bigrams and trigrams over a whole corpus and write the collocations.

CORPUS is any number of files, directories or globs, read, normalised and segmented exactly as
`zhmask build-corpus` would with the same options (no CORPUS: the embedded sample). An n-gram
whose T statistic (ERNIE-GEN's test, see docs/ernie_gen.md) exceeds --t-min is written to OUT,
a TSV (n, words, count, t). ERNIE-GEN builds read it with --option span_table=OUT and make each
listed bigram or trigram inside a target fragment one span; the table's sha256 is part of the
build's fingerprint. Memory is bounded: at most --cap keys per n-gram order are kept (the
rarest are pruned when a counter is full; the header records how many and the highest count
pruned).

\b
Example:
  zhmask span-table corpus/ --out spans.tsv
  zhmask span-table news.jsonl --text-field text --out spans.tsv --t-min 2.576
  zhmask build-corpus corpus/ --pipeline ernie-gen --option span_table=spans.tsv --out out/
"""


@cli.command("span-table", help=SPAN_TABLE_HELP, context_settings=CONTEXT)
@click.argument("corpus", nargs=-1)
@click.option("--out", "-o", required=True, help="The table to write (TSV).")
@click.option("--text-field", default="text", show_default=True, help="JSONL key / column holding the text.")
@click.option("--format", "fmt", default="auto", show_default=True, help="Input format, as build-corpus.")
@click.option("--doc-sep", default="line", show_default=True, help="Plain text: one document a line or blank-line separated.")
@click.option("--segmenter", default="rjieba", show_default=True, help="Word segmenter, as build-corpus.")
@click.option("--segmenter-model", default=None, help="pkuseg model directory (--segmenter pkuseg).")
@click.option("--user-dict", multiple=True, help="Extra segmenter dictionary; repeatable.")
@click.option("--t-min", type=float, default=2.576, show_default=True,
              help="T statistic an n-gram must exceed to be written.")
@click.option("--cap", type=click.IntRange(1000), default=1_000_000, show_default=True,
              help="Distinct keys kept per n-gram order (bounds memory).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def span_table_cmd(corpus: tuple[str, ...], out: str, text_field: str, fmt: str, doc_sep: str, segmenter: str,
                   segmenter_model: str | None, user_dict: tuple[str, ...], t_min: float, cap: int,
                   quiet: bool) -> None:
    import math

    from zhmask.config import BuildConfig
    from zhmask.generation.span_table import count_corpus, write_table

    if not math.isfinite(t_min):
        raise ZhmaskError(f"--t-min must be a finite number, got {t_min}")
    cfg = BuildConfig(inputs=list(corpus), text_field=text_field, format=fmt, doc_sep=doc_sep, segmenter=segmenter,
                      segmenter_model=segmenter_model, user_dict=list(user_dict)).validate()

    def progress(p: dict) -> None:
        if not quiet:
            click.echo(f"unit {p['unit']}: {p['documents']} documents, {p['words']} words", err=True)

    summary = write_table(count_corpus(cfg, progress, cap=cap), out, t_min)
    click.echo(json.dumps(summary, ensure_ascii=False))
