"""``zhmask presets``: the build presets of ``pipelines/``, each with its paper and what it trains on."""
from __future__ import annotations

import json
from typing import Any

import click

from zhmask.cli import CONTEXT, cli
from zhmask.errors import ZhmaskError

COLUMNS = ("name", "masking", "tasks", "packing", "max_seq_length", "paper", "trains_on")
HEADERS = {"max_seq_length": "max len", "trains_on": "trains on"}


def preset_summary(name: str) -> dict[str, Any]:
    """One preset as a row of the table: its build settings (validated) and its ``[preset]`` keys
    ``paper`` and ``trains_on``; ZhmaskError in one line when the file lacks them."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    from zhmask.config import BuildConfig
    from zhmask.paths import preset_path

    path = preset_path(name)
    cfg = BuildConfig.from_toml(path).validate()
    with open(path, "rb") as fh:
        meta = tomllib.load(fh).get("preset") or {}
    missing = [k for k in ("paper", "trains_on") if not isinstance(meta.get(k), str) or not meta[k]]
    if missing:
        raise ZhmaskError(f"preset {path} lacks [preset] {' and '.join(missing)}")
    return {"name": path.stem, "masking": cfg.masking, "tasks": list(cfg.tasks), "packing": cfg.packing,
            "max_seq_length": cfg.max_seq_length, "dupe_factor": cfg.dupe_factor, "paper": meta["paper"],
            "trains_on": meta["trains_on"]}


def all_presets() -> list[dict[str, Any]]:
    from zhmask.paths import pipelines_dir

    return [preset_summary(p.stem) for p in sorted(pipelines_dir().glob("*.toml"))]


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text columns, one preset a line."""
    cells = [[HEADERS.get(c, c) for c in COLUMNS]]
    for r in rows:
        cells.append([",".join(r[c]) if isinstance(r[c], list) else str(r[c]) for c in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1] for row in cells)


PRESETS_HELP = """List the build presets (pipelines/*.toml): masking, tasks, packing, length, paper.

Each preset names the paper it follows and what its rows train on (docs/presets.md says what
differs from the paper). Build one with `zhmask build-corpus --pipeline NAME`; options given
there override the preset's.

\b
Example:
  zhmask presets
  zhmask presets --json
  zhmask build-corpus --pipeline roberta corpus/ --out out/
"""


@cli.command("presets", help=PRESETS_HELP, context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="One JSON list of the presets instead of the table.")
def presets_cmd(as_json: bool) -> None:
    rows = all_presets()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        click.echo(format_table(rows))
