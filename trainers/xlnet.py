"""XLNet pretraining: transformers' ``XLNetLMHeadModel`` (two-stream attention) on a build's ``plm`` rows.

Every row's factorisation order and predicted count come from the shards (``perm_order``,
``num_predict``; see docs/autoregressive.md); the collator turns them into XLNet's
``perm_mask`` [B, T, T] and ``target_mapping`` [B, P, T] with
:func:`zhmask.labels.plm.xlnet_inputs`, so the query stream predicts each of the order's last
positions from the context and the predicted tokens before it in the order. Held-out perplexity
is exp(mean cross-entropy) over the predicted tokens of the validation rows.

The saved config sets ``summary_type = "first"``: the build's rows are ``[CLS] text [SEP]``,
padded on the right, so ``XLNetForSequenceClassification`` (``zhmask finetune``) classifies from
the [CLS] at position 0 rather than from the last position (padding, in a right-padded batch).

    python -m trainers.xlnet --data out/ --out run/ [--config xlnet] [--set key=value ...] [--resume]
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

import torch
from torch import nn

from trainers.bert import BertPretrainer, add_mlm_counts, mlm_metrics
from trainers.common import Config, unmasked

TASKS = ("plm",)


def check_config(cfg: Config) -> Config:
    """XLNet takes no masks: ``dynamic_masking`` auto means none here; a strategy is an error."""
    return unmasked(cfg, "xlnet", "predicts tokens in a permutation order from unmasked inputs")


def xlnet_config(cfg: Config, build) -> Any:
    from transformers import XLNetConfig

    return XLNetConfig(vocab_size=build.vocab_size, d_model=cfg.hidden_size, n_layer=cfg.num_layers,
                       n_head=cfg.num_heads, d_inner=cfg.intermediate_size, dropout=cfg.dropout,
                       attn_type="bi", mem_len=None, use_mems_eval=False, use_mems_train=False,
                       summary_type="first", pad_token_id=build.pad_id, bos_token_id=build.cls_id,
                       eos_token_id=build.sep_id)


class PlmCollator:
    """``collate_fn`` of XLNet batches from ``plm`` rows (:func:`zhmask.labels.plm.xlnet_inputs`)."""

    def __init__(self, build, cfg: Config) -> None:
        self.pad_id = build.pad_id
        self.multiple = cfg.pad_to_multiple_of

    def set_epoch(self, epoch: int) -> None:   # the orders are the shards': nothing changes with the epoch
        pass

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from zhmask.labels.plm import xlnet_inputs

        return xlnet_inputs(rows, self.pad_id, self.multiple)


def make_collator(build, cfg: Config) -> PlmCollator:
    return PlmCollator(build, cfg)


class XLNetPretrainer(nn.Module):
    """``XLNetLMHeadModel`` with the trainer's interface (trainers.common)."""

    def __init__(self, cfg: Config, build, tasks: list[str]) -> None:
        super().__init__()
        from transformers import XLNetLMHeadModel

        self.model = XLNetLMHeadModel(xlnet_config(cfg, build))

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, P, V]: the query stream's logits at each row's predicted positions."""
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          perm_mask=batch["perm_mask"], target_mapping=batch["target_mapping"],
                          use_mems=False).logits

    @staticmethod
    def predicted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = labels != -100
        return logits[keep], labels[keep]

    def forward(self, batch: dict[str, torch.Tensor]):
        from trainers.common import masked_ce

        lg, y = self.predicted(self.logits(batch), batch["labels"])
        s, n = masked_ce(lg, y)
        loss = s / max(n, 1)
        return loss, {"plm": loss.detach(), "loss": loss.detach()}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, torch.Tensor], acc: dict[str, Any], gen=None) -> None:
        add_mlm_counts(acc, *self.predicted(self.logits(batch), batch["labels"]), prefix="plm")

    @staticmethod
    def metrics(acc: dict[str, Any]) -> dict[str, float]:
        """``plm_loss``, ``plm_perplexity``, ``plm_accuracy`` and ``plm_tokens`` over the predicted tokens."""
        return mlm_metrics(acc, prefix="plm")

    save = BertPretrainer.save   # save_pretrained and the build's tokenizer
    load = BertPretrainer.load   # weights back for --resume


def make_model(cfg: Config, build, tasks: list[str]) -> XLNetPretrainer:
    return XLNetPretrainer(cfg, build, tasks)


def main(argv: list[str] | None = None) -> None:
    from zhmask.cli import main as zhmask_main

    zhmask_main(["pretrain", "xlnet", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
