"""Sequence-to-sequence fine-tuning of an ERNIE-GEN (or any BERT) checkpoint, scored by ROUGE.

The training and dev pairs are the rows of ``zhmask build-corpus --tasks seq2seq`` (built here
from a JSONL/text file with the checkpoint's own vocabulary, or given as a build directory).
Training is ``trainers.common.train`` with the multi-flow model of ``trainers.ernie_gen`` (both
generation flows over the target's word spans, noise as stored in the shards); then every dev
source is decoded (greedy or beam search, :func:`trainers.ernie_gen.generate`) and scored against
its target with character-level ROUGE-1, ROUGE-2 and ROUGE-L F1 by Google's ``rouge-score``
package (tokenizer: one token per character, spaces dropped). ``--from-scratch`` trains the same
architecture from random initialisation: the control.

    python -m trainers.finetune_gen run/final --train train.jsonl --dev dev.jsonl --out ft/
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from zhmask.errors import ZhmaskError

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")


class CharTokenizer:
    """A ``rouge_score`` tokenizer: every non-space character is a token (character-level ROUGE)."""

    def tokenize(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]


def rouge(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Mean character-level ROUGE-1/2/L F1 (x100) of ``hypotheses`` against ``references`` (rouge-score)."""
    try:
        from rouge_score import rouge_scorer
    except ModuleNotFoundError:
        raise ZhmaskError("finetune-gen needs the rouge-score package: pip install 'zhmask[gen]'") from None
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=CharTokenizer())
    sums = dict.fromkeys(ROUGE_KEYS, 0.0)
    for h, r in zip(hypotheses, references):
        s = scorer.score(r, h)
        for k in ROUGE_KEYS:
            sums[k] += s[k].fmeasure
    n = max(1, len(hypotheses))
    return {k: 100.0 * v / n for k, v in sums.items()}


def ids_text(ids, vocab: list[str], specials: set[int]) -> str:
    """Token ids as text: specials dropped, word pieces' ``##`` removed, tokens joined without spaces."""
    return "".join(vocab[i][2:] if vocab[i].startswith("##") else vocab[i] for i in map(int, ids) if i not in specials)


def seq2seq_build(path: str, vocab: Path, out: Path, source_field: str, target_field: str,
                  max_seq_length: int, max_target_length: int):
    """A build of ``path``'s (source, target) pairs with ``vocab``; ``path`` may already be a build."""
    from zhmask.reader import Build

    p = Path(path)
    if p.is_dir() and (p / "manifest.json").is_file():
        b = Build(p)
    elif p.is_file():
        from zhmask.api import build_corpus
        from zhmask.config import BuildConfig

        res = build_corpus(BuildConfig(inputs=[str(p)], source_field=source_field, target_field=target_field,
                                       tasks=["seq2seq"], masking="none", vocab=str(vocab), out=str(out),
                                       max_seq_length=max_seq_length, overwrite=True,
                                       options={"max_target_length": max_target_length}))
        b = Build(res.out_dir)
    else:
        raise ZhmaskError(f"{path}: no such file or build directory")
    if not b.tasks.get("seq2seq"):
        raise ZhmaskError(f"{path}: no seq2seq pairs (check --source-field and --target-field)")
    return b


