"""Dynamic masking (RoBERTa): the same strategy functions, applied at load time.

:class:`DynamicMasking` wraps the strategy that ``--masking NAME`` uses in a build, so a shard
built with ``--masking none`` (or any masking: the original ids are restored from ``labels``)
is masked afresh every epoch.  The random values of one row are those of the key ``rng_for(seed,
example_id, "mask", epoch)``, exactly the ones the static path uses for the ``epoch``-th
``--dupe-factor`` copy, so static and dynamic masks agree for the same (seed, epoch, example).  The random branch of
80/10/10 with ``--random-tokens unigram`` (the default) draws from the unigram table of the row's
work unit (the row's ``unit`` column): :meth:`DynamicMasking.from_build` reads the build's tables
(``unigram/unit-NNNNN.arrow``, listed in the manifest) lazily, a few dozen at a time
(:class:`zhmask.masking.unigram.BuildTables`), so load-time masking draws exactly what the build
drew.  A build made before unit tables (its manifest lists none) drew from the row's own tokens:
``from_build`` masks its rows that way (``random_tokens="row"``).

It is, at the same time,

* a PyTorch ``collate_fn``: ``DataLoader(ds, collate_fn=masker)`` gets a list of rows and
  returns padded ``input_ids``, ``attention_mask``, ``token_type_ids`` and ``labels`` (plus
  ``next_sentence_label`` / ``token_labels`` when the rows carry them; torch tensors, or numpy arrays with
  ``return_tensors="np"``), padded by :class:`zhmask.reader.Collator` -- which also takes a
  masker: ``Collator(pad_id, masker=masker)``;
* a ``datasets`` transform: ``ds.map(masker, batched=True)`` (or unbatched) or
  ``ds.set_transform(masker)`` (masked afresh at every access) replaces ``input_ids`` and
  ``labels`` and keeps every other column (``next_sentence_label``, ``token_labels``, ...).

A batch is masked at once through the strategy's batched path (``mask.mask_rows``, the one the
static build uses; :meth:`DynamicMasking.mask_batch`), example by example for a strategy
without one (a plugin's); the results are those of :meth:`DynamicMasking.mask_row` row by row.

Call :meth:`DynamicMasking.set_epoch` between epochs (or build one per epoch with
``masker.for_epoch(e)``).  The object pickles as its configuration, so DataLoader workers and
``datasets`` fingerprinting get a cheap copy that rebuilds the strategy on first use.

Example::

    from torch.utils.data import DataLoader
    import zhmask.data
    from zhmask.masking.dynamic import DynamicMasking

    ds = zhmask.data.load("out", split="train")
    masker = DynamicMasking.from_build("out", masking="wwm")
    for epoch in range(3):
        masker.set_epoch(epoch)
        for batch in DataLoader(ds, batch_size=32, collate_fn=masker):
            ...
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.masking.base import call_mask
from zhmask.reader import original_ids
from zhmask.record import NO_LABEL, SENTENCE_LABEL, Example
from zhmask.rng import Draws, rng_for

MASK_STAGE = "mask"  # the stage name the static build (Pipeline.mask_keys) uses
EXTRA_COLUMNS = ("chinese_ref", "token_labels", "source_ids", "target_ids", "fragment_bounds", "span_bounds",
                 "noise_positions", "unit")


def mask_rng(seed: int, example_id: str, epoch: int) -> Draws:
    return rng_for(seed, example_id, MASK_STAGE, epoch)


def row_to_example(row: Mapping[str, Any]) -> Example:
    """An :class:`Example` from a shard row; masked ids are restored from ``labels``."""
    ids = original_ids(np.asarray(row["input_ids"], dtype=np.int32), row.get("labels"))
    ents = []
    for e in row.get("entities") or []:
        if isinstance(e, Mapping):
            ents.append((int(e["start"]), int(e["end"]), str(e["type"])))
        else:
            ents.append((int(e[0]), int(e[1]), str(e[2])))
    tt = row.get("token_type_ids")
    return Example(
        doc_id=str(row.get("doc_id", "")),
        example_id=str(row["example_id"]),
        task=str(row.get("task", "mlm")),
        input_ids=ids,
        token_type_ids=np.asarray(tt if tt is not None else np.zeros(len(ids)), dtype=np.int8),
        word_ids=np.asarray(row["word_ids"], dtype=np.int32),
        label=int(row[SENTENCE_LABEL]) if row.get(SENTENCE_LABEL) is not None else NO_LABEL,
        entities=ents,
        extra={k: row[k] for k in EXTRA_COLUMNS if row.get(k) is not None},
    )


class DynamicMasking:
    """A strategy applied at load time; see the module docstring."""

    def __init__(self, masking: str = "wwm", *, config: BuildConfig | Mapping[str, Any] | None = None,
                 seed: int | None = None, epoch: int = 0, return_tensors: str = "pt",
                 pad_to_multiple_of: int | None = None, tables: Any = None, **overrides: Any) -> None:
        base = config.to_dict() if isinstance(config, BuildConfig) else dict(config or {})
        for k in ("workers", "engine", "ray_address", "out", "overwrite", "skip_bad_files", "inputs"):
            base.pop(k, None)
        base["masking"] = masking
        if seed is not None:
            base["seed"] = int(seed)
        base.update(overrides)
        if "options" in base:  # only the knobs this strategy declares
            from zhmask.masking import STRATEGIES

            if masking not in STRATEGIES:
                raise ZhmaskError(f"unknown masking strategy {masking!r}; known: {', '.join(sorted(STRATEGIES))}")
            known = STRATEGIES.declared([masking])
            base["options"] = {k: v for k, v in (base.get("options") or {}).items() if k in known}
        base["tasks"] = ["mlm"]
        self.config = BuildConfig.from_dict(base).validate()
        if return_tensors not in ("pt", "np"):
            raise ZhmaskError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
        self.masking = masking
        self.epoch = int(epoch)
        self.return_tensors = return_tensors
        self.pad_to_multiple_of = pad_to_multiple_of
        self.stats: Counter = Counter()
        # random_tokens="unigram": the unit tables rows draw from (``tables.get(unit)``: a build's
        # BuildTables, set by from_build)
        self.tables = tables
        self._fn = None
        self._tok = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The row columns :func:`row_to_example` reads for this strategy (``entities`` only for a
        strategy that uses them: ``knowledge``)."""
        from zhmask.masking import STRATEGIES

        base = ("doc_id", "example_id", "task", "input_ids", "token_type_ids", "word_ids", "labels", SENTENCE_LABEL)
        ents = ("entities",) if STRATEGIES.has(self.masking, "uses_entities", unknown=True) else ()
        return base + ents + EXTRA_COLUMNS

    @classmethod
    def from_build(cls, out: "str | Path | Any", masking: str | None = None, **kw: Any) -> "DynamicMasking":
        """The configuration (vocabulary, seed, knobs) of the build in ``out`` (a directory or a
        :class:`zhmask.reader.Build`); ``masking`` defaults to the build's (``wwm`` for ``none``)."""
        from zhmask.reader import Build, read_manifest

        if isinstance(out, Build):
            manifest, path = out.manifest, out.out / "manifest.json"
        else:
            manifest, path = read_manifest(out), Path(out) / "manifest.json"
        cfg = manifest.get("config")
        if not isinstance(cfg, dict):
            raise ZhmaskError(f"cannot read the build configuration from {path}: no 'config' object")
        from zhmask.masking import STRATEGIES

        built = cfg.get("masking") or "none"
        name = masking or ("wwm" if STRATEGIES.has(built, "no_masks", unknown=False) else built)
        if "random_tokens" not in cfg:  # a build from before --random-tokens drew from the vocabulary
            cfg = {**cfg, "random_tokens": "vocab"}
        elif cfg["random_tokens"] == "unigram":
            listing = manifest.get("unigram_tables")
            if listing is None:  # a build from before unit tables drew from the row's own tokens
                cfg = {**cfg, "random_tokens": "row"}
            elif kw.get("tables") is None:
                from zhmask.masking.unigram import BuildTables

                kw["tables"] = BuildTables(path.parent, listing)
        return cls(name, config=cfg, **kw)

    # ------------------------------------------------------------------ the strategy
    def _build(self) -> None:
        from zhmask.masking import STRATEGIES
        from zhmask.masking.unigram import RESOURCE
        from zhmask.pipeline import TaskContext
        from zhmask.steps.tokenize import WordTokenizer

        cfg = self.config
        if cfg.random_tokens == "unigram" and self.tables is None:
            raise ZhmaskError("random_tokens='unigram' draws from the build's unit tables: use "
                              "DynamicMasking.from_build(out), or pass tables=, or random_tokens='vocab' or 'row'")
        self._tok = WordTokenizer(cfg.vocab, cfg.tokenizer, lowercase=cfg.lowercase)
        ctx = TaskContext(cfg, self._tok)
        if self.tables is not None:
            if getattr(self.tables, "vocab_size", 0) is None:  # a build's tables: ids checked against its vocabulary
                self.tables.vocab_size = self._tok.vocab_size
            ctx.resources[RESOURCE] = self.tables
        self._fn = STRATEGIES[cfg.masking](cfg, ctx)

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_fn"] = None
        d["_tok"] = None
        d["stats"] = Counter()
        return d

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def for_epoch(self, epoch: int) -> "DynamicMasking":
        import copy

        other = copy.copy(self)
        other.epoch = int(epoch)
        return other

    def mask_example(self, ex: Example, epoch: int | None = None):
        """The :class:`~zhmask.masking.base.MaskResult` of one example at ``epoch``."""
        if self._fn is None:
            self._build()
        e = self.epoch if epoch is None else int(epoch)
        res = call_mask(self._fn, ex, mask_rng(self.config.seed, ex.example_id, e), e)
        self.stats.update(res.stats)
        return res

    def mask_row(self, row: Mapping[str, Any], epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, labels) of one shard row at ``epoch``."""
        res = self.mask_example(row_to_example(row), epoch)
        return res.input_ids, res.labels

    def mask_batch(self, rows: Sequence[Mapping[str, Any]], epoch: int | None = None
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(input_ids, labels) of every row at ``epoch``, equal to :meth:`mask_row` row by row,
        masked at once through the strategy's batched path (``mask.mask_rows``, the one the
        static build uses) where it has one; the rows' keys hashed together (DrawsBatch)."""
        from zhmask.rng import DrawsBatch

        if self._fn is None:
            self._build()
        if not rows:
            return []
        e = self.epoch if epoch is None else int(epoch)
        exs = [row_to_example(r) for r in rows]
        gb = DrawsBatch()

        def seed(part: list[Example]) -> None:
            gb.prepare([(self.config.seed, ex.example_id, MASK_STAGE, e) for ex in part])

        fast = getattr(self._fn, "mask_rows", None)
        if fast is not None:
            def run(part: list[Example]):
                seed(part)
                return fast(part, gb.rows(), [e] * len(part))  # the epoch stands for the copy

            try:
                res = run(exs)
            except Exception as exc:  # no silent per-example path: name the row
                from zhmask.pipeline import narrow

                bad, err = narrow(run, exs)
                what = f"row {bad.example_id}" if bad is not None else "rows together (none alone)"
                err = err or exc
                raise ZhmaskError(f"masking {self.masking} failed on {what}: {type(err).__name__}: {err}") from err
            self.stats.update(res.stats)
            ends = np.cumsum(res.lens)
            return [(res.input_ids[b - n:b], res.labels[b - n:b]) for b, n in zip(ends.tolist(), res.lens.tolist())]
        seed(exs)  # a strategy without a batched path (none, a plugin's): example by example
        out = []
        for ex, g in zip(exs, gb.rows()):
            r = call_mask(self._fn, ex, g, e)
            self.stats.update(r.stats)
            out.append((r.input_ids, r.labels))
        return out

    # ------------------------------------------------------------------ collate_fn / map
    def __call__(self, batch: Sequence[Mapping[str, Any]] | Mapping[str, Any]):
        if isinstance(batch, Mapping):
            return self._map(batch)
        return self.collate(batch)

    def _map(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        ids0 = batch["input_ids"]
        batched = len(ids0) > 0 and not np.isscalar(ids0[0])
        out = dict(batch)  # every column this does not change stays (a set_transform returns only these)
        if not batched:
            inp, lab = self.mask_row(batch)
            out.update(input_ids=inp.tolist(), labels=lab.tolist())
            self._label_columns(out, [lab], [batch.get(k) for k in self._label_column_names()], False)
            return out
        keys = list(batch.keys())
        masked = self.mask_batch([{k: batch[k][i] for k in keys} for i in range(len(ids0))])
        out.update(input_ids=[m[0].tolist() for m in masked], labels=[m[1].tolist() for m in masked])
        self._label_columns(out, [m[1] for m in masked], [batch.get(k) for k in self._label_column_names()], True)
        return out

    def _label_column_names(self) -> tuple[str, ...]:
        return ("span_bounds",) if getattr(self._fn, "label_columns", None) is not None else ()

    def _label_columns(self, out: dict[str, Any], labels: list, own: list, batched: bool) -> None:
        """The columns the strategy derives from its labels (``span``: ``span_bounds``), for the
        labels of this epoch; rows of a task that declares the column, and so writes it itself
        (``span_bounds``: ERNIE-GEN, seq2seq, sentence_reorder), keep theirs."""
        from zhmask.labels import tasks_filling
        from zhmask.pipeline import label_columns

        if not labels:
            return
        got = label_columns(self._fn, np.concatenate(labels), [len(x) for x in labels])
        tasks = out.get("task")
        tasks = (list(tasks) if batched else [tasks]) if tasks is not None else [None] * len(labels)
        for (key, (flat, counts)), mine in zip(got.items(), own):
            cuts = np.cumsum(counts).tolist()
            vals = [flat[b - c:b].tolist() for b, c in zip(cuts, counts.tolist())]
            if mine is not None:
                mine = list(mine) if batched else [mine]
                keep = tasks_filling(key)   # once per column, not per row
                vals = [m if t in keep else v for v, m, t in zip(vals, mine, tasks)]
            out[key] = vals if batched else vals[0]

    def collate(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Rows masked at the current epoch and padded by :class:`zhmask.reader.Collator`
        (``next_sentence_label`` / ``token_labels`` added when the rows carry them)."""
        from zhmask.reader import Collator

        if self._fn is None:
            self._build()
        coll = Collator(self._tok.pad_id, self.pad_to_multiple_of, masker=self, return_tensors=self.return_tensors)
        return coll(rows)


# ---------------------------------------------------------------------- transformers interop
def whole_word_features(rows: Sequence[Mapping[str, Any]], boundaries: str = "chinese_ref",
                        pad_id: int = 0) -> list[dict[str, Any]]:
    """Features for transformers' ``DataCollatorForLanguageModeling(whole_word_mask=True)``.

    transformers 5 finds words from ``offset_mapping`` (a token continues the previous token's
    word when its start equals the previous end) and never masks ``special_tokens_mask``
    tokens.  zhmask rows carry no character offsets, so this writes offsets that encode the
    word boundaries: from ``chinese_ref`` (the Chinese-BERT-wwm recipe: a listed position
    continues a word, anything else starts one) or from ``word_ids`` (every zhmask word,
    Latin and digits included).  Original ids are restored from ``labels``; rows are padded to
    one length (the collator does not pad offsets).
    """
    if boundaries not in ("chinese_ref", "word_ids"):
        raise ZhmaskError(f"boundaries must be 'chinese_ref' or 'word_ids', got {boundaries!r}")
    n = max((len(r["input_ids"]) for r in rows), default=0)
    out = []
    for r in rows:
        ex = row_to_example(r)
        ids = ex.input_ids.astype(np.int64)
        L = len(ids)
        wid = np.asarray(ex.word_ids, dtype=np.int64)
        special = wid < 0
        cont = np.zeros(L, dtype=bool)
        if boundaries == "chinese_ref":
            ref = np.asarray(r.get("chinese_ref") or [], dtype=np.int64)
            cont[ref[(ref > 0) & (ref < L)]] = True
        else:
            cont[1:] = (wid[1:] == wid[:-1]) & (wid[1:] >= 0)
        cont &= ~special
        # one character per token, plus a gap of one before every word start: a continuation
        # token then starts where the previous one ends, a word start does not
        ends = np.cumsum(np.where(cont, 1, 2))
        offs = np.stack([ends - 1, ends], axis=1)
        offs[special] = 0
        pad = n - L
        out.append({
            "input_ids": np.r_[ids, np.full(pad, pad_id)].tolist(),
            "attention_mask": np.r_[np.ones(L, np.int64), np.zeros(pad, np.int64)].tolist(),
            "special_tokens_mask": np.r_[special.astype(np.int64), np.ones(pad, np.int64)].tolist(),
            "offset_mapping": np.r_[offs, np.zeros((pad, 2), np.int64)].tolist(),
        })
    return out
