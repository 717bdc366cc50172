"""``zhmask finetune-gen``: sequence-to-sequence fine-tuning with ROUGE on dev (``trainers.finetune_gen``)."""
from __future__ import annotations

import click

from zhmask.cli import CONTEXT, cli
from zhmask.errors import ZhmaskError

FINETUNE_GEN_HELP = """Fine-tune CHECKPOINT to generate --target-field from --source-field; report ROUGE.

CHECKPOINT is a transformers BERT directory with its vocab.txt (a `zhmask pretrain ernie_gen`
run's final/, or any BERT checkpoint). --train and --dev are JSONL/text inputs (built here into
seq2seq shards with the checkpoint's vocabulary, under OUT/train-data and OUT/dev-data) or
existing `--tasks seq2seq` builds. Training uses ERNIE-GEN's multi-flow attention (word-by-word
and span-by-span flows, noise as stored); dev sources are decoded by infilling (greedy, or
--beam N with --length-penalty) and scored with character-level ROUGE-1/2/L F1 (rouge-score).
--from-scratch: the same architecture from random initialisation (the control). OUT gets
results.json (scores and decoded examples) and run/ (the training log and final model).
Settings (--set key=value): max_steps, batch_size, lr, seed, gen_flows, span_weight, gen_noise...

\b
Example:
  zhmask finetune-gen run-g/final --train news_train.jsonl --dev news_dev.jsonl \\
      --source-field text --target-field title --out ft-gen/ --set max_steps=2000 --beam 4
  zhmask finetune-gen run-g/final --train news_train.jsonl --dev news_dev.jsonl \\
      --source-field text --target-field title --out ft-gen-control/ --from-scratch
"""


@cli.command("finetune-gen", help=FINETUNE_GEN_HELP, context_settings=CONTEXT)
@click.argument("checkpoint")
@click.option("--train", "train_path", required=True, help="Training pairs: JSONL/text input or a seq2seq build.")
@click.option("--dev", "dev_path", required=True, help="Dev pairs: JSONL/text input or a seq2seq build.")
@click.option("--source-field", default="text", show_default=True, help="JSONL field of the source text.")
@click.option("--target-field", default="title", show_default=True, help="JSONL field of the target text.")
@click.option("--out", "-o", required=True, help="Output directory (results.json, run/, the builds).")
@click.option("--from-scratch", is_flag=True, help="Random initialisation with the same architecture (the control).")
@click.option("--beam", "beam_size", default=1, show_default=True, type=click.IntRange(1, 64), help="Beam width (1: greedy).")
@click.option("--length-penalty", default=1.0, show_default=True, help="Beam score: log p / length ** this.")
@click.option("--max-length", default=32, show_default=True, type=click.IntRange(1, 512), help="Most tokens generated.")
@click.option("--min-length", default=1, show_default=True, type=click.IntRange(0, 512),
              help="No [SEP] before this many tokens.")
@click.option("--max-seq-length", default=256, show_default=True, type=click.IntRange(16, 4096),
              help="Tokens of a source + target row (builds made here).")
@click.option("--max-target-length", default=32, show_default=True, type=click.IntRange(1, 512),
              help="Target tokens kept (builds made here).")
@click.option("--dev-limit", default=0, show_default=True, type=click.IntRange(0), help="Decode only the first N dev pairs (0: all).")
@click.option("--examples", default=5, show_default=True, type=click.IntRange(0), help="Decoded examples kept in results.json.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one training setting; repeatable.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def finetune_gen_cmd(checkpoint: str, train_path: str, dev_path: str, source_field: str, target_field: str,
                     out: str, from_scratch: bool, beam_size: int, length_penalty: float, max_length: int, min_length: int,
                     max_seq_length: int, max_target_length: int, dev_limit: int, examples: int,
                     sets: tuple[str, ...], quiet: bool) -> None:
    import json

    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from trainers.finetune_gen import ROUGE_KEYS, finetune_gen
    except ModuleNotFoundError as exc:
        raise ZhmaskError(f"finetune-gen needs torch and transformers ({exc.name} missing): "
                          "pip install 'zhmask[train,hf,gen]'") from None
    result = finetune_gen(checkpoint, train_path, dev_path, out, source_field=source_field, target_field=target_field,
                          sets=sets, from_scratch=from_scratch, beam_size=beam_size, length_penalty=length_penalty,
                          max_length=max_length, min_length=min_length, max_seq_length=max_seq_length, max_target_length=max_target_length,
                          dev_limit=dev_limit, examples=examples, quiet=quiet)
    click.echo(json.dumps({k: result[k] for k in (*ROUGE_KEYS, "train_examples", "dev_examples", "steps", "seconds",
                                                  "from_scratch", "examples")}, ensure_ascii=False))
