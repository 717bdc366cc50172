"""``zhmask pretrain bert|electra|ernie2|ernie_gen|gpt|xlnet``: pretrain a model from a build's shards (the ``trainers`` package).

torch and transformers are imported only when the command runs, so ``zhmask --help`` and builds
stay fast.
"""
from __future__ import annotations

import click

from zhmask.cli import CONTEXT, cli
from zhmask.errors import ZhmaskError

PRETRAIN_HELP = """Pretrain BERT (MLM, plus NSP/SOP when the build has them), ELECTRA, ERNIE 2.0, ERNIE-GEN, GPT or XLNet on a build.

The masks come from the shards (the build's --masking), or are drawn at load time with
--set dynamic_masking=wwm (RoBERTa). --config takes a preset from trainers/presets (bert,
bert-wwm, roberta, macbert, ernie1, electra) or a TOML file; --set key=value overrides one
setting (see trainers/README.md for all of them). The run directory gets log.jsonl,
checkpoint-<step>/ and final/ (transformers save_pretrained directories with the vocabulary;
electra: final/discriminator and final/generator; ernie2: the encoder plus ernie2_heads.pt, the
task embedding and heads). ernie2 trains in stages from --plan (a name in trainers/plans:
ernie2_stages, the default; ernie2_multitask; ernie2_mlm; or a TOML file; docs/ernie2.md).
ernie_gen trains the multi-flow generation model on the rows of --tasks ernie_gen (or seq2seq):
--set gen_flows=word (ablation), span_weight, gen_noise (shards, dynamic, none), gen_noise_rate
(docs/ernie_gen.md, "Training and decoding"). gpt trains GPT-2 on --tasks clm rows, attention
reset at document boundaries; xlnet trains XLNet (two-stream attention) on --tasks plm rows, the
factorisation orders from the shards (docs/autoregressive.md). Under torchrun every process trains on its
share of each epoch (DDP).

\b
Example:
  zhmask build-corpus --pipeline bert corpus.txt --out out/
  zhmask pretrain bert --data out/ --out run/ --config bert --set max_steps=1000
  zhmask pretrain bert --data out/ --out run/ --resume        # continue from the last checkpoint
  zhmask build-corpus --pipeline electra --max-seq-length 128 corpus.txt --out out-e/
  zhmask pretrain electra --data out-e/ --out run-e/ --config electra
  zhmask build-corpus --tasks clm --max-seq-length 256 corpus.txt --out out-gpt/
  zhmask pretrain gpt --data out-gpt/ --out run-gpt/ --config gpt
  zhmask build-corpus --pipeline xlnet corpus.txt --out out-x/
  zhmask pretrain xlnet --data out-x/ --out run-x/ --config xlnet
  torchrun --nproc_per_node 2 -m trainers.bert --data out/ --out run/
  zhmask build-corpus --pipeline ernie2 --max-seq-length 128 news.jsonl --title-field title --out out-2/
  zhmask pretrain ernie2 --data out-2/ --out run-2/ --plan ernie2_stages --set max_steps=2000
  zhmask build-corpus --pipeline ernie-gen corpus.txt --out out-g/
  zhmask pretrain ernie_gen --data out-g/ --out run-g/ --set gen_noise=dynamic
"""


@cli.command("pretrain", help=PRETRAIN_HELP, context_settings=CONTEXT)
@click.argument("family", type=click.Choice(["bert", "electra", "ernie2", "ernie_gen", "gpt", "xlnet"]))
@click.option("--data", required=True, help="A build's output directory (zhmask build-corpus --out).")
@click.option("--out", "-o", required=True, help="Run directory: log, checkpoints, final model.")
@click.option("--config", "config_file", default=None, help="Preset name (trainers/presets) or TOML file.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one setting; repeatable.")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out.")
@click.option("--plan", default=None, help="ernie2: stage plan, a name in trainers/plans or a TOML file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def pretrain_cmd(family: str, data: str, out: str, config_file: str | None, sets: tuple[str, ...],
                 resume: bool, plan: str | None, quiet: bool) -> None:
    import json
    from pathlib import Path

    try:
        from trainers.common import make_config
    except ModuleNotFoundError as exc:
        raise ZhmaskError(f"pretrain needs the trainers package and torch ({exc.name} missing): "
                          "pip install 'zhmask[train,hf]'") from None
    base = None
    saved = Path(out) / "train_config.json"
    if resume and saved.is_file():
        from trainers.common import Config
        import dataclasses

        names = {f.name for f in dataclasses.fields(Config)}
        base = {k: v for k, v in json.loads(saved.read_text(encoding="utf-8")).items() if k in names}
        base["stop_at_step"] = 0
    cfg = make_config(config_file, sets, base=base)
    if not (Path(data) / "manifest.json").is_file():
        raise ZhmaskError(f"--data {data}: no manifest.json (not a zhmask build-corpus output)")
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ZhmaskError(f"pretrain needs torch and transformers ({exc.name} missing): "
                          "pip install 'zhmask[train,hf]'") from None
    from trainers.common import train

    if plan is not None and family != "ernie2":
        raise ZhmaskError(f"--plan is for ernie2, not {family}")
    if family == "ernie2":
        from trainers.ernie2 import TASKS, Ernie2Plan, resolve_plan

        stages = Ernie2Plan(resolve_plan(plan, out, resume), cfg)
        result = train(family, stages.make_model, data, out, cfg, resume=resume, quiet=quiet, usable_tasks=TASKS,
                       plan=stages)
        if result.metrics and not quiet:
            click.echo(json.dumps(result.metrics))
        return
    make_collator = None
    if family == "bert":
        from trainers.bert import TASKS, make_model
    elif family == "electra":
        from trainers.electra import TASKS, make_model
    elif family == "gpt":
        from trainers.gpt import TASKS, check_config, make_model

        cfg = check_config(cfg)
    elif family == "xlnet":
        from trainers.xlnet import TASKS, check_config, make_collator, make_model

        cfg = check_config(cfg)
    else:
        from trainers.ernie_gen import TASKS, make_collator, make_model
    result = train(family, make_model, data, out, cfg, resume=resume, quiet=quiet, usable_tasks=TASKS,
                   make_collator=make_collator)
    if result.metrics and not quiet:
        click.echo(json.dumps(result.metrics))
