"""The ``zhmask`` command line: thin over :mod:`zhmask.api`.

Every user error (bad option, missing file, unreadable vocabulary) ends in one line on stderr
and exit code 2, never a traceback.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from zhmask import __version__
from zhmask.errors import ZhmaskError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _LazyGroup(click.Group):
    """The commands defined in their own modules (:data:`_COMMAND_MODULES`) are imported only when
    one of them is asked for, or the list of commands (``--help``): ``zhmask build-corpus`` does
    not pay for the option tables of every other command (a large part of its start-up)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None:
            _load_commands()
            cmd = super().get_command(ctx, cmd_name)
        return cmd

    def list_commands(self, ctx: click.Context) -> list[str]:
        _load_commands()
        return super().list_commands(ctx)


@click.group(cls=_LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="zhmask")
def cli() -> None:
    """zhmask: segmentation-aware Chinese pretraining data as Arrow shards.

    \b
    Example:
      zhmask build-corpus --out out/          # the embedded People's Daily sample
      zhmask build-corpus news.jsonl --text-field text --masking wwm --out out/
    """


class PartName(click.ParamType):
    """The name of a registered part of ``kind`` (:data:`zhmask.registry.KINDS`): checked against
    and completed from its registry, which is imported only then (start-up pays for none)."""

    name = "name"

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from zhmask.registry import registry

        names = registry(self.kind).names()
        if value not in names:
            self.fail(f"{value!r} is not one of {', '.join(names)}", param, ctx)
        return value

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
        from click.shell_completion import CompletionItem

        from zhmask.registry import registry

        return [CompletionItem(n) for n in registry(self.kind).names() if n.startswith(incomplete)]


class PartsOption(click.Option):
    """An option whose help names the registered parts of ``kind``: ``{names}`` in its help
    becomes ``a | b | c`` when the help is shown, from the registry (so a new part appears
    there by registering itself)."""

    def __init__(self, *args: Any, kind: str, sep: str = " | ", **kwargs: Any) -> None:
        self.kind, self.sep = kind, sep
        super().__init__(*args, **kwargs)

    def get_help_record(self, ctx: click.Context):
        from zhmask.registry import registry

        template = self.help or ""
        self.help = template.replace("{names}", self.sep.join(registry(self.kind).names()))
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = template


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


BUILD_HELP = """Build masked and labelled examples from Chinese text into Arrow shards.

INPUT is any number of files, directories or globs: plain text (one document a line, or
blank-line separated with --doc-sep blank), JSONL, Parquet or Arrow, optionally .gz or .zst.
A Hugging Face dataset folder (save_to_disk, every split of a DatasetDict; or a hub download)
is read as its records, not its metadata. With no INPUT the embedded sample corpus (400
People's Daily 1998 paragraphs) is used.

\b
Examples:
  zhmask build-corpus --out out/
  zhmask build-corpus corpus/ --masking wwm --max-seq-length 512 --workers 4 --out out/
  zhmask build-corpus news.jsonl.zst --text-field text --title-field title \\
      --tasks mlm,sop --masking ngram --out out/
  zhmask build-corpus --pipeline macbert wiki/*.txt --out out/
  zhmask build-corpus news.jsonl --text-field text --title-field title \\
      --tasks nsp,sentence_reorder,sentence_distance,ir_relevance --masking knowledge --out out/
  zhmask build-corpus corpus/ --engine ray --workers 8 --out out/      # Ray tasks, local
  zhmask build-corpus corpus/ --engine ray --ray-address HEAD:6379 --workers 64 \\
      --out /shared/nfs/out/                                          # a Ray cluster
  zhmask build-corpus scraped/ --skip-bad-files --on-decode-error skip \\
      --min-cjk-ratio 0.3 --max-doc-mb 1 --out out/ && zhmask verify out/
  zhmask build-corpus saved_dataset/ --text-field content --out out/   # Dataset.save_to_disk
  zhmask build-corpus corpus/ --keep-unmapped --random-tokens vocab --out out/  # [UNK] and draws as BERT's
"""


