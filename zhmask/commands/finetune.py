"""``zhmask finetune``: sequence classification on top of a pretrained checkpoint (``trainers.finetune``)."""
from __future__ import annotations

import click

from zhmask.cli import CONTEXT, cli
from zhmask.errors import ZhmaskError

FINETUNE_HELP = """Fine-tune CHECKPOINT for text classification; report dev accuracy and macro-F1.

CHECKPOINT is a transformers directory with its vocabulary: a pretrain run's final/ (or the run
directory itself; for electra the discriminator is used) or any BERT/ELECTRA checkpoint.
--train and --dev take a label<TAB>text TSV or a JSONL with label and text fields; without
--dev, 10% of the training texts are held out by a stable hash (--set dev_fraction=0.2).
--from-scratch trains the same architecture from random initialisation under the same
budget: the control that shows what pretraining taught. Results go to OUT/results.json and
standard output as JSON. Settings (--set key=value): epochs, max_steps, batch_size, lr,
max_length, seed, train_limit, text_field, label_field, title_field, train_split, dev_split.

\b
Example:
  zhmask finetune run/final --train sentiment_train.tsv --out ft/
  zhmask finetune run/final --train inews_docs.jsonl --dev inews_docs.jsonl --out ft-inews/ \\
      --set train_split=train --set dev_split=dev --set title_field=title
  zhmask finetune run/final --train train.tsv --dev dev.tsv --out ft-control/ --from-scratch
"""


@cli.command("finetune", help=FINETUNE_HELP, context_settings=CONTEXT)
@click.argument("checkpoint")
@click.option("--train", "train_path", required=True, help="Training examples: TSV label<TAB>text or JSONL.")
@click.option("--dev", "dev_path", default=None, help="Dev examples (default: held out from --train by hash).")
@click.option("--out", "-o", required=True, help="Output directory (results.json).")
@click.option("--from-scratch", is_flag=True, help="Random initialisation with the same architecture (the control).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one setting; repeatable.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def finetune_cmd(checkpoint: str, train_path: str, dev_path: str | None, out: str, from_scratch: bool,
                 sets: tuple[str, ...], quiet: bool) -> None:
    import json

    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from trainers.finetune import finetune, make_finetune_config
    except ModuleNotFoundError as exc:
        raise ZhmaskError(f"finetune needs torch and transformers ({exc.name} missing): "
                          "pip install 'zhmask[train,hf]'") from None
    cfg = make_finetune_config(sets)
    result = finetune(checkpoint, train_path, dev_path, out, cfg, from_scratch=from_scratch, quiet=quiet)
    click.echo(json.dumps({k: result[k] for k in ("accuracy", "macro_f1", "train_examples", "dev_examples",
                                                  "steps", "seconds", "from_scratch")}))
