"""ERNIE-GEN pretraining and decoding (Xiao et al. 2020): multi-flow attention over one BERT.

One transformers ``BertForMaskedLM`` (so every saved directory is a transformers checkpoint) runs
the paper's three flows in a single sequence per example::

    [ contextual flow: source, noised target, [SEP] | word-by-word [ATTN] x nt | span-by-span [ATTN] x nt ]

with the masks of :mod:`zhmask.generation.attention` (``batch_masks``; docs/ernie_gen.md) placed
into one ``(S, S)`` boolean matrix: contextual queries see the contextual keys of their flow;
the ``[ATTN]`` query of target position *i* in a generation flow sees the contextual keys its flow
allows and itself. An ``[ATTN]`` query is the ``[MASK]`` embedding at the *position id of the
token it predicts*; BERT's MLM head (``cls``) on it predicts that token. Because every layer's
``[ATTN]`` queries read the same layer's contextual keys, this is the paper's layer-wise
multi-flow attention. Loss: the mean cross-entropy of the word-by-word flow plus ``span_weight``
times that of the span-by-span flow (``gen_flows=word`` trains the word-by-word flow alone, the
paper's ablation).

Noise: the target inputs are noised as stored in the shards (``gen_noise=shards``), or afresh each
epoch from the clean target (``dynamic``: :func:`zhmask.generation.noise.dynamic_noise`).

Decoding (:func:`generate`) is the paper's infilling: at step *t* the contextual flow holds the
source and the *t* tokens generated so far, and one ``[ATTN]`` query at position ``ns + t`` (seeing
the source, the generated tokens and itself) predicts the next token; greedy or beam search with a
length penalty, up to a maximum length or ``[SEP]``.

    python -m trainers.ernie_gen --data out/ --out run/ [--set gen_flows=word] [--resume]
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from trainers.bert import BertPretrainer, bert_config
from trainers.common import Config, masked_ce
from zhmask.errors import ZhmaskError

TASKS = ("ernie_gen", "seq2seq")
FLOWS = ("word", "span")
CONTEXT, WORD, SPAN = 0, 1, 2   # values of a batch's ``flow`` tensor


# ----------------------------------------------------------------------------- examples and batches
def parse_flows(text: str) -> tuple[str, ...]:
    flows = tuple(f.strip() for f in str(text).split(",") if f.strip())
    if not flows or any(f not in FLOWS for f in flows) or len(set(flows)) != len(flows) or flows[0] != "word":
        raise ZhmaskError(f"setting gen_flows: 'word' or 'word,span', got {text!r}")
    return flows


def row_example(row: dict[str, Any], sep_id: int, ctx_ids: np.ndarray | None = None) -> dict[str, Any]:
    """One shard row of ``ernie_gen``/``seq2seq`` as the pieces of a multi-flow example.

    ``ctx_ids``: the contextual inputs (default the row's ``input_ids``, noised as stored). Position
    ids: ``[CLS]`` 0, each source and target token its place in the original example plus one
    (``fragments.original_positions``; a seq2seq row is in order), then the two ``[SEP]``."""
    from zhmask.generation.attention import span_starts
    from zhmask.generation.fragments import original_positions

    source = np.asarray(row["source_ids"], dtype=np.int64)
    target = np.asarray(row["target_ids"], dtype=np.int64)
    ns, nt = len(source), len(target) + 1
    ids = np.asarray(row["input_ids"] if ctx_ids is None else ctx_ids, dtype=np.int64)
    if len(ids) != ns + nt:
        raise ZhmaskError(f"row {row.get('example_id')}: input_ids has {len(ids)} tokens, "
                          f"not source {ns} + target {nt} (not an ernie_gen/seq2seq row)")
    fb = row.get("fragment_bounds")
    if fb is not None and len(fb):
        n = ns - 2 + nt - 1
        sp, tp = original_positions(ns - 2, nt - 1, fb)
        pos = np.concatenate([[0], sp + 1, [n + 1], tp + 1, [n + 2]]).astype(np.int64)
    else:
        pos = np.arange(ns + nt, dtype=np.int64)
    sb = row.get("span_bounds")
    types = row.get("token_type_ids")
    return {"ids": ids, "ns": ns, "nt": nt, "pos": pos,
            "types": np.asarray(types, dtype=np.int64) if types is not None else (np.arange(ns + nt) >= ns).astype(np.int64),
            "labels": np.concatenate([target, [sep_id]]).astype(np.int64),
            "starts": span_starts([] if sb is None else sb, nt)}


def assemble(examples: Sequence[dict[str, Any]], flows: Sequence[str], pad_id: int, attn_id: int,
             pad_to_multiple_of: int | None = 8) -> dict[str, np.ndarray]:
    """Numpy arrays of a multi-flow batch, sequence length ``S = Lm + len(flows) * ntm``:
    ``input_ids``, ``position_ids``, ``token_type_ids``, ``flow_mask`` [B, S, S] (True: may attend),
    ``labels`` (the target at each ``[ATTN]`` query, -100 elsewhere), ``flow`` (0 contextual, 1
    word-by-word, 2 span-by-span, -1 padding) and ``attention_mask`` (the contextual tokens)."""
    from zhmask.generation.attention import batch_masks

    B = len(examples)
    fm = batch_masks([e["ns"] for e in examples], [e["nt"] for e in examples], [e["starts"] for e in examples])
    lm_raw, ntm = fm.contextual.shape[1], fm.word.shape[1]
    k = len(flows)
    lm = lm_raw
    if pad_to_multiple_of:   # pad the contextual part so S is a multiple (padding keys are never seen)
        lm = lm_raw + (-(lm_raw + k * ntm)) % pad_to_multiple_of
    S = lm + k * ntm
    ids = np.full((B, S), pad_id, dtype=np.int64)
    pos = np.zeros((B, S), dtype=np.int64)
    types = np.zeros((B, S), dtype=np.int64)
    labels = np.full((B, S), -100, dtype=np.int64)
    flow = np.full((B, S), -1, dtype=np.int64)
    ctxm = np.zeros((B, S), dtype=np.int64)
    mask = np.zeros((B, S, S), dtype=bool)
    mask[:, :lm_raw, :lm_raw] = fm.contextual
    for f, name in enumerate(flows):
        o = lm + f * ntm
        m = fm.word if name == "word" else fm.span
        mask[:, o:o + ntm, :lm_raw] = m[:, :, :lm_raw]
        mask[:, o:o + ntm, o:o + ntm] = m[:, :, lm_raw:]
    for b, e in enumerate(examples):
        L, nt, ns = e["ns"] + e["nt"], e["nt"], e["ns"]
        ids[b, :L], pos[b, :L], types[b, :L] = e["ids"], e["pos"], e["types"]
        flow[b, :L], ctxm[b, :L] = CONTEXT, 1
        for f, name in enumerate(flows):
            o = lm + f * ntm
            ids[b, o:o + nt] = attn_id
            pos[b, o:o + nt] = e["pos"][ns:ns + nt]
            types[b, o:o + nt] = 1
            flow[b, o:o + nt] = WORD if name == "word" else SPAN
            if e.get("labels") is not None:
                labels[b, o:o + nt] = e["labels"]
    # a padding query sees only itself (no row of the softmax is empty); real rows are unchanged
    idx = np.arange(S)
    mask[:, idx, idx] |= ~mask.any(axis=2)
    return {"input_ids": ids, "position_ids": pos, "token_type_ids": types, "flow_mask": mask,
            "labels": labels, "flow": flow, "attention_mask": ctxm}


class FlowCollator:
    """``collate_fn`` of ERNIE-GEN batches from shard rows (``set_epoch`` for dynamic noise)."""

    def __init__(self, build, cfg: Config) -> None:
        self.flows = parse_flows(cfg.gen_flows)
        self.pad_id, self.sep_id, self.attn_id = build.pad_id, build.sep_id, build.mask_id
        self.multiple = cfg.pad_to_multiple_of
        options = dict(build.config.get("options") or {})
        stored = str(options.get("noise", "static"))
        mode = cfg.gen_noise
        if mode not in ("auto", "shards", "dynamic", "none"):
            raise ZhmaskError(f"setting gen_noise: auto, shards, dynamic or none, got {mode!r}")
        if mode == "auto":
            mode = "dynamic" if stored == "dynamic" else "shards"
        self.mode = mode
        self.rate = float(options.get("noise_rate", 0.05)) if cfg.gen_noise_rate < 0 else float(cfg.gen_noise_rate)
        if not 0.0 <= self.rate < 1.0:
            raise ZhmaskError(f"setting gen_noise_rate: a share in [0, 1), got {self.rate}")
        self.seed = int(build.config.get("seed", 0) or 0)
        self.replace = np.asarray(build.tokenizer.replaceable_ids) if mode == "dynamic" else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def inputs(self, row: dict[str, Any]) -> np.ndarray:
        """The contextual inputs of ``row`` under this collator's noise mode."""
        if self.mode == "shards":
            return np.asarray(row["input_ids"])
        if self.mode == "none":
            return np.concatenate([row["source_ids"], row["target_ids"], [self.sep_id]])
        from zhmask.generation.noise import dynamic_noise

        return dynamic_noise(row, seed=self.seed, epoch=self.epoch, rate=self.rate, replace_ids=self.replace)[0]

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ex = [row_example(r, self.sep_id, self.inputs(r)) for r in rows]
        out = assemble(ex, self.flows, self.pad_id, self.attn_id, self.multiple)
        return {k: torch.from_numpy(v) for k, v in out.items()}


def make_collator(build, cfg: Config) -> FlowCollator:
    return FlowCollator(build, cfg)


# ----------------------------------------------------------------------------- the model
class ErnieGen(nn.Module):
    """``BertForMaskedLM`` run over multi-flow batches, with the trainer's interface (trainers.common)."""

    def __init__(self, model, flows: Sequence[str] = FLOWS, span_weight: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.flows = tuple(flows)
        self.span_weight = float(span_weight)

    def attention_bias(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The additive [B, 1, S, S] mask BERT receives: 0 where ``flow_mask`` allows, the dtype's minimum elsewhere."""
        dtype = self.model.dtype
        allow = batch["flow_mask"][:, None]
        return torch.zeros(allow.shape, dtype=dtype, device=allow.device).masked_fill(~allow, torch.finfo(dtype).min)

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.bert(input_ids=batch["input_ids"], attention_mask=self.attention_bias(batch),
                               token_type_ids=batch["token_type_ids"],
                               position_ids=batch["position_ids"]).last_hidden_state

    def query_logits(self, batch: dict[str, torch.Tensor]):
        """Logits at every labelled [ATTN] query, their targets and their flow (1 word, 2 span)."""
        h = self.hidden(batch)
        where = batch["labels"] != -100
        return self.model.cls(h[where]), batch["labels"][where], batch["flow"][where]

    def forward(self, batch: dict[str, torch.Tensor]):
        logits, y, flow = self.query_logits(batch)
        heads: dict[str, torch.Tensor] = {}
        loss = None
        for name, code, weight in (("word", WORD, 1.0), ("span", SPAN, self.span_weight)):
            if name not in self.flows:
                continue
            sel = flow == code
            s, n = masked_ce(logits[sel], y[sel])
            part = s / max(n, 1)
            heads[name] = part.detach()
            loss = weight * part if loss is None else loss + weight * part
        heads["loss"] = loss.detach()
        return loss, heads

    @torch.no_grad()
    def evaluate(self, batch: dict[str, torch.Tensor], acc: dict[str, Any], gen=None) -> None:
        logits, y, flow = self.query_logits(batch)
        for name, code in (("word", WORD), ("span", SPAN)):
            sel = flow == code
            if not bool(sel.any()):
                continue
            s, n = masked_ce(logits[sel], y[sel])
            acc[f"{name}_ce"] = acc.get(f"{name}_ce", 0.0) + float(s)
            acc[f"{name}_n"] = acc.get(f"{name}_n", 0) + n
            acc[f"{name}_correct"] = acc.get(f"{name}_correct", 0) + int((logits[sel].argmax(-1) == y[sel]).sum())

    @staticmethod
    def metrics(acc: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in FLOWS:
            if acc.get(f"{name}_n"):
                out[f"{name}_accuracy"] = acc[f"{name}_correct"] / acc[f"{name}_n"]
                out[f"{name}_loss"] = acc[f"{name}_ce"] / acc[f"{name}_n"]
                out[f"{name}_tokens"] = acc[f"{name}_n"]
        return out

    # a transformers save_pretrained directory with the build's tokenizer, and back (as BERT's)
    save = BertPretrainer.save
    load = BertPretrainer.load


def make_model(cfg: Config, build, tasks: list[str]) -> ErnieGen:
    from transformers import BertForMaskedLM

    return ErnieGen(BertForMaskedLM(bert_config(cfg, build)), parse_flows(cfg.gen_flows), cfg.span_weight)


# ----------------------------------------------------------------------------- decoding
def _step_batch(sources: Sequence[np.ndarray], prefixes: Sequence[Sequence[int]], pad_id: int, attn_id: int,
                device) -> dict[str, torch.Tensor]:
    """The multi-flow batch of one decoding step: source and generated tokens in the contextual flow
    (one placeholder after them, which no query sees) and the word-by-word ``[ATTN]`` query of the next
    position, the same layout and masks as training."""
    ex = []
    for src, pre in zip(sources, prefixes):
        ns, nt = len(src), len(pre) + 1
        ids = np.concatenate([src, np.asarray(pre, dtype=np.int64), [attn_id]]).astype(np.int64)
        ex.append({"ids": ids, "ns": ns, "nt": nt, "pos": np.arange(ns + nt), "labels": None,
                   "types": (np.arange(ns + nt) >= ns).astype(np.int64), "starts": np.arange(nt)})
    out = assemble(ex, ("word",), pad_id, attn_id, None)
    return {k: torch.from_numpy(v).to(device) for k, v in out.items()}


@torch.no_grad()
def _next_logprobs(model: ErnieGen, sources, prefixes, pad_id, attn_id, banned, device,
                   sep_id: int = -1, min_length: int = 0) -> torch.Tensor:
    """log P(next token) [N, V] of each (source, prefix) pair; no [SEP] before ``min_length`` tokens."""
    b = _step_batch(sources, prefixes, pad_id, attn_id, device)
    h = model.hidden(b)
    lm = b["flow_mask"].shape[1] - max(len(p) + 1 for p in prefixes)   # the [ATTN] block starts here
    rows = torch.arange(len(prefixes), device=device)
    cols = torch.tensor([lm + len(p) for p in prefixes], device=device)
    logits = model.model.cls(h[rows, cols]).float()
    logits[:, banned] = float("-inf")
    short = torch.tensor([len(p) < min_length for p in prefixes], device=device)
    if sep_id >= 0 and bool(short.any()):
        logits[short, sep_id] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


def generate(model: ErnieGen, sources: Sequence[Sequence[int]], *, sep_id: int, pad_id: int, attn_id: int,
             banned: Sequence[int] = (), max_length: int = 32, min_length: int = 1, beam_size: int = 1,
             length_penalty: float = 1.0, batch_size: int = 16) -> list[list[int]]:
    """Decode a target for each source (``[CLS] ... [SEP]`` ids): greedy (``beam_size`` 1) or beam
    search. ``[SEP]`` is not generated before ``min_length`` tokens. Stops at ``[SEP]`` (not returned) or after ``max_length`` tokens (capped so positions stay
    inside ``max_position_embeddings``). Beam search ranks finished hypotheses by
    ``sum log p / length ** length_penalty`` (length counts the closing ``[SEP]``) and stops once
    ``beam_size`` hypotheses have finished."""
    if beam_size < 1 or max_length < 1:
        raise ZhmaskError(f"beam_size and max_length must be at least 1, got {beam_size} and {max_length}")
    device = next(model.parameters()).device
    max_pos = int(model.model.config.max_position_embeddings)
    srcs = [np.asarray(s, dtype=np.int64) for s in sources]
    banned = sorted(set(int(x) for x in banned) - {int(sep_id)})
    was = model.training
    model.eval()
    out: list[list[int]] = []
    try:
        if beam_size == 1:
            for s in range(0, len(srcs), batch_size):
                out.extend(_greedy(model, srcs[s:s + batch_size], sep_id, pad_id, attn_id, banned, max_length,
                                   min_length, max_pos, device))
        else:
            for src in srcs:
                out.append(_beam(model, src, sep_id, pad_id, attn_id, banned, max_length, min_length, max_pos,
                                 beam_size, length_penalty, device))
    finally:
        model.train(was)
    return out


def _cap(src: np.ndarray, max_length: int, max_pos: int) -> int:
    return max(1, min(max_length, max_pos - len(src) - 1))


def _greedy(model, srcs, sep_id, pad_id, attn_id, banned, max_length, min_length, max_pos, device) -> list[list[int]]:
    gen: list[list[int]] = [[] for _ in srcs]
    live = list(range(len(srcs)))
    caps = [_cap(s, max_length, max_pos) for s in srcs]
    while live:
        lp = _next_logprobs(model, [srcs[i] for i in live], [gen[i] for i in live], pad_id, attn_id, banned, device,
                            sep_id, min_length)
        nxt = lp.argmax(-1).tolist()
        still = []
        for i, tok in zip(live, nxt):
            if tok == sep_id:
                continue
            gen[i].append(int(tok))
            if len(gen[i]) < caps[i]:
                still.append(i)
        live = still
    return gen


def _beam(model, src, sep_id, pad_id, attn_id, banned, max_length, min_length, max_pos, k, alpha,
          device) -> list[int]:
    cap = _cap(src, max_length, max_pos)
    live: list[tuple[list[int], float]] = [([], 0.0)]
    done: list[tuple[float, list[int]]] = []
    for _ in range(cap + 1):
        if not live or len(done) >= k:
            break
        if len(live[0][0]) == cap:   # out of length: the live hypotheses finish as they are
            done.extend((sc / max(len(seq), 1) ** alpha, seq) for seq, sc in live)
            break
        lp = _next_logprobs(model, [src] * len(live), [seq for seq, _ in live], pad_id, attn_id, banned, device,
                            sep_id, min_length)
        total = torch.tensor([sc for _, sc in live], device=lp.device)[:, None] + lp
        top = torch.topk(total.flatten(), min(2 * k, total.numel()))
        new: list[tuple[list[int], float]] = []
        V = lp.shape[1]
        for rank, (score, flat) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            seq, tok = live[flat // V][0], flat % V
            if tok == sep_id:   # a hypothesis ends only when [SEP] is among the k best candidates
                if rank < k:
                    done.append((score / (len(seq) + 1) ** alpha, seq))
            elif len(new) < k:
                new.append((seq + [tok], score))
        live = new
    best = max(done, key=lambda d: d[0]) if done else (0.0, live[0][0] if live else [])
    return best[1]


def main(argv: list[str] | None = None) -> None:
    from zhmask.cli import main as zhmask_main

    zhmask_main(["pretrain", "ernie_gen", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
