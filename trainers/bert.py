"""BERT-family pretraining: an MLM head over any masking strategy, plus the NSP/SOP head when the
build carries those rows.

BERT, BERT-wwm, RoBERTa(-wwm), MacBERT and ERNIE 1.0 differ only in their data (the presets in
``trainers/presets``). The model is transformers' ``BertForPreTraining`` when the build has NSP or
SOP rows (its 2-class ``seq_relationship`` head serves SOP as well) and ``BertForMaskedLM``
otherwise, so every saved directory is a transformers checkpoint.

The MLM head runs only at the predicted positions (``labels != -100``): the vocabulary projection
of the other ~85% of the tokens is never needed. Rows without a sentence label
(``next_sentence_label`` -100, e.g. the mlm rows next to sop rows) add only their MLM loss.

    python -m trainers.bert --data out/ --out run/ [--config bert-wwm] [--set key=value ...] [--resume]
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainers.common import Config, masked_ce
from zhmask.record import SENTENCE_LABEL

SENTENCE_TASKS = ("nsp", "sop")
TASKS = ("mlm",) + SENTENCE_TASKS


def bert_config(cfg: Config, build) -> Any:
    from transformers import BertConfig

    return BertConfig(vocab_size=build.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                      num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
                      hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                      max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=2,
                      pad_token_id=build.pad_id)


class BertPretrainer(nn.Module):
    """``BertForPreTraining`` (sentence head) or ``BertForMaskedLM`` with the trainer's interface."""

    def __init__(self, cfg: Config, build, tasks: list[str]) -> None:
        super().__init__()
        from transformers import BertForMaskedLM, BertForPreTraining

        self.sentence = any(t in SENTENCE_TASKS for t in tasks)
        hf_cfg = bert_config(cfg, build)
        self.model = BertForPreTraining(hf_cfg) if self.sentence else BertForMaskedLM(hf_cfg)

    def heads(self, batch: dict[str, torch.Tensor]):
        """MLM logits at the predicted positions, their targets, and the sentence logits (or None)."""
        out = self.model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              token_type_ids=batch["token_type_ids"])
        labels = batch["labels"]
        where = labels != -100
        mlm_logits = self.model.cls.predictions(out.last_hidden_state[where])
        sent_logits = self.model.cls.seq_relationship(out.pooler_output) if self.sentence else None
        return mlm_logits, labels[where], sent_logits

    @staticmethod
    def sentence_targets(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        label = batch.get(SENTENCE_LABEL)  # -100 where a row has none (the reader's collator)
        if label is None:
            return torch.full((batch["input_ids"].shape[0],), -100, dtype=torch.long, device=batch["input_ids"].device)
        return label

    def forward(self, batch: dict[str, torch.Tensor]):
        mlm_logits, targets, sent_logits = self.heads(batch)
        mlm_sum, n = masked_ce(mlm_logits, targets)
        loss_mlm = mlm_sum / max(n, 1)
        heads = {"mlm": loss_mlm.detach()}
        loss = loss_mlm
        if sent_logits is not None:
            y = self.sentence_targets(batch)
            keep = y != -100
            s_sum, m = masked_ce(sent_logits[keep], y[keep])
            loss_sent = s_sum / max(m, 1)
            heads["sentence"] = loss_sent.detach()
            loss = loss + loss_sent
        heads["loss"] = loss.detach()
        return loss, heads

    @torch.no_grad()
    def evaluate(self, batch: dict[str, torch.Tensor], acc: dict[str, Any], gen=None) -> None:
        mlm_logits, targets, sent_logits = self.heads(batch)
        add_mlm_counts(acc, mlm_logits, targets)
        if sent_logits is not None:
            y = self.sentence_targets(batch)
            keep = y != -100
            acc["sent_n"] = acc.get("sent_n", 0) + int(keep.sum())
            acc["sent_correct"] = acc.get("sent_correct", 0) + int((sent_logits.argmax(-1)[keep] == y[keep]).sum())

    @staticmethod
    def metrics(acc: dict[str, Any]) -> dict[str, float]:
        out = mlm_metrics(acc)
        if acc.get("sent_n"):
            out["sentence_accuracy"] = acc["sent_correct"] / acc["sent_n"]
            out["sentence_rows"] = acc["sent_n"]
        return out

    def save(self, path: Path, build) -> None:
        path = Path(path)
        self.model.save_pretrained(str(path))
        build.save_tokenizer(path)

    def load(self, path: Path) -> None:
        load_weights(self.model, Path(path))


def add_mlm_counts(acc: dict[str, Any], logits: torch.Tensor, targets: torch.Tensor, prefix: str = "mlm") -> None:
    """Adds the MLM cross-entropy sum, token count and correct predictions of a batch to ``acc``
    (keys ``<prefix>_ce``, ``_n``, ``_correct``; xlnet counts its ``plm`` predictions so)."""
    s, n = masked_ce(logits, targets)
    acc[f"{prefix}_ce"] = acc.get(f"{prefix}_ce", 0.0) + float(s)
    acc[f"{prefix}_n"] = acc.get(f"{prefix}_n", 0) + n
    acc[f"{prefix}_correct"] = acc.get(f"{prefix}_correct", 0) + int((logits.argmax(-1) == targets).sum())


def mlm_metrics(acc: dict[str, Any], prefix: str = "mlm") -> dict[str, float]:
    """``mlm_accuracy``, ``mlm_loss``, ``mlm_perplexity`` and ``mlm_tokens`` (``prefix`` for mlm)
    from :func:`add_mlm_counts` sums."""
    import math

    out: dict[str, float] = {}
    if acc.get(f"{prefix}_n"):
        out[f"{prefix}_accuracy"] = acc[f"{prefix}_correct"] / acc[f"{prefix}_n"]
        out[f"{prefix}_loss"] = acc[f"{prefix}_ce"] / acc[f"{prefix}_n"]
        out[f"{prefix}_perplexity"] = math.exp(min(out[f"{prefix}_loss"], 50.0))
        out[f"{prefix}_tokens"] = acc[f"{prefix}_n"]
    return out


def load_weights(model: nn.Module, path: Path) -> None:
    """Weights of a ``save_pretrained`` dir into ``model`` in place (tied weights may be absent from the file)."""
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith(("decoder.weight", "decoder.bias", "lm_head.weight"))}
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"{path}: weights do not match the model (missing {sorted(set(missing) - tied)[:5]}, "
                           f"unexpected {unexpected[:5]})")


def make_model(cfg: Config, build, tasks: list[str]) -> BertPretrainer:
    return BertPretrainer(cfg, build, tasks)


def main(argv: list[str] | None = None) -> None:
    from zhmask.cli import main as zhmask_main

    zhmask_main(["pretrain", "bert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