@cli.command("build-corpus", help=BUILD_HELP, context_settings=CONTEXT)
@click.argument("inputs", nargs=-1)
@click.option("--out", "-o", default="zhmask-out", show_default=True, help="Output directory.")
@click.option("--pipeline", default=None, help="Preset from pipelines/ (bert-wwm, macbert, ernie1, ...) or a TOML file; options given here override it.")
@click.option("--vocab", default=None, help="WordPiece vocab.txt (default: bundled bert-base-chinese).")
@click.option("--tokenizer", default=None, help="A tokenizers tokenizer.json instead of --vocab.")
@click.option("--format", "fmt", default=None, help="auto|text|jsonl|parquet|arrow (default auto, by suffix).")
@click.option("--text-field", default=None, help="JSONL/table column with the text (default text).")
@click.option("--title-field", default=None, help="JSONL/table column with a title (optional).")
@click.option("--source-field", default=None, help="JSONL/table column with the source of a seq2seq pair (--tasks seq2seq).")
@click.option("--target-field", default=None, help="JSONL/table column with the target of a seq2seq pair (--tasks seq2seq).")
@click.option("--doc-sep", default=None, help="Plain text: 'line' (a document a line, default) or 'blank'.")
@click.option("--t2s/--no-t2s", default=None, help="Convert traditional to simplified Chinese (OpenCC).")
@click.option("--keep-unmapped", is_flag=True, default=None, help="Keep characters the vocabulary lacks (they become [UNK]) instead of mapping them to their equivalent in it (“ ” to \", — to -, … to ...; docs/pipeline.md): for continuing a checkpoint trained that way.")
@click.option("--segmenter", default=None, type=PartName("segmenter"), cls=PartsOption, kind="segmenter",
              help="{names} (default rjieba; docs/segmentation.md).")
@click.option("--segmenter-model", default=None, help="Model directory for --segmenter pkuseg.")
@click.option("--user-dict", multiple=True, help="jieba-format user dictionary (word [freq] [tag]); repeatable.")
@click.option("--hmm/--no-hmm", default=None, help="jieba's HMM for unknown words (default off).")
@click.option("--entities", default=None, type=PartName("entities"), cls=PartsOption, kind="entities",
              help="{names} (default lexicon).")
@click.option("--spacy-model", default=None, help="spaCy pipeline for --entities spacy.")
@click.option("--lexicon", "lexicons", multiple=True, help="Entity lexicon (word [freq] TYPE) file or bundled name, replacing the bundled set; repeatable (zhmask build-dict --entities-out).")
@click.option("--max-seq-length", type=int, default=None, help="Tokens per example incl. [CLS]/[SEP] (default 128).")
@click.option("--short-seq-prob", type=float, default=None, help="Probability of a shorter target length (default 0.1).")
@click.option("--packing", default=None, help="document (default): an mlm row holds one document's sentences | full: rows filled across documents, a [SEP] between them (RoBERTa's FULL-SENTENCES; --tasks mlm only).")
@click.option("--plm-units", default=None, help="word (default): --tasks plm keeps a segmented word whole and in order in the factorisation order | token: every token alone (XLNet's original).")
@click.option("--tasks", default=None, cls=PartsOption, kind="tasks", sep=", ",
              help="Comma-separated tasks (default mlm): {names} (docs/labels.md).")
@click.option("--masking", default=None, type=PartName("masking"), cls=PartsOption, kind="masking",
              help="{names} (default none; docs/masking.md).")
@click.option("--masked-lm-prob", type=float, default=None, help="Share of tokens predicted (default 0.15).")
@click.option("--max-predictions-per-seq", type=int, default=None, help="Cap on predicted tokens (default 20).")
@click.option("--mask-ratios", default=None, help="[MASK]/random/keep split, e.g. 0.8,0.1,0.1.")
@click.option("--random-tokens", default=None, help="unigram (default): random replacements drawn from the token distribution of the row's work unit | vocab: from the whole vocabulary, as BERT | row: from the row's own tokens, as builds before unit tables (docs/masking.md).")
@click.option("--dupe-factor", type=int, default=None, help="Differently masked copies of each example (default 1).")
@click.option("--option", "extra_opts", multiple=True, help="Strategy/task knob KEY=VALUE (repeatable).")
@click.option("--min-cjk-ratio", type=float, default=None, help="Reject documents with a smaller share of CJK characters.")
@click.option("--max-doc-mb", type=float, default=None, help="Cut longer lines/records into documents at sentence ends (default 1).")
@click.option("--on-decode-error", default=None, help="replace (default) | skip | fail, for invalid UTF-8.")
@click.option("--skip-bad-files", is_flag=True, default=None, help="Skip unreadable or corrupt files, listing them in the manifest.")
@click.option("--compression", default=None, help="Shard buffer compression: zstd (default, about 3 bytes per token) | lz4 | none (about 10 bytes per token, memory-mapped by datasets' Dataset.from_file).")
@click.option("--shuffle/--no-shuffle", default=None, help="Shuffle the rows across the whole build, in an order fixed by the seed, no two neighbours from one document (default) | keep document order.")
@click.option("--docs-per-shard", type=int, default=None, help="Documents per work unit and shard (default 1000); a unit also closes at 1 MiB of input.")
@click.option("--seed", type=int, default=None, help="Seed of every random choice (default 12345).")
@click.option("--workers", type=int, default=None, help="Worker processes, or concurrent Ray tasks with --engine ray (default 1); output is identical for any count.")
@click.option("--engine", default=None, type=PartName("engine"), cls=PartsOption, kind="engine",
              help="{names} (default local: this machine's processes; ray: Ray tasks, on a local Ray or a cluster, pip install 'zhmask[ray]'); same shards either way.")
