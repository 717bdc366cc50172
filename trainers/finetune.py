"""Fine-tune a pretrained checkpoint for sequence classification and report dev accuracy and macro-F1.

This is the downstream half of every evaluation in zhmask: a checkpoint from ``zhmask pretrain``
(or any transformers BERT/ELECTRA directory with its vocabulary) gets a classification head
(``AutoModelForSequenceClassification``) and trains on labelled text; ``--from-scratch`` trains the
same architecture from random initialisation under the same budget, the control that shows what
pretraining taught.

Inputs: a ``label<TAB>text`` TSV (a header line ``label<TAB>text`` is skipped) or a JSONL with
label and text fields (``text_field``, ``label_field``; an optional ``title_field`` becomes segment
A). One JSONL with a ``split`` field can serve both sides (``train_split``/``dev_split``); without a
dev file, ``dev_fraction`` holds out texts by a stable hash.

    python -m trainers.finetune run/final --train train.tsv --dev dev.tsv --out ft/ [--from-scratch]
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhmask.errors import ZhmaskError


@dataclass
class FinetuneConfig:
    """Every knob of a fine-tuning run (``--set key=value``)."""

    epochs: int = 3
    max_steps: int = 0            # > 0: stop after this many optimizer steps (overrides epochs)
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1           # share of the steps
    grad_clip: float = 1.0
    max_length: int = 128
    dropout: float = 0.1
    seed: int = 0
    train_limit: int = 0          # > 0: the first N training examples (after a seeded shuffle)
    dev_limit: int = 0            # > 0: the first N dev examples
    dev_fraction: float = 0.1     # without --dev: share of texts held out by hash
    text_field: str = "text"
    label_field: str = "label"
    title_field: str = ""         # JSONL: a field prepended as segment A (e.g. title)
    train_split: str = ""         # JSONL with a split field: the value of the training rows
    dev_split: str = ""           # ... and of the dev rows
    split_field: str = "split"
    device: str = "auto"
    threads: int = 0


def make_finetune_config(sets: tuple[str, ...] | list[str] = ()) -> FinetuneConfig:
    from trainers.common import parse_sets, typed

    cfg = typed(FinetuneConfig, parse_sets(sets))
    if cfg.batch_size < 1 or cfg.max_length < 8 or cfg.epochs < 1:
        raise ZhmaskError("batch_size >= 1, max_length >= 8 and epochs >= 1 are required")
    if not 0.0 < cfg.dev_fraction < 1.0:
        raise ZhmaskError(f"dev_fraction: a share in (0, 1), got {cfg.dev_fraction}")
    return cfg


# ----------------------------------------------------------------------------- data
def read_examples(path: str | Path, cfg: FinetuneConfig, split: str = "") -> list[tuple[str, str, str | None]]:
    """(label, text, title or None) of every record of a TSV or JSONL file (of one split when given)."""
    p = Path(path)
    if not p.is_file():
        raise ZhmaskError(f"{path}: no such file")
    out: list[tuple[str, str, str | None]] = []
    jsonl = p.suffix in (".jsonl", ".json") or p.read_bytes()[:1] == b"{"
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if jsonl:
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise ZhmaskError(f"{path}:{n}: not a JSON record") from None
                if not isinstance(rec, dict):
                    raise ZhmaskError(f"{path}:{n}: not a JSON object")
                if split and str(rec.get(cfg.split_field, "")) != split:
                    continue
                for fld in (cfg.label_field, cfg.text_field):
                    if fld not in rec:
                        raise ZhmaskError(f"{path}:{n}: no field {fld!r} (fields: {', '.join(rec)})")
                title = str(rec.get(cfg.title_field) or "") if cfg.title_field else None
                out.append((str(rec[cfg.label_field]), str(rec[cfg.text_field]), title or None))
            else:
                if "\t" not in line:
                    raise ZhmaskError(f"{path}:{n}: expected label<TAB>text")
                label, text = line.split("\t", 1)
                if n == 1 and label.strip().lower() == "label":
                    continue
                out.append((label.strip(), text, None))
    if not out:
        raise ZhmaskError(f"{path}: no examples{f' of split {split!r}' if split else ''}")
    return out


def stable_fraction(text: str) -> float:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") / 2.0 ** 64


def label_index(train: list, dev: list, path: str) -> list[str]:
    names = sorted({e[0] for e in train}, key=lambda s: (not s.lstrip("-").isdigit(), int(s) if s.lstrip("-").isdigit() else 0, s))
    if len(names) < 2:
        raise ZhmaskError(f"{path}: the training examples have {len(names)} label value(s); need at least 2")
    unknown = sorted({e[0] for e in dev} - set(names))
    if unknown:
        raise ZhmaskError(f"dev labels not seen in training: {', '.join(unknown[:5])}")
    return names


def macro_f1(pred, gold, n_classes: int) -> float:
    """Mean over classes of F1 (a class with no prediction and no gold example is left out)."""
    import numpy as np

    pred, gold = np.asarray(pred), np.asarray(gold)
    scores = []
    for c in range(n_classes):
        tp = int(((pred == c) & (gold == c)).sum())
        fp = int(((pred == c) & (gold != c)).sum())
        fn = int(((pred != c) & (gold == c)).sum())
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def model_dir(checkpoint: str | Path) -> Path:
    """The transformers directory of ``checkpoint``: itself, or an ELECTRA run's discriminator."""
    p = Path(checkpoint)
    if (p / "config.json").is_file():
        return p
    if (p / "discriminator" / "config.json").is_file():
        return p / "discriminator"
    if (p / "final").is_dir():
        return model_dir(p / "final")
    raise ZhmaskError(f"{checkpoint}: not a transformers checkpoint (no config.json)")


