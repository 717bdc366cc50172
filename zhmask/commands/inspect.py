"""``zhmask inspect PATH``: a build's examples in the terminal (rendering in :mod:`zhmask.view`)."""
from __future__ import annotations

import sys

import click

from zhmask.cli import CONTEXT, cli
from zhmask.errors import ZhmaskError

INSPECT_HELP = """Show examples of a build: words, entities, masked tokens and the decoded label.

PATH is a build directory (or one of its data/shard-NNNNN.arrow files). Each example shows its
id, task and document, the sentence-level label in words (for sentence_reorder the
permutation), then one line per segment (split at [SEP]) with spaces between words, entities
as «...»TYPE, word-aware labels as word/label and the predicted tokens by fate: [MASK:x] masked
(input [MASK], label x), [y>x] replaced by y, [=x] kept; a causal-LM (clm) row, whose every
token is a next-token target, shows its text, one packed document part a line; a plm (XLNet)
row shows its predicted tokens as [=x] and an order: line, its units in factorisation order with
| before the predicted ones. On a terminal these are coloured
(--color/--no-color to choose). Rows are read in build order, one record batch at a time.

\b
Example:
  zhmask build-corpus --masking wwm --out out/
  zhmask inspect out/                        # the first 3 examples
  zhmask inspect out/ --task sentence_reorder -n 5
  zhmask inspect out/ --id pd1998_sample.txt:7#mlm0
  zhmask inspect out/ --no-color | less
"""


@cli.command("inspect", help=INSPECT_HELP, context_settings=CONTEXT)
@click.argument("path")
@click.option("-n", "count", type=int, default=3, show_default=True, help="Examples to show.")
@click.option("--task", default=None, help="Only examples of this task.")
@click.option("--id", "example_id", default=None, help="The example with this example_id.")
@click.option("--color/--no-color", default=None, help="ANSI colours (default: when standard output is a terminal).")
def inspect_cmd(path: str, count: int, task: str | None, example_id: str | None, color: bool | None) -> None:
    from zhmask.view import iter_rows, legend, open_build, render_row

    if count < 1:
        raise ZhmaskError(f"-n must be at least 1, got {count}")
    build, shards = open_build(path)
    if task is not None and task not in build.tasks:
        raise ZhmaskError(f"task {task!r} not in the build {build.out} (it has {', '.join(sorted(build.tasks)) or 'none'})")
    if color is None:
        color = sys.stdout.isatty()
    tok = build.tokenizer
    shown = 0
    for row in iter_rows(shards, task=task, example_id=example_id):
        if shown == 0:
            click.echo(f"{build.out}: {build.rows:,} rows. {legend(color)}\n", color=color)
        else:
            click.echo("", color=color)
        click.echo(render_row(row, tok, build.config, color=color), color=color)
        shown += 1
        if example_id is not None or shown >= count:
            break
    if shown == 0:
        where = f"{shards[0]}" if len(shards) == 1 and len(build.shards) > 1 else str(build.out)
        if example_id is not None:
            raise ZhmaskError(f"no example with id {example_id!r}" + (f" and task {task!r}" if task else "")
                              + f" in {where}")
        raise ZhmaskError(f"no examples{f' of task {task!r}' if task else ''} in {where}")