@click.option("--ray-address", default=None, help="Ray cluster for --engine ray: HEAD:6379, ray://HEAD:10001 or auto (default: $RAY_ADDRESS, else a local Ray). --out must then be a filesystem every node shares.")
@click.option("--overwrite", is_flag=True, default=None, help="Replace an output directory built with another configuration.")
@click.option("--quiet", "-q", is_flag=True, help="No summary.")
def build_corpus_cmd(inputs: tuple[str, ...], pipeline: str | None, quiet: bool, fmt: str | None,
                     extra_opts: tuple[str, ...], **opts: Any) -> None:
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig

    overrides: dict[str, Any] = {k: v for k, v in opts.items() if v is not None and v != ()}
    if fmt is not None:
        overrides["format"] = fmt
    if inputs:
        overrides["inputs"] = list(inputs)
    if "user_dict" in overrides:
        overrides["user_dict"] = list(overrides["user_dict"])
    if "lexicons" in overrides:
        overrides["lexicons"] = list(overrides["lexicons"])
    if "tasks" in overrides:
        overrides["tasks"] = _csv(overrides["tasks"])
    if "mask_ratios" in overrides:
        try:
            overrides["mask_ratios"] = tuple(float(x) for x in _csv(overrides["mask_ratios"]) or [])
        except ValueError:
            raise ZhmaskError(f"--mask-ratios: expected three numbers like 0.8,0.1,0.1, got {opts['mask_ratios']!r}") from None
    if extra_opts:
        overrides["options"] = parse_options(extra_opts)
    if pipeline:
        cfg = BuildConfig.from_preset(pipeline)
        if "options" in overrides:
            overrides["options"] = {**cfg.options, **overrides["options"]}
        cfg = BuildConfig.from_dict({**cfg.to_dict(), **overrides})
    else:
        cfg = BuildConfig.from_dict(overrides)
    reporter = Reporter(enabled=sys.stderr.isatty() and not quiet)
    with reporter:
        result = build_corpus(cfg, progress=reporter.update)
    if not quiet:
        print_summary(result)
    nothing = result.nothing_written()
    if nothing:  # the manifest is written (it accounts for every rejection), but this is no success
        raise ZhmaskError(nothing)


