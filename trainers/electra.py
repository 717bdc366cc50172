"""ELECTRA pretraining: a small generator proposes replacements, the discriminator spots them.

* generator: transformers' ``ElectraForMaskedLM`` with hidden size ``generator_fraction`` (1/4 by
  default) of the discriminator's; its embeddings are the discriminator's ``ElectraEmbeddings``
  module itself (token, position and segment embeddings shared; ``embedding_size`` equals the
  discriminator's hidden size and the generator's ``embeddings_project`` maps it down);
* at the masked positions of the shards (``labels != -100``: so whole-word ELECTRA is a build with
  ``--masking wwm``) the generator's softmax is sampled under ``no_grad``: no gradient through the
  sample;
* discriminator: ``ElectraForPreTraining``, replaced-token detection over every real token; a sample
  equal to the original token counts as not replaced;
* loss = generator MLM loss + ``disc_weight`` (50, as in the paper) x discriminator loss.

Saved as ``RUN/final/discriminator`` (the downstream model) and ``RUN/final/generator``, each a
transformers directory with the vocabulary.

    python -m trainers.electra --data out/ --out run/ [--config electra] [--set key=value ...] [--resume]
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainers.bert import add_mlm_counts, load_weights, mlm_metrics
from trainers.common import Config, masked_ce, roc_auc

TASKS = ("mlm", "nsp", "sop")   # any row with masked tokens; sentence labels are not used


def electra_configs(cfg: Config, build):
    from transformers import ElectraConfig

    common = dict(vocab_size=build.vocab_size, embedding_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                  hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                  max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=2, pad_token_id=build.pad_id)
    disc = ElectraConfig(hidden_size=cfg.hidden_size, num_attention_heads=cfg.num_heads,
                         intermediate_size=cfg.intermediate_size, **common)
    g_hidden = max(1, int(round(cfg.hidden_size * cfg.generator_fraction)))
    g_heads = max(1, int(round(cfg.num_heads * cfg.generator_fraction)))
    while g_hidden % g_heads:
        g_heads -= 1
    gen = ElectraConfig(hidden_size=g_hidden, num_attention_heads=g_heads,
                        intermediate_size=max(1, int(round(cfg.intermediate_size * cfg.generator_fraction))), **common)
    return gen, disc


class ElectraPretrainer(nn.Module):
    def __init__(self, cfg: Config, build, tasks: list[str]) -> None:
        super().__init__()
        from transformers import ElectraForMaskedLM, ElectraForPreTraining

        gen_cfg, disc_cfg = electra_configs(cfg, build)
        self.discriminator = ElectraForPreTraining(disc_cfg)
        self.generator = ElectraForMaskedLM(gen_cfg)
        self.disc_weight = cfg.disc_weight
        self.special = torch.tensor(sorted({build.cls_id, build.sep_id, build.pad_id}))
        self.tie()

    def tie(self) -> None:
        """The generator uses the discriminator's embedding module; its output layer is the word embedding."""
        emb = self.discriminator.electra.embeddings
        self.generator.electra.embeddings = emb
        self.generator.generator_lm_head.weight = emb.word_embeddings.weight

    def generate(self, batch: dict[str, torch.Tensor], gen: torch.Generator | None = None):
        """Generator logits at the masked positions, their targets, the corrupted input and what was replaced."""
        ids, labels = batch["input_ids"], batch["labels"]
        where = labels != -100
        h = self.generator.electra(input_ids=ids, attention_mask=batch["attention_mask"],
                                   token_type_ids=batch["token_type_ids"]).last_hidden_state
        logits = self.generator.generator_lm_head(self.generator.generator_predictions(h[where]))
        targets = labels[where]
        with torch.no_grad():
            probs = torch.softmax(logits.detach().float(), dim=-1)
            sampled = torch.multinomial(probs, 1, generator=gen).squeeze(-1) if len(probs) else targets
            fake = ids.clone()
            fake[where] = sampled
            original = torch.where(where, labels, ids)
            replaced = (fake != original) & batch["attention_mask"].bool()
        return logits, targets, fake, replaced

    def discriminate(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> torch.Tensor:
        return self.discriminator(input_ids=fake, attention_mask=batch["attention_mask"],
                                  token_type_ids=batch["token_type_ids"]).logits

    def forward(self, batch: dict[str, torch.Tensor]):
        logits, targets, fake, replaced = self.generate(batch)
        g_sum, n = masked_ce(logits, targets)
        loss_gen = g_sum / max(n, 1)
        d_logits = self.discriminate(batch, fake)
        real = batch["attention_mask"].bool()
        loss_disc = F.binary_cross_entropy_with_logits(d_logits[real].float(), replaced[real].float())
        loss = loss_gen + self.disc_weight * loss_disc
        return loss, {"generator": loss_gen.detach(), "discriminator": loss_disc.detach(), "loss": loss.detach()}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, torch.Tensor], acc: dict[str, Any], gen=None) -> None:
        logits, targets, fake, replaced = self.generate(batch, gen)
        add_mlm_counts(acc, logits, targets)
        d_logits = self.discriminate(batch, fake).float()
        real = batch["attention_mask"].bool() & ~torch.isin(batch["input_ids"], self.special.to(fake.device))
        acc.setdefault("scores", []).append(d_logits[real].cpu())
        acc.setdefault("replaced", []).append(replaced[real].cpu())

    @staticmethod
    def metrics(acc: dict[str, Any]) -> dict[str, float]:
        out = {f"generator_{k}": v for k, v in mlm_metrics(acc).items() if k != "mlm_tokens"}
        if acc.get("scores"):
            s = torch.cat(acc["scores"]).numpy()
            y = torch.cat(acc["replaced"]).numpy()
            pred = s > 0
            out["replaced_accuracy"] = float((pred == y).mean())           # every real token
            out["replaced_recall"] = float(pred[y].mean()) if y.any() else float("nan")
            out["replaced_auc"] = roc_auc(s, y)
            out["replaced_share"] = float(y.mean())
        return out

    def save(self, path: Path, build) -> None:
        path = Path(path)
        for name, model in (("discriminator", self.discriminator), ("generator", self.generator)):
            model.save_pretrained(str(path / name))
            build.save_tokenizer(path / name)

    def load(self, path: Path) -> None:
        load_weights(self.discriminator, Path(path) / "discriminator")
        load_weights(self.generator, Path(path) / "generator")
        self.tie()


def make_model(cfg: Config, build, tasks: list[str]) -> ElectraPretrainer:
    return ElectraPretrainer(cfg, build, tasks)


def main(argv: list[str] | None = None) -> None:
    from zhmask.cli import main as zhmask_main

    zhmask_main(["pretrain", "electra", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