def finetune_gen(checkpoint: str, train_path: str, dev_path: str, out: str, *, source_field: str = "text",
                 target_field: str = "title", sets: tuple[str, ...] = (), from_scratch: bool = False,
                 beam_size: int = 1, length_penalty: float = 1.0, max_length: int = 32, min_length: int = 1,
                 max_seq_length: int = 256, max_target_length: int = 32, dev_limit: int = 0,
                 examples: int = 5, quiet: bool = False) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    from trainers.common import make_config, train
    from trainers.ernie_gen import ErnieGen, generate, make_collator, parse_flows
    from trainers.finetune import model_dir
    from zhmask.reader import ShardDataset

    hf_logging.set_verbosity_error()
    start = time.time()
    src = model_dir(checkpoint)
    vocab_file = src / "vocab.txt"
    if not vocab_file.is_file():
        raise ZhmaskError(f"{checkpoint}: no vocab.txt next to the weights (a zhmask pretrain directory has one)")
    hf_cfg = AutoConfig.from_pretrained(str(src))
    if getattr(hf_cfg, "model_type", "") != "bert":
        raise ZhmaskError(f"{checkpoint}: a {hf_cfg.model_type} checkpoint; finetune-gen needs a BERT one")
    if max_seq_length > hf_cfg.max_position_embeddings:
        raise ZhmaskError(f"max_seq_length {max_seq_length} > the checkpoint's {hf_cfg.max_position_embeddings} positions")
    run = Path(out)
    if (run / "run" / "log.jsonl").is_file():
        raise ZhmaskError(f"--out {out} already holds a finetune-gen run; give another --out")
    run.mkdir(parents=True, exist_ok=True)
    tr = seq2seq_build(train_path, vocab_file, run / "train-data", source_field, target_field, max_seq_length,
                       max_target_length)
    dv = seq2seq_build(dev_path, vocab_file, run / "dev-data", source_field, target_field, max_seq_length,
                       max_target_length)
    cfg = make_config(None, ("validation=0", "eval_every=0", "save_every=0", "keep_checkpoints=1",
                             "lr=1e-4", "max_steps=500", *sets))
    cfg.max_position_embeddings = int(hf_cfg.max_position_embeddings)
    flows = parse_flows(cfg.gen_flows)

    def make_model(c, build, tasks):
        if from_scratch:
            return ErnieGen(BertForMaskedLM(hf_cfg), flows, c.span_weight)
        return ErnieGen(BertForMaskedLM.from_pretrained(str(src)), flows, c.span_weight)

    res = train("finetune_gen", make_model, tr.out, run / "run", cfg, quiet=quiet, usable_tasks=("seq2seq",),
                make_collator=make_collator)
    model = res.model

    ds = ShardDataset(dv, split=None, tasks=["seq2seq"], columns=["example_id", "source_ids", "target_ids"])
    n = min(len(ds), dev_limit) if dev_limit else len(ds)
    from zhmask.steps.tokenize import load_vocab

    vocab = [""] * hf_cfg.vocab_size
    for tok, i in load_vocab(vocab_file).items():
        if i < len(vocab):
            vocab[i] = tok
    specials = {dv.pad_id, dv.cls_id, dv.sep_id, dv.mask_id}
    banned = sorted({dv.pad_id, dv.cls_id, dv.mask_id} | {i for i, t in enumerate(vocab) if t.startswith("[unused")})
    hyps, refs, rows = [], [], []
    chunk = 64
    for s in range(0, n, chunk):   # bounded: the dev rows are read and decoded a chunk at a time
        part = [ds[i] for i in range(s, min(n, s + chunk))]
        outs = generate(model, [r["source_ids"] for r in part], sep_id=dv.sep_id, pad_id=dv.pad_id,
                        attn_id=dv.mask_id, banned=banned, max_length=max_length, min_length=min_length, beam_size=beam_size,
                        length_penalty=length_penalty)
        for r, o in zip(part, outs):
            hyps.append(ids_text(o, vocab, specials))
            refs.append(ids_text(r["target_ids"], vocab, specials))
            if len(rows) < examples:
                rows.append({"example_id": r["example_id"], "source": ids_text(r["source_ids"], vocab, specials)[:120],
                             "reference": refs[-1], "generated": hyps[-1]})
    scores = rouge(hyps, refs)
    result = {"checkpoint": str(checkpoint), "from_scratch": from_scratch, **scores,
              "train_examples": tr.tasks["seq2seq"], "dev_examples": n, "steps": res.step,
              "decoding": {"beam_size": beam_size, "length_penalty": length_penalty, "max_length": max_length,
                           "min_length": min_length},
              "examples": rows, "seconds": round(time.time() - start, 1),
              "train_loss_last": _last_loss(run / "run" / "log.jsonl"), "config": cfg.to_dict()}
    (run / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    return result


def _last_loss(log: Path) -> float | None:
    losses = [json.loads(ln).get("loss") for ln in log.read_text(encoding="utf-8").splitlines()] if log.is_file() else []
    losses = [v for v in losses if v is not None][-20:]
    return float(np.mean(losses)) if losses else None


def main(argv: list[str] | None = None) -> None:
    from zhmask.cli import main as zhmask_main

    zhmask_main(["finetune-gen", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
