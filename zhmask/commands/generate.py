"""``zhmask generate CHECKPOINT --prompt TEXT``: sample a continuation from a GPT checkpoint, for a quick look."""
from __future__ import annotations

import re
from pathlib import Path

import click

from zhmask.cli import CONTEXT, cli
from zhmask.errors import ZhmaskError

GENERATE_HELP = """Sample a continuation of --prompt from a GPT checkpoint (zhmask pretrain gpt).

CHECKPOINT is a pretrain run's final/ (or the run directory itself) or a checkpoint-<step>/
directory: a transformers GPT-2 directory with the build's vocabulary. The prompt is read as the
start of a document (no [CLS]); sampling (transformers' generate with do_sample) stops after
--max-new-tokens tokens or at the [SEP] that ends a document. --temperature scales the logits,
--top-k keeps the k likeliest tokens (0: all), --top-p the smallest set whose probability reaches
p (1.0: all); --seed makes the draw repeatable. Prints the prompt and its continuation.

\b
Example:
  zhmask pretrain gpt --data out-gpt/ --out run-gpt/ --config gpt
  zhmask generate run-gpt/final --prompt 今天天气 --max-new-tokens 40 --temperature 0.8 --top-k 50 --top-p 0.95 --seed 1
"""

_CJK_GAP = re.compile(r"(?<=[^\x00-\x7f]) (?=[^\x00-\x7f])|(?<=[^\x00-\x7f]) (?=[\x00-\x7f])|(?<=[\x00-\x7f]) (?=[^\x00-\x7f])")


def gpt_dir(checkpoint: str | Path) -> Path:
    """The GPT-2 checkpoint directory of ``checkpoint`` (a run directory means its final/)."""
    import json

    p = Path(checkpoint)
    if not p.exists():
        raise ZhmaskError(f"{checkpoint}: no such checkpoint directory")
    if not (p / "config.json").is_file() and (p / "final" / "config.json").is_file():
        p = p / "final"
    if not (p / "config.json").is_file():
        raise ZhmaskError(f"{checkpoint}: not a transformers checkpoint (no config.json)")
    try:
        kind = json.loads((p / "config.json").read_text(encoding="utf-8")).get("model_type")
    except ValueError:
        raise ZhmaskError(f"{p / 'config.json'}: not JSON") from None
    if kind != "gpt2":
        raise ZhmaskError(f"{checkpoint}: a {kind} checkpoint; generate samples from GPT-2 ones (zhmask pretrain gpt)")
    if not (p / "vocab.txt").is_file():
        raise ZhmaskError(f"{checkpoint}: no vocab.txt (a zhmask checkpoint carries the build's vocabulary)")
    return p


def generate_text(checkpoint: str | Path, prompt: str, max_new_tokens: int = 50, temperature: float = 1.0,
                  top_k: int = 50, top_p: float = 1.0, seed: int = 0) -> str:
    """The prompt and a sampled continuation (spaces the tokenizer puts between CJK characters removed)."""
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    if not prompt.strip():
        raise ZhmaskError("--prompt is empty: give the start of a text to continue")
    if max_new_tokens < 1:
        raise ZhmaskError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if temperature <= 0:
        raise ZhmaskError(f"--temperature must be above 0, got {temperature}")
    if top_k < 0:
        raise ZhmaskError(f"--top-k must be 0 (off) or more, got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ZhmaskError(f"--top-p must be in (0, 1], got {top_p}")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    src = gpt_dir(checkpoint)
    tok = AutoTokenizer.from_pretrained(str(src))
    model = GPT2LMHeadModel.from_pretrained(str(src)).eval()
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    if ids.shape[1] == 0:
        raise ZhmaskError("--prompt has no token the vocabulary knows")
    room = model.config.n_positions - ids.shape[1]
    if room < 1:
        raise ZhmaskError(f"--prompt has {ids.shape[1]} tokens: the model reads at most {model.config.n_positions}")
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=temperature,
                             top_k=top_k, top_p=top_p, max_new_tokens=min(max_new_tokens, room),
                             eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0], skip_special_tokens=True, clean_up_tokenization_spaces=True)
    return _CJK_GAP.sub("", text)


@cli.command("generate", help=GENERATE_HELP, context_settings=CONTEXT)
@click.argument("checkpoint")
@click.option("--prompt", required=True, help="The start of the text to continue.")
@click.option("--max-new-tokens", default=50, show_default=True, type=int, help="Tokens to sample at most.")
@click.option("--temperature", default=1.0, show_default=True, type=float, help="Logits divided by this (> 0).")
@click.option("--top-k", default=50, show_default=True, type=int, help="Sample from the k likeliest tokens (0: all).")
@click.option("--top-p", default=1.0, show_default=True, type=float, help="Nucleus: the likeliest tokens up to this mass.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the draw.")
def generate_cmd(checkpoint: str, prompt: str, max_new_tokens: int, temperature: float, top_k: int, top_p: float,
                 seed: int) -> None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ZhmaskError(f"generate needs torch and transformers ({exc.name} missing): "
                          "pip install 'zhmask[train,hf]'") from None
    click.echo(generate_text(checkpoint, prompt, max_new_tokens, temperature, top_k, top_p, seed))
