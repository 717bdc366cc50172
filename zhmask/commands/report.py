"""``zhmask report DIR``: a self-contained HTML page of plots about a build (:mod:`zhmask.report`)."""
from __future__ import annotations

import click

from zhmask.cli import CONTEXT, cli

REPORT_HELP = """Write one self-contained HTML page with plots describing a build.

Plots: rows per task, masked-unit lengths, fates of predicted tokens ([MASK] / replaced / kept),
word and sentence lengths, sequence lengths and the padding waste at each sequence length,
class balance per task, entity types, rejected documents by reason, characters that became
[UNK], and the throughput of the build's last run. Row statistics stream the shards one record
batch at a time (--max-rows to look at the first rows only); the page embeds its images and
needs no network. Needs matplotlib (pip install 'zhmask[report]').

\b
Example:
  zhmask build-corpus --masking wwm --out out/
  zhmask report out/ --out report.html
  zhmask report big-build/ --max-rows 200000 --out big.html
"""


@cli.command("report", help=REPORT_HELP, context_settings=CONTEXT)
@click.argument("directory")
@click.option("--out", "-o", default="report.html", show_default=True, help="The HTML file to write.")
@click.option("--max-rows", type=int, default=None, help="Row statistics over the first N rows only (default: all).")
def report_cmd(directory: str, out: str, max_rows: int | None) -> None:
    from zhmask.report import write_report

    dest = write_report(directory, out, max_rows=max_rows)
    click.echo(f"wrote {dest}")
