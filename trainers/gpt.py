"""GPT pretraining: transformers' ``GPT2LMHeadModel`` (decoder-only) on a build's ``clm`` rows.

Rows pack several documents (``d1 [SEP] d2 [SEP] ...``, see docs/autoregressive.md); the
trainer resets attention at every document boundary the row's ``doc_bounds`` records: a token
attends only to the earlier tokens of its own document (a block-diagonal causal mask, passed to
the model as a 4D boolean mask) and position ids restart at 0 with every document, so a
document reads as it would alone and nothing of the previous document reaches its predictions.
The labels are the shards' (the input ids, -100 where no prediction is made); the model shifts
them. Held-out perplexity is exp(mean cross-entropy) over the predicted tokens of the
validation rows.

    python -m trainers.gpt --data out/ --out run/ [--config gpt] [--set key=value ...] [--resume]
"""
from __future__ import annotations

import math
import sys
from typing import Any

import torch
from torch import nn

from trainers.bert import BertPretrainer
from trainers.common import Config, unmasked

TASKS = ("clm",)


def check_config(cfg: Config) -> Config:
    """GPT takes no masks: ``dynamic_masking`` auto means none here; a strategy is an error."""
    return unmasked(cfg, "gpt", "predicts every token from the ones before it")


def gpt_config(cfg: Config, build) -> Any:
    from transformers import GPT2Config

    return GPT2Config(vocab_size=build.vocab_size, n_positions=cfg.max_position_embeddings, n_embd=cfg.hidden_size,
                      n_layer=cfg.num_layers, n_head=cfg.num_heads, n_inner=cfg.intermediate_size,
                      resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
                      bos_token_id=build.sep_id, eos_token_id=build.sep_id, pad_token_id=build.pad_id,
                      attn_implementation="sdpa")


def document_attention(doc_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From ``doc_index`` [B, T] (each token's document part in its row, -1 on padding): the 4D
    boolean attention mask [B, 1, T, T] (True: query i may attend key j: j <= i in the same part;
    a padding position attends to itself only) and position ids [B, T] restarting at 0 with
    every part."""
    B, T = doc_index.shape
    ar = torch.arange(T, device=doc_index.device)
    causal = ar[None, :] <= ar[:, None]                                   # [T(query), T(key)]
    same = doc_index[:, :, None] == doc_index[:, None, :]                 # [B, T, T]
    real = (doc_index >= 0)[:, None, :]
    mask = causal[None] & same & real
    mask |= torch.eye(T, dtype=torch.bool, device=doc_index.device)[None]
    new = torch.ones_like(doc_index, dtype=torch.bool)
    new[:, 1:] = doc_index[:, 1:] != doc_index[:, :-1]
    start = torch.cummax(torch.where(new, ar[None, :].expand(B, T), torch.zeros_like(doc_index)), dim=1).values
    pos = torch.where(doc_index >= 0, ar[None, :] - start, torch.zeros_like(doc_index))
    return mask[:, None], pos


class GPTPretrainer(nn.Module):
    """``GPT2LMHeadModel`` with the trainer's interface (trainers.common)."""

    def __init__(self, cfg: Config, build, tasks: list[str]) -> None:
        super().__init__()
        from transformers import GPT2LMHeadModel

        self.model = GPT2LMHeadModel(gpt_config(cfg, build))

    def predicted(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at the positions that predict a label (the next token's), and those labels.

        The LM head runs on those positions' hidden states only, not on every position followed by
        a copy of the selected rows: the logits ([positions, vocabulary], 21,128 columns with the
        bundled vocabulary) are the largest tensors of a step, so this halves the memory a step
        moves and skips the head on the last position of every row."""
        doc = batch.get("doc_index")
        if doc is None:   # rows without doc_bounds: one document per row, padding masked
            doc = torch.where(batch["attention_mask"].bool(), 0, -1)
        mask, pos = document_attention(doc)
        h = self.model.transformer(input_ids=batch["input_ids"], attention_mask=mask, position_ids=pos).last_hidden_state
        y = batch["labels"][:, 1:]
        keep = y != -100
        return self.model.lm_head(h[:, :-1][keep]), y[keep]

    def forward(self, batch: dict[str, torch.Tensor]):
        from trainers.common import masked_ce

        lg, y = self.predicted(batch)
        s, n = masked_ce(lg, y)
        loss = s / max(n, 1)
        return loss, {"clm": loss.detach(), "loss": loss.detach()}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, torch.Tensor], acc: dict[str, Any], gen=None) -> None:
        from trainers.common import masked_ce

        lg, y = self.predicted(batch)
        s, n = masked_ce(lg, y)
        acc["clm_ce"] = acc.get("clm_ce", 0.0) + float(s)
        acc["clm_n"] = acc.get("clm_n", 0) + n
        acc["clm_correct"] = acc.get("clm_correct", 0) + int((lg.argmax(-1) == y).sum())

    @staticmethod
    def metrics(acc: dict[str, Any]) -> dict[str, float]:
        if not acc.get("clm_n"):
            return {}
        loss = acc["clm_ce"] / acc["clm_n"]
        return {"clm_loss": loss, "clm_perplexity": math.exp(min(loss, 50.0)),
                "clm_accuracy": acc["clm_correct"] / acc["clm_n"], "clm_tokens": acc["clm_n"]}

    save = BertPretrainer.save   # save_pretrained and the build's tokenizer
    load = BertPretrainer.load   # weights back for --resume


def make_model(cfg: Config, build, tasks: list[str]) -> GPTPretrainer:
    return GPTPretrainer(cfg, build, tasks)


def main(argv: list[str] | None = None) -> None:
    from zhmask.cli import main as zhmask_main

    zhmask_main(["pretrain", "gpt", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