def load_classifier(src: Path, num_labels: int, cfg: FinetuneConfig, from_scratch: bool = False):
    """``AutoModelForSequenceClassification`` from ``src``; ``from_scratch``: the same architecture, random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    torch.manual_seed(cfg.seed)
    hf_cfg = AutoConfig.from_pretrained(str(src), num_labels=num_labels)
    positions = getattr(hf_cfg, "max_position_embeddings", None)  # absolute positions (XLNet: none, or -1)
    if positions is not None and positions > 0 and cfg.max_length > positions:
        raise ZhmaskError(f"{src}: max_length {cfg.max_length} is more than the checkpoint's {positions} positions "
                          f"(--set max_length={positions}, or pretrain with --set max_position_embeddings={cfg.max_length})")
    if hf_cfg.model_type == "gpt2":   # GPT2ForSequenceClassification: the last non-padding token classifies
        if hf_cfg.pad_token_id is None:
            raise ZhmaskError(f"{src}: a GPT-2 checkpoint without pad_token_id (zhmask pretrain gpt sets it)")
        hf_cfg.resid_pdrop = hf_cfg.embd_pdrop = hf_cfg.attn_pdrop = cfg.dropout
    elif hf_cfg.model_type == "xlnet":
        # XLNetForSequenceClassification reads one token: the [CLS] that starts every zhmask row
        # ("first"), not the last position, which is padding in a right-padded batch ("last")
        hf_cfg.summary_type = "first"
        hf_cfg.dropout = hf_cfg.summary_last_dropout = cfg.dropout
    else:
        hf_cfg.hidden_dropout_prob = cfg.dropout
    if from_scratch:   # the control
        return AutoModelForSequenceClassification.from_config(hf_cfg)
    return AutoModelForSequenceClassification.from_pretrained(str(src), config=hf_cfg)


# ----------------------------------------------------------------------------- the run
def finetune(checkpoint: str | Path, train_path: str, dev_path: str | None, out: str | Path,
             cfg: FinetuneConfig, from_scratch: bool = False, quiet: bool = False) -> dict[str, Any]:
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from zhmask.reader import pad_rows
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    start = time.time()
    src = model_dir(checkpoint)
    train = read_examples(train_path, cfg, cfg.train_split)
    if dev_path:
        dev = read_examples(dev_path, cfg, cfg.dev_split)
    else:  # hold out texts by a stable hash: the same split for every checkpoint and seed
        dev = [e for e in train if stable_fraction(e[1]) < cfg.dev_fraction]
        train = [e for e in train if stable_fraction(e[1]) >= cfg.dev_fraction]
        if not dev or not train:
            raise ZhmaskError(f"{train_path}: too few examples to hold out {cfg.dev_fraction:.0%} as dev")
    names = label_index(train, dev, train_path)
    order = np.random.default_rng(cfg.seed).permutation(len(train))
    train = [train[i] for i in order]
    if cfg.train_limit:
        train = train[:cfg.train_limit]
    if cfg.dev_limit:
        dev = dev[:cfg.dev_limit]

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    tok = AutoTokenizer.from_pretrained(str(src))

    def encode(rows):
        titles = [r[2] for r in rows]
        texts = [r[1] for r in rows]
        if any(t is not None for t in titles):
            enc = tok([t or "" for t in titles], texts, truncation="longest_first", max_length=cfg.max_length)
        else:
            enc = tok(texts, truncation=True, max_length=cfg.max_length)
        y = [names.index(r[0]) for r in rows]
        return enc["input_ids"], enc.get("token_type_ids"), y

    tr_ids, tr_tt, tr_y = encode(train)
    dv_ids, dv_tt, dv_y = encode(dev)

    def collate(idx, ids, tt, y):   # the reader's padding (zhmask.reader.pad_rows), class labels as "labels"
        rows = [{"token_type_ids": tt[i] if tt is not None else None} for i in idx]
        out = pad_rows(rows, [ids[i] for i in idx], [None] * len(idx), tok.pad_token_id, 8)
        return {k: torch.from_numpy(out[k]) for k in inputs} | {
            "labels": torch.tensor([y[i] for i in idx], dtype=torch.long)}

    model = load_classifier(src, len(names), cfg, from_scratch).to(device)
    # GPT-2 has no token type embeddings (it would look types up in its word embeddings): none passed
    inputs = ("input_ids", "attention_mask") + (("token_type_ids",) if getattr(model.config, "type_vocab_size", 0) else ())

    per_epoch = (len(train) + cfg.batch_size - 1) // cfg.batch_size
    total = cfg.max_steps or per_epoch * cfg.epochs
    warm = int(cfg.warmup * total)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
                                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warm + 1) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.autocast("cpu", enabled=False)

    def evaluate() -> dict[str, float]:
        model.eval()
        preds = []
        with torch.no_grad(), autocast:
            for s in range(0, len(dv_ids), cfg.batch_size * 2):
                idx = list(range(s, min(len(dv_ids), s + cfg.batch_size * 2)))
                b = {k: v.to(device) for k, v in collate(idx, dv_ids, dv_tt, dv_y).items() if k != "labels"}
                preds.append(model(**b).logits.argmax(-1).cpu())
        model.train()
        p = torch.cat(preds).numpy()
        g = np.asarray(dv_y)
        return {"accuracy": float((p == g).mean()), "macro_f1": macro_f1(p, g, len(names))}

    history, losses = [], []
    step, epoch = 0, 0
    model.train()
    gen = torch.Generator().manual_seed(cfg.seed)
    while step < total:
        perm = torch.randperm(len(tr_ids), generator=gen).tolist()
        for s in range(0, len(perm), cfg.batch_size):
            batch = {k: v.to(device) for k, v in collate(perm[s:s + cfg.batch_size], tr_ids, tr_tt, tr_y).items()}
            with autocast:
                loss = model(**batch).loss
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            if not quiet and (step % max(1, total // 10) == 0 or step == total):
                print(f"step {step}/{total}  loss {np.mean(losses[-20:]):.4f}", file=sys.stderr, flush=True)
            if step >= total:
                break
        epoch += 1
        history.append({"epoch": epoch, "step": step, **evaluate()})   # after every epoch and at the end
    final = history[-1]
    result = {
        "checkpoint": str(Path(checkpoint)), "model_dir": str(src), "from_scratch": from_scratch,
        "accuracy": final["accuracy"], "macro_f1": final["macro_f1"],
        "labels": names, "train_examples": len(train), "dev_examples": len(dev), "steps": step,
        "train_loss_last": float(np.mean(losses[-20:])) if losses else None,
        "history": history, "seconds": round(time.time() - start, 1), "device": device,
        "train": str(train_path), "dev": str(dev_path) if dev_path else f"{cfg.dev_fraction:.0%} of train by hash",
        "config": dataclasses.asdict(cfg),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> None:
    from zhmask.cli import main as zhmask_main

    zhmask_main(["finetune", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
