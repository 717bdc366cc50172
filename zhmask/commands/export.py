"""``zhmask export``: a build's shards as input for other frameworks (:mod:`zhmask.export`)."""
from __future__ import annotations

import sys

import click

from zhmask.cli import CONTEXT, cli, progress_bar

EXPORT_HELP = """Export the build in DIR for another framework; the files go to OUT.

\b
Formats (--format; docs/export.md has each layout and its reader):
  hf        datasets.DatasetDict (train, validation), save_to_disk; load_from_disk reads it
  parquet   OUT/<split>/part-NNNNN.parquet, one a shard, the shard's columns
  jsonl     OUT/<split>/part-NNNNN.jsonl, a JSON object a row (nulls left out)
  megatron  Megatron-LM indexed dataset OUT/<split>_text_sentence.bin/.idx, a sequence a
            sentence of the mlm rows' original ids, document boundaries
  tfrecord  google-research/bert features (--layout bert, the build's masks) or ELECTRA's
            (--layout electra, original ids), OUT/<split>/part-NNNNN.tfrecord
  paddle    PaddleNLP ERNIE OUT/<split>_ids.npy + <split>_idx.npz (lens, docs)

The validation split (--validation, default 0.01; 0: none) holds out whole documents by the
same hash as the trainers (zhmask.reader.is_validation), so it is the trainers' validation.
Formats whose framework masks while training (megatron, paddle, tfrecord electra, and hf,
parquet, jsonl with --unmask) get the original ids: labels where labels != -100, else
input_ids; of a --dupe-factor build they take the first copy only (the others are the same
text). Rows stream record batch by record batch; progress on a terminal, a one-line summary
(rows, files, bytes) at the end. OUT must not exist or be empty (--overwrite replaces it).

\b
Example:
  zhmask build-corpus news.jsonl --tasks mlm,nsp --masking wwm --out out/
  zhmask export out/ --format hf --out out-hf/
  zhmask export out/ --format parquet --unmask --decode --out out-pq/
  zhmask export out/ --format tfrecord --layout bert --out out-tf/
  zhmask build-corpus news.jsonl --no-shuffle --out doc/   # megatron and paddle keep documents whole
  zhmask export doc/ --format megatron --out out-mg/       # train_text_sentence.bin/.idx
  zhmask export doc/ --format paddle --validation 0 --out out-pd/
"""


class _Progress:
    """Rows read of the build's rows on :func:`zhmask.cli.progress_bar` (percentage, time left;
    on a terminal only): the ``progress`` callback of :func:`zhmask.export.export`."""

    def __init__(self, enabled: bool) -> None:
        self.bar = progress_bar() if enabled else None
        self.task = None

    def __enter__(self) -> "_Progress":
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task("", total=max(total, 1))
        self.bar.update(self.task, completed=done, description=f"{done:,} / {total:,} rows")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _format_names() -> list[str]:
    from zhmask.export import FORMATS

    return list(FORMATS)


@cli.command("export", help=EXPORT_HELP, context_settings=CONTEXT)
@click.argument("directory", metavar="DIR")
@click.option("--format", "fmt", required=True, type=click.Choice(_format_names()), help="Output format.")
@click.option("--out", "-o", required=True, help="Output directory (must not exist or be empty).")
@click.option("--validation", default=0.01, show_default=True, type=float,
              help="Fraction of documents held out as the validation split (0: none).")
@click.option("--tasks", default=None, help="Comma-separated tasks to export (default: every task; megatron, paddle: mlm; tfrecord: see docs).")
@click.option("--unmask", is_flag=True, help="hf/parquet/jsonl: original ids in input_ids, labels left out (for a trainer that masks).")
@click.option("--decode", is_flag=True, help="hf/parquet/jsonl: add a text column with the decoded input_ids.")
@click.option("--layout", default="bert", show_default=True, type=click.Choice(["bert", "electra"]), help="tfrecord feature layout.")
@click.option("--max-seq-length", type=int, default=None, help="tfrecord: pad to this length (default: the build's).")
@click.option("--max-predictions-per-seq", "max_predictions", type=int, default=None,
              help="tfrecord bert: masked_lm_* length (default: the most masked positions of a row).")
@click.option("--word-marks/--no-word-marks", default=True, show_default=True,
              help="paddle: a character continuing a Chinese word as its ## piece (ERNIE's whole-word input).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary.")
def export_cmd(directory: str, fmt: str, out: str, validation: float, tasks: str | None, unmask: bool, decode: bool,
               layout: str, max_seq_length: int | None, max_predictions: int | None, word_marks: bool,
               overwrite: bool, quiet: bool) -> None:
    from zhmask.cli import _csv
    from zhmask.errors import ZhmaskError
    from zhmask.export import ExportOptions, export

    picked = _csv(tasks)
    if tasks is not None and not picked:
        raise ZhmaskError("--tasks is empty")
    for name, v in (("--max-seq-length", max_seq_length), ("--max-predictions-per-seq", max_predictions)):
        if v is not None and v < 1:
            raise ZhmaskError(f"{name} must be at least 1, got {v}")
    if (unmask or decode) and fmt not in ("hf", "parquet", "jsonl"):
        raise ZhmaskError(f"--unmask and --decode are for hf, parquet and jsonl (--format {fmt} has its own rule)")
    opts = ExportOptions(validation=validation, tasks=picked, decode=decode, unmask=unmask, layout=layout,
                         max_seq_length=max_seq_length, max_predictions=max_predictions, word_marks=word_marks)
    with _Progress(enabled=sys.stderr.isatty() and not quiet) as progress:
        result = export(directory, fmt, out, opts, overwrite=overwrite, progress=progress)
    if not quiet:
        click.echo(result.summary())