def parse_options(items: tuple[str, ...]) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ZhmaskError(f"--option expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out


def progress_bar():
    """A transient rich progress bar on stderr: spinner, bar, percentage and time left (when the
    task has a total), description, time elapsed.  Use it only when stderr is a terminal."""
    from rich.console import Console
    from rich.progress import (BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(SpinnerColumn(), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                    TextColumn("{task.description}"), TimeElapsedColumn(), console=Console(stderr=True),
                    transient=True)


class Reporter:
    """Progress on a terminal, silent otherwise: documents/s and MB/s, and a bar with the
    percentage done and the time left when the build knows its input size in advance
    (``input_bytes_total``: uncompressed text or JSONL inputs)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.docs = 0
        self.bytes = 0
        self.total: int | None = None
        self.t0 = time.time()
        self._progress = None
        self._task = None

    def __enter__(self) -> "Reporter":
        if self.enabled:
            self._progress = progress_bar()
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def update(self, stats: dict[str, Any]) -> None:
        if "input_bytes_total" in stats:
            self.total = int(stats["input_bytes_total"])
            if self._progress is not None:
                self._progress.update(self._task, total=max(self.total, 1))
            return
        self.docs += stats.get("documents_read", 0)
        self.bytes += stats.get("bytes", 0)
        if self._progress is not None:
            dt = max(time.time() - self.t0, 1e-6)
            self._progress.update(self._task, completed=min(self.bytes, self.total) if self.total else self.bytes,
                                  description=(f"{self.docs:,} documents  {self.docs / dt:,.0f} docs/s  "
                                               f"{self.bytes / 1e6 / dt:.2f} MB/s"))

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _masking_line(m: dict[str, Any]) -> str:
    """What the masking wrote, in words."""
    cfg = m.get("config") or {}
    from zhmask.masking import STRATEGIES

    name = cfg.get("masking", "none")
    if STRATEGIES.has(name, "no_masks", unknown=False):
        return ("none: no masks written (labels are all -100; mask at load time with "
                "zhmask.masking.dynamic.DynamicMasking, docs/reader.md)")
    c = m.get("masking") or {}
    pred = c.get("predicted_tokens", 0)
    parts = [f"{c[k]:,} {label}" for k, label in (("tokens_mask", "[MASK]"), ("tokens_random", "random"),
                                                   ("tokens_keep", "kept")) if k in c]
    units = f" in {c['units']:,} units" if "units" in c else ""
    return (f"{name}: {pred:,} tokens predicted{units}" + (f" ({', '.join(parts)})" if parts else "")
            + " (all counters: manifest.json masking)")


def print_summary(result) -> None:
    from collections import Counter

    m = result.manifest
    rejected = m["documents_rejected"]
    mb = m["input_bytes"] / 1e6
    dupe = int((m.get("config") or {}).get("dupe_factor", 1) or 1)
    examples = sum(m["examples_by_task"].values())
    rows = (f"{m['examples_written']:,} in {len(m['shards'])} shard(s)"
            + (f": dupe_factor {dupe}, {dupe} {'' if m['config'].get('masking') == 'none' else 'differently masked '}"
               f"copies of each of {examples:,} examples "
               f"= {dupe} x {examples:,} rows" if dupe > 1 else ", one per example"))
    lines = [
        f"zhmask {m['zhmask_version']}: built {result.out_dir} in {result.seconds:.1f}s"
        + (f" ({result.units_skipped} finished shards reused)" if result.units_skipped else ""),
        f"  documents  read {m['documents_read']:,}  written {m['documents_written']:,}  rejected {sum(rejected.values()):,}"
        + (f"  ({', '.join(f'{k} {v}' for k, v in rejected.items())})" if rejected else ""),
        f"  rows       {rows}",
        f"  examples   {examples:,}: " + "  ".join(f"{k} {v:,}" for k, v in sorted(m["examples_by_task"].items())),
        f"  masking    {_masking_line(m)}",
        f"  tokens     {m['tokens_written']:,}  ([UNK] {m['unk_tokens']:,}; "
        f"{m.get('mapped_chars_total', 0):,} characters mapped to their vocabulary equivalent)",
        f"  input      {mb:.2f} MB  {mb / max(result.seconds, 1e-6):.2f} MB/s",
    ]
    if m.get("label_counts"):
        for task, counts in sorted(m["label_counts"].items()):
            lines.append(f"  labels     {task}: " + "  ".join(f"{k}:{v}" for k, v in sorted(counts.items(), key=lambda kv: int(kv[0])))
                         + (" (per example; x dupe_factor in the rows)" if dupe > 1 else ""))
    if m.get("inputs_skipped"):
        why = Counter(e["reason"].split(" (")[0] for e in m["inputs_skipped"])
        lines.append(f"  skipped    {len(m['inputs_skipped'])} file(s) that hold no records: "
                     + ", ".join(f"{k} {v}" for k, v in sorted(why.items())) + " (manifest.json: inputs_skipped)")
    if m.get("bad_files"):
        lines.append(f"  bad files  {len(m['bad_files'])} skipped (listed in manifest.json)")
    if m.get("decode_errors"):
        n_bad = m["events"].get("invalid_utf8_replaced", 0) + m["documents_rejected"].get("invalid_utf8", 0)
        lines.append(f"  invalid UTF-8  {n_bad:,} document(s), first at {m['decode_errors'][0]} (manifest.json: decode_errors)")
    lines.append(f"  manifest   {result.out_dir / 'manifest.json'}")
    click.echo("\n".join(lines))


TRAIN_TOK_HELP = """Train a WordPiece vocabulary (vocab.txt and tokenizer.json) from a corpus.

CJK characters are always single tokens (as in bert-base-chinese); the special tokens [PAD]
[UNK] [CLS] [SEP] [MASK] come first.

\b
Example:
  zhmask train-tokenizer corpus.txt --vocab-size 21128 --out tok/
  zhmask build-corpus corpus.txt --vocab tok/vocab.txt --out out/
"""


@cli.command("train-tokenizer", help=TRAIN_TOK_HELP, context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "-o", required=True, help="Output directory for vocab.txt and tokenizer.json.")
@click.option("--vocab-size", type=int, default=21128, show_default=True)
@click.option("--min-frequency", type=int, default=2, show_default=True)
@click.option("--format", "fmt", default="auto", show_default=True)
@click.option("--text-field", default="text", show_default=True)
def train_tokenizer_cmd(inputs: tuple[str, ...], out: str, vocab_size: int, min_frequency: int, fmt: str,
                        text_field: str) -> None:
    from zhmask.tokenizer_train import train_wordpiece

    if vocab_size < 10:
        raise ZhmaskError(f"--vocab-size must be at least 10, got {vocab_size}")
    path = train_wordpiece(list(inputs), out, vocab_size=vocab_size, min_frequency=min_frequency, fmt=fmt,
                           text_field=text_field)
    click.echo(f"wrote {path}")


# Commands defined in their own modules register themselves on import.
_COMMAND_MODULES = ("zhmask.commands.verify", "zhmask.commands.segmentation", "zhmask.commands.train",
                    "zhmask.commands.finetune", "zhmask.commands.presets", "zhmask.commands.inspect",
                    "zhmask.commands.report", "zhmask.commands.export", "zhmask.commands.span_table",
                    "zhmask.commands.finetune_gen",
                    "zhmask.commands.generate")


def _load_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors with exit code 2."""
    try:
        cli.main(args=argv, prog_name="zhmask", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("zhmask: aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # bare `zhmask`: show the help
        click.echo(exc.ctx.get_help() if exc.ctx is not None else str(exc))
        sys.exit(0)
    except click.ClickException as exc:
        msg = " ".join(exc.format_message().split())
        cmd = f" {exc.ctx.info_name}" if getattr(exc, "ctx", None) is not None and exc.ctx.info_name != "zhmask" else ""
        click.echo(f"zhmask{cmd}: error: {msg}", err=True)
        sys.exit(2)
    except ZhmaskError as exc:
        click.echo(f"zhmask: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("zhmask: interrupted; rerun the same command to resume", err=True)
        sys.exit(130)


def run() -> None:
    """The console script and ``python -m zhmask``: :func:`main`, then, after a success, the exit
    without the interpreter's teardown (freeing jieba's dictionary, numpy's and every module's
    objects one by one costs about 0.07 CPU-s of a small build).  Exit handlers still run and
    the standard streams are flushed; every file zhmask writes is closed (and synced) before
    :func:`main` returns.  Not when another thread runs (a normal exit would wait for it) or a
    profiler or tracer is on (``python -m cProfile -m zhmask``, coverage: they report after
    the program returns)."""
    import atexit
    import threading

    if sys.argv[1:2] == ["build-corpus"]:
        # numpy's OpenBLAS starts a spinning thread per core at import (about 0.14 of the 0.65
        # CPU-s of a 20-document build); a build does no linear algebra, and its parallelism is
        # --workers.  Before the registries import numpy; only for builds (a trainer's or
        # spaCy's BLAS may be OpenBLAS too), and only where the user has not set it.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        # Arrow's buffers from the C allocator that numpy's arrays use, not Arrow's own mimalloc
        # pool: one heap for both, so what a unit frees serves the next unit and the shuffle.
        # A 40 MB build's peak RSS 372 -> 257 MiB, and 6% less CPU (docs/performance.md,
        # "Memory").  Inherited by --workers processes and a local Ray; Ray workers elsewhere
        # make the same call.
        from zhmask.engines.base import arrow_system_pool

        arrow_system_pool()
    main()
    if threading.active_count() > 1 or sys.getprofile() is not None or sys.gettrace() is not None:
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: let the normal exit report it as it always has
        return
    os._exit(0)


if __name__ == "__main__":
    # Run through the imported module: commands in zhmask.commands register on *its* group,
    # not on this ``__main__`` copy (``python -m zhmask.cli verify`` would not find them).
    from zhmask.cli import run as _run

    _run()
