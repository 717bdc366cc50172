"""Seeing a build's rows: find them by streaming, render them as text (``zhmask inspect``).

* :func:`fates` -- the fate of every predicted token (``labels != -100``): ``MASKED`` (the input is
  [MASK]), ``KEPT`` (the input is the label) or ``REPLACED`` (another token); numpy, on one row or
  on a record batch's flat values (``zhmask report`` counts them the same way).
* :func:`describe_label` -- a sentence-level class in words, per task (the classes the task
  modules declare; ``sentence_reorder``'s permutation through
  :func:`zhmask.labels.sentence_reorder.permutation_of`).
* :func:`iter_rows` -- rows of a build in build order, filtered by task or example id, one
  record batch at a time (memory bounded by a batch, whatever the build's size).
* :func:`render_row` -- one row as text: a header, the decoded label, then one line per
  segment (split at [SEP]) with words separated by spaces, entities as ``«...»TYPE`` and
  predicted tokens as ``[MASK:x]`` (masked), ``[y>x]`` (replaced by y) and ``[=x]`` (kept);
  with ``color=True`` these carry ANSI colours as well (:func:`click.style`).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.schema import SENTENCE_LABEL

IGNORE = -100
NONE, MASKED, REPLACED, KEPT = 0, 1, 2, 3
FATE_NAMES = {MASKED: "masked", REPLACED: "replaced", KEPT: "kept"}
# colours of the fates and marks (click.style keywords)
STYLES: dict[str, dict[str, Any]] = {
    "masked": {"fg": "white", "bg": "red", "bold": True},
    "replaced": {"fg": "black", "bg": "yellow"},
    "kept": {"fg": "black", "bg": "green"},
    "entity": {"fg": "cyan", "underline": True},
    "entity_type": {"fg": "cyan", "dim": True},
    "special": {"fg": "bright_black"},
    "header": {"fg": "blue", "bold": True},
    "label": {"fg": "magenta", "bold": True},
    "source": {"fg": "bright_black"},
}


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, kind: str) -> str:
        if not self.color:
            return text
        import click

        return click.style(text, **STYLES[kind])


def legend(color: bool = False) -> str:
    """One line saying what the marks of :func:`render_row` mean (in their colours)."""
    paint = _Painter(color)
    return (f"{paint('[MASK:x]', 'masked')} masked (input [MASK], label x)  {paint('[y>x]', 'replaced')} replaced "
            f"by y (label x)  {paint('[=x]', 'kept')} kept (input = label x)  {paint('«...»', 'entity')}"
            f"{paint('TYPE', 'entity_type')} entity  word/label word-aware label  spaces between words")


def fates(input_ids: np.ndarray, labels: np.ndarray, mask_id: int) -> np.ndarray:
    """Per token: NONE where ``labels == -100``, else MASKED / KEPT / REPLACED (int8 codes)."""
    ids = np.asarray(input_ids)
    lab = np.asarray(labels)
    out = np.zeros(len(lab), dtype=np.int8)
    pred = lab != IGNORE
    out[pred & (ids == mask_id)] = MASKED
    out[pred & (ids != mask_id) & (ids == lab)] = KEPT
    out[pred & (ids != mask_id) & (ids != lab)] = REPLACED
    return out


# ---------------------------------------------------------------------- labels in words
def _reorder_m(config: Mapping[str, Any]) -> int:
    from zhmask.labels import TASKS
    from zhmask.labels.sentence_reorder import TASK

    opts = (config.get("options") or {}) if isinstance(config, Mapping) else {}
    return int(opts.get("reorder_max_segments", TASKS.entries[TASK].options["reorder_max_segments"]))


def _reorder(label: int, config: Mapping[str, Any]) -> str:
    from zhmask.labels.sentence_reorder import permutation_of

    m = _reorder_m(config)
    try:
        perm = permutation_of(label, m)
    except ValueError as exc:
        return f"not a class of this task ({exc})"
    return f"permutation {perm}: shown segment i is original segment perm[i]"


def _classes(task: str) -> dict[int, str]:
    """The ``CLASSES`` a task module declares ({} when none)."""
    from zhmask.labels import TASKS

    fn = TASKS.get(task)
    mod = sys.modules.get(fn.__module__) if fn is not None else None
    return dict(getattr(mod, "CLASSES", {}) or {})


# task -> decoder(label, config) where the class is not a plain table entry
DECODERS = {"sentence_reorder": _reorder}


def describe_label(task: str, label: int | None, config: Mapping[str, Any] | None = None) -> str | None:
    """The sentence-level class of a ``task`` row in words; None when the row has none (-1)."""
    if label is None or int(label) < 0:
        return None
    label = int(label)
    dec = DECODERS.get(task)
    if dec is not None:
        return dec(label, config or {})
    name = _classes(task).get(label)
    return name if name is not None else "a class this zhmask does not name"


# ---------------------------------------------------------------------- finding rows
def open_build(path: str | Path):
    """(Build, shard paths to read) for a build directory or one of its shard files."""
    from zhmask.reader import Build

    p = Path(path)
    if p.is_file() and p.suffix == ".arrow":
        b = Build(p.parent.parent)
        want = p.resolve()
        shards = [s for s in b.shards if s.resolve() == want]
        if not shards:
            raise ZhmaskError(f"{p}: not a shard listed in {b.out / 'manifest.json'}")
        return b, shards
    if not p.exists():
        raise ZhmaskError(f"{p} does not exist (expected a build directory made by zhmask build-corpus)")
    b = Build(p)
    return b, list(b.shards)


def iter_batches(shards: Sequence[Path]) -> Iterator[Any]:
    """The record batches of ``shards`` in order, memory-mapped, one at a time."""
    from zhmask.reader import open_shard

    for p in shards:
        try:
            with open_shard(p) as reader:
                yield from reader
        except (OSError, ValueError) as exc:  # pa.ArrowInvalid is a ValueError
            raise ZhmaskError(f"{p}: not a readable Arrow stream ({' '.join(str(exc).split())})") from None


def iter_rows(shards: Sequence[Path], task: str | None = None, example_id: str | None = None) -> Iterator[dict]:
    """Rows (dicts of Python values) of ``shards`` in order, only those of ``task`` and with
    ``example_id`` when given; only the selected rows of a batch become Python objects."""
    import pyarrow.compute as pc

    for batch in iter_batches(shards):
        keep = None
        if task is not None:
            keep = pc.equal(batch.column("task"), task)
        if example_id is not None:
            hit = pc.equal(batch.column("example_id"), example_id)
            keep = hit if keep is None else pc.and_(keep, hit)
        if keep is not None:
            idx = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
            if not len(idx):
                continue
            batch = batch.take(idx)
        for i in range(batch.num_rows):
            yield batch.slice(i, 1).to_pylist()[0]


# ---------------------------------------------------------------------- rendering
def _piece(token: str) -> str:
    return token[2:] if token.startswith("##") else token


def _segment_spans(ids: Sequence[int], wid: Sequence[int], sep_id: int, cls_id: int) -> list[tuple[int, int]]:
    """[start, end) token positions of the segments: [CLS] dropped, split at each [SEP]."""
    from zhmask.labels.pairs import sep_positions

    seps = sep_positions({"input_ids": ids, "word_ids": wid}, {"sep_id": sep_id})
    start = 1 if len(ids) and ids[0] == cls_id and wid[0] == -1 else 0
    spans = []
    for s in seps:
        spans.append((start, s))
        start = s + 1
    if start < len(ids):
        spans.append((start, len(ids)))
    return spans


def _segment_text(tok, ids, wid, fate, labels, ent_at: dict[int, tuple[int, str]], tlab, paint: _Painter,
                  a: int, b: int) -> str:
    vocab = tok.id_to_token

    def word_label(i: int) -> str:  # word-aware tasks: the class of the word ending at token i
        if tlab is None or wid[i] < 0 or tlab[i] == IGNORE:
            return ""
        return f"/{int(tlab[i])}"

    def name(t: int) -> str:
        return vocab[t] if 0 <= t < len(vocab) else f"<{t}>"

    out: list[str] = []
    ent_end, ent_type = None, ""
    for i in range(a, b):
        w = int(wid[i])
        if i > a and (w == -1 or w != int(wid[i - 1])):  # a word ends before token i
            out.append(word_label(i - 1))
            if ent_end is not None and i >= ent_end:
                out.append(paint("»", "entity") + paint(ent_type, "entity_type"))
                ent_end = None
            out.append(" ")
        if ent_end is None and i in ent_at:
            ent_end, ent_type = ent_at[i]
            out.append(paint("«", "entity"))
        f = int(fate[i])
        token = name(int(ids[i]))
        if f == NONE:
            out.append(paint(token, "special") if w == -1 else _piece(token))
        else:
            orig = _piece(name(int(labels[i])))
            if f == MASKED:
                out.append(paint(f"[MASK:{orig}]", "masked"))
            elif f == KEPT:
                out.append(paint(f"[={orig}]", "kept"))
            else:
                out.append(paint(f"[{_piece(token)}>{orig}]", "replaced"))
    if b > a:
        out.append(word_label(b - 1))
    if ent_end is not None:
        out.append(paint("»", "entity") + paint(ent_type, "entity_type"))
    return "".join(out)


def render_row(row: Mapping[str, Any], tok, config: Mapping[str, Any] | None = None, color: bool = False) -> str:
    """One shard row as text (see the module docstring)."""
    paint = _Painter(color)
    ids = np.asarray(row.get("input_ids") or [], dtype=np.int64)
    wid = np.asarray(row.get("word_ids") or [], dtype=np.int64)
    labels = np.asarray(row.get("labels") or [IGNORE] * len(ids), dtype=np.int64)
    task = str(row.get("task"))
    head = f"{row.get('example_id')}  task {task}  doc {row.get('doc_id')}  {len(ids)} tokens  "
    order = np.asarray(row.get("perm_order") or [], dtype=np.int64)
    if task == "clm":  # labels are the inputs (the model shifts them): no fates, every token is a target
        fate = np.full(len(ids), NONE, dtype=np.int8)
        parts = max(0, len(row.get("doc_bounds") or []) - 1)
        head += f"{int((labels != IGNORE).sum())} next-token targets, {parts} document part(s) (one a line)"
    elif task == "plm" and len(order) == len(ids):  # XLNet: the last num_predict of the order are predicted
        k = int(row.get("num_predict") or 0)
        fate = np.full(len(ids), NONE, dtype=np.int8)
        fate[order[len(order) - k:]] = KEPT   # predicted with its input unmasked: [=x]
        labels = ids.copy()
        head += f"{k} predicted [=x] (the last of the factorisation order: after | on the order line)"
    else:
        fate = fates(ids, labels, int(tok.mask_id))
        counts = {n: int((fate == code).sum()) for code, n in FATE_NAMES.items()}
        n_pred = sum(counts.values())
        head += f"{n_pred} predicted"
        if n_pred:
            head += " (" + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + ")"
    lines = [paint(head, "header")]
    label = row.get(SENTENCE_LABEL)
    desc = describe_label(task, label, config)
    if desc is not None:
        lines.append(paint(f"label {int(label)}: {desc}", "label"))
    ent_at: dict[int, tuple[int, str]] = {}
    for e in row.get("entities") or []:
        ent_at[int(e["start"])] = (int(e["end"]), str(e["type"]))
    tl = row.get("token_labels")
    tlab = np.asarray(tl, dtype=np.int64) if tl is not None else None
    spans = _segment_spans(ids.tolist(), wid.tolist(), int(tok.sep_id), int(tok.cls_id))
    sources = row.get("segment_sources") or []
    for k, (a, b) in enumerate(spans):
        name = f"shown {k}" if task == "sentence_reorder" else (chr(ord("A") + k) if k < 26 else f"S{k}")
        text = _segment_text(tok, ids, wid, fate, labels, ent_at, tlab, paint, a, b)
        where = ""
        if k < len(sources) and sources[k] is not None:
            s = sources[k]
            where = f"   <- {s['doc_id']}" + (f" [{s['start']}:{s['end']})" if int(s["start"]) >= 0 else "")
        lines.append(f"{name}: {text}" + (paint(where, "source") if where else ""))
    if task == "plm" and len(order) == len(ids):
        lines.append("order: " + _plm_order(order, wid, ids, tok, int(row.get("num_predict") or 0)))
    return "\n".join(lines)


def _plm_order(order: np.ndarray, wid: np.ndarray, ids: np.ndarray, tok, k: int) -> str:
    """A plm row's factorisation order as text: its units (runs of consecutive positions of one
    word) in order, spaces between them, ``|`` before the predicted ones; [CLS]/[SEP] left out."""
    vocab = tok.id_to_token
    out: list[str] = []
    for j, p in enumerate(order.tolist()):
        if wid[p] < 0:
            continue
        if j == len(order) - k:
            out.append(" | ")
        elif out and not (p == order[j - 1] + 1 and wid[p] == wid[order[j - 1]]):
            out.append(" ")
        t = int(ids[p])
        out.append(_piece(vocab[t]) if 0 <= t < len(vocab) else f"<{t}>")
    return "".join(out)
