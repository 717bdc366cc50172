"""The per-document pipeline and the per-unit job every engine runs.

``Pipeline(config)`` builds the stages once per worker process (segmenter, tokenizer,
lexicons); ``document(raw)`` runs read -> normalise -> sentences -> segment -> entities ->
tokens on one record; ``run_unit(unit, raws, out_dir)`` turns one work unit into one shard and
its stats.  Every random value is a function of (seed, key, stage, index) (zhmask.rng), so a unit's shard is the
same whichever process, engine or order runs it.
"""
from __future__ import annotations

import gc
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from zhmask import __version__
from zhmask.config import BuildConfig
from zhmask.masking.base import call_mask
from zhmask.record import SENTENCE_LABEL, Document, Example
from zhmask.masking.units import chinese_ref_batch, cjk_token_table
from zhmask.rng import Draws, DrawsBatch, rng_for, stable_seeds
from zhmask.steps.read import RawDoc


MASK_BATCH = 256  # examples masked together (their keys hashed at once, their draws one array)
# characters of text the document stages take at once (Pipeline.documents): bounds the memory of
# their per-character arrays and of rjieba's (word, tag) tuples (about 150 bytes a character in
# all) whatever the unit's size.  2M characters peaked 140 MiB higher on units of long news
# documents (543 against 416 MiB, 80 MB build); 256k costs those builds about 5% more CPU and
# changes nothing for units of short documents (1,000 paragraphs are about 100k characters).
JOIN_CHARS = 1 << 18


def _cjk_share(text: str) -> float:
    from zhmask.steps.normalize import cjk_ratio

    return cjk_ratio(text)


@dataclass
class TaskContext:
    """What a task generator or masking factory may use."""

    config: BuildConfig
    tok: Any  # WordTokenizer
    events: Counter = field(default_factory=Counter)
    ent_cache: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)  # shared per-worker objects (lexicons, indexes)
    # the pipeline's normaliser, and its document stages for texts a task makes (Pipeline.enrich)
    normalize: Any = None
    enrich: Any = None
    # the unit's document ids (set by Pipeline.examples) and, per (doc_id, stage, *extra), the
    # key of its values, hashed for all of the unit's documents at a stage's first use
    unit_ids: list = field(default_factory=list)
    _unit_set: set = field(default_factory=set)
    _keys: dict = field(default_factory=dict)
    _fetched: set = field(default_factory=set)

    def set_unit(self, doc_ids: list) -> None:
        self.unit_ids = list(doc_ids)
        self._unit_set = set(self.unit_ids)
        self._keys = {}
        self._fetched = set()

    def rng(self, doc_id: str, stage: str, *extra: object) -> Draws:
        """``rng_for(seed, doc_id, stage, *extra)``.  For a document of the unit, the keys of a
        stage are hashed once for all the unit's documents."""
        key = (doc_id, stage, *extra)
        try:
            k = self._keys.get(key)
        except TypeError:  # an unhashable part: hashed alone
            return rng_for(self.config.seed, doc_id, stage, *extra)
        if k is None:
            suffix = (stage, *extra)
            if doc_id not in self._unit_set or suffix in self._fetched:
                return rng_for(self.config.seed, doc_id, stage, *extra)
            self._fetched.add(suffix)
            seed = self.config.seed
            keys = self._keys
            for d, s in zip(self.unit_ids, stable_seeds([(seed, d, stage, *extra) for d in self.unit_ids])):
                keys[(d, *suffix)] = s
            k = keys[key]
        return Draws(k)


def new_stats() -> dict[str, Any]:
    return {
        "documents_read": 0,
        "documents_written": 0,
        "documents_rejected": {},
        "examples": {},
        "tokens": 0,
        "unk_tokens": 0,
        "bytes": 0,
        "events": {},
        "labels": {},
        "masking": {},
    }


def merge_stats(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add ``part`` into ``total`` (numbers add, dicts merge recursively)."""
    for k, v in part.items():
        if isinstance(v, dict):
            merge_stats(total.setdefault(k, {}), v)
        elif isinstance(v, list):  # reported locations (decode errors): kept in order, capped
            cur = total.setdefault(k, [])
            cur.extend(v[: max(0, 1000 - len(cur))])
        elif isinstance(v, (int, float)):
            total[k] = total.get(k, 0) + v
    return total


def _bump(d: dict, key: str, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


class Pipeline:
    def __init__(self, config: BuildConfig) -> None:
        from zhmask.labels import TASKS
        from zhmask.masking import STRATEGIES
        from zhmask.paths import dictionaries_dir
        from zhmask.steps.entities import ENTITY_DETECTORS, make_entity_detector
        from zhmask.steps.normalize import Normalizer, vocab_equivalents
        from zhmask.steps.segment import make_segmenter
        from zhmask.steps.tokenize import make_tokenizer

        # the parts the configuration names, each made by its registry entry (zhmask.registry)
        self.config = config
        self.tok = make_tokenizer(config)
        # characters the vocabulary lacks become their equivalent in it (unless --keep-unmapped)
        self.normalizer = Normalizer(config.t2s, None if config.keep_unmapped else vocab_equivalents(self.tok))
        self.segmenter = make_segmenter(config.segmenter, user_dicts=list(config.user_dict), hmm=config.hmm,
                                        model=config.segmenter_model)
        self.entities = make_entity_detector(config.entities, spacy_model=config.spacy_model, lexicons=config.lexicons)
        self._batched_entities = ENTITY_DETECTORS.has(config.entities, "batched")  # detect_joined over a unit
        self.ctx = TaskContext(config, self.tok, normalize=self.normalizer, enrich=self.enrich)
        self.tasks = [(name, TASKS[name]) for name in config.tasks]
        self.mask = STRATEGIES[config.masking](config, self.ctx)
        self._cjk_table = cjk_token_table(self.tok)
        self._unit: int | None = None  # the unit being built (the rows' ``unit`` column)
        self.dictionaries = dictionaries_dir()
        # stage name -> [wall, CPU] seconds of the batched document stages, when a benchmark sets it
        self.stage_times: dict[str, list[float]] | None = None

    # ------------------------------------------------------------------ one document
    def document(self, raw: RawDoc, events: Counter | None = None) -> tuple[Document | None, str | None]:
        """The enriched document, or (None, rejection reason): a unit of one (:meth:`documents`)."""
        return self.documents([raw], events)[0]

    def _start(self, raw: RawDoc) -> tuple[Document | None, str | None]:
        """The document with its normalised text and title, or (None, rejection reason)."""
        if raw.reject:
            return None, raw.reject
        cfg = self.config
        text = self.normalizer(raw.text, keep_newlines=cfg.doc_sep == "blank")
        if not text:
            return None, "empty"
        if cfg.min_cjk_ratio > 0 and _cjk_share(text) < cfg.min_cjk_ratio:
            return None, "low_cjk_ratio"
        title = self.normalizer(raw.title) if raw.title else None
        return Document(raw.id, text, title=title, meta=raw.meta), None

    # ------------------------------------------------------------------ a unit's documents
    def documents(self, raws: list[RawDoc], events: Counter | None = None
                  ) -> list[tuple[Document | None, str | None]]:
        """Per raw document, the enriched document or (None, rejection reason); the stages run
        over all the documents at once.  A crash raises :class:`DocumentCrash` naming the document
        (see :meth:`documents_or_crash`)."""
        out, ev, _ = self.documents_or_crash(raws)
        if events is not None:
            events.update(ev)
        return out

    def documents_or_crash(self, raws: list[RawDoc]
                           ) -> tuple[list[tuple[Document | None, str | None]], Counter, list[bool | None]]:
        """:meth:`_documents_batched`; where it raises, the unit is bisected (the same stages on
        halves) down to the document that raises alone, and :class:`DocumentCrash` names it."""
        from zhmask.errors import ZhmaskError

        try:
            return self._documents_batched(raws)
        except ZhmaskError:
            raise
        except Exception as exc:
            bad, err = narrow(self._documents_batched, raws)
            if bad is None:
                raise DocumentCrash(f"documents {raws[0].id} .. {raws[-1].id} crashed the pipeline together "
                                    f"(none alone): {type(exc).__name__}: {exc}") from exc
            raise DocumentCrash(f"document {bad.id} crashed the pipeline: {type(err).__name__}: {err}") from err

    def _documents_batched(self, raws: list[RawDoc]
                           ) -> tuple[list[tuple[Document | None, str | None]], Counter, list[bool | None]]:
        """What :meth:`documents` returns, the events, and per document whether its tokens hold
        [UNK] (None: not known, look).

        The cyclic garbage collector is paused meanwhile: the stages allocate a unit's words at
        once (jieba's (word, tag) tuples), which would otherwise set off full collections over
        everything alive, for no garbage (about a fifth of these stages' time)."""
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._documents_batched_gc(raws)
        finally:
            if paused:
                gc.enable()

    def _documents_batched_gc(self, raws: list[RawDoc]
                              ) -> tuple[list[tuple[Document | None, str | None]], Counter, list[bool | None]]:
        events: Counter = Counter()
        out = [self._start(raw) for raw in raws]
        started = [k for k, (doc, _) in enumerate(out) if doc is not None]
        has_unk: list[bool | None] = [None] * len(raws)
        for k, u in zip(started, self.enrich([out[k][0] for k in started], events)):  # type: ignore[misc]
            has_unk[k] = u
        for k, (doc, _) in enumerate(out):
            if doc is not None and len(doc.tokens) == 0:
                out[k] = (None, "no_tokens")
        return out, events, has_unk

    def enrich(self, docs: list[Document], events: Counter | None = None) -> list[bool]:
        """Sentences, words, entities and tokens of ``docs`` (texts normalised, not empty): the
        stages run over the texts joined, :data:`JOIN_CHARS` characters at a time (a text the
        separator could join to its neighbour alone); returns per document whether its tokens
        hold [UNK].  What every document gets, those read from the input and those a task makes
        (titles, targets: ``ctx.enrich``)."""
        from zhmask.steps.segment import joinable

        events = events if events is not None else Counter()
        has_unk: list[bool] = [False] * len(docs)
        batch: list[Document] = []
        where: list[int] = []
        size = 0

        def flush() -> None:
            for k, u in zip(where, self._enrich_joined(batch, events)):
                has_unk[k] = u
            batch.clear()
            where.clear()

        for k, doc in enumerate(docs):
            if joinable(doc.text):
                if batch and size + len(doc.text) > JOIN_CHARS:
                    flush()
                    size = 0
                batch.append(doc)
                where.append(k)
                size += len(doc.text) + 1
            else:  # a text the separator could join to its neighbour: a unit of its own
                has_unk[k] = self._enrich_joined([doc], events)[0]
        if batch:
            flush()
        return has_unk

    def _enrich_joined(self, docs: list[Document], events: Counter) -> list[bool]:
        """Sentences, words, entities and tokens of documents whose texts are
        :func:`~zhmask.steps.segment.joinable` (or of one document alone), the stages run once over
        the texts joined by a separator; returns per document whether its tokens hold [UNK].  The
        documents' arrays are views of the unit's."""
        from zhmask.record import Span, Tokens, Words
        from zhmask.steps.segment import JOIN, segment_joined, split_at_sentences_joined
        from zhmask.steps.sentences import split_sentences_joined

        lap = _Laps(self.stage_times)
        texts = [d.text for d in docs]
        nd = len(texts)
        joined = JOIN.join(texts)
        lens = np.fromiter(map(len, texts), dtype=np.int64, count=nd)
        d_start = np.cumsum(lens + 1) - (lens + 1)
        d_end = d_start + lens
        lap("documents (join, views)")
        # sentences
        s_start, s_end, s_count = split_sentences_joined(joined, d_start, d_end)
        s_first = np.cumsum(s_count) - s_count
        lap("sentences")
        # words: segment, cut at sentence ends, merge for the tokenizer
        words, _ = segment_joined(self.segmenter, joined, texts, d_start)
        inner = np.ones(len(s_start), dtype=bool)
        inner[s_first] = False  # a sentence that begins a document: no word crosses its start
        words, cuts = split_at_sentences_joined(words, s_start[inner])
        tok = self.tok
        runs = tok.joined_runs(joined)
        words, merges = tok.align_joined(joined, texts, d_start, words, runs)
        if cuts:
            events["word_cut_at_sentence_end"] += cuts
        if merges:
            events["words_merged_for_tokenizer"] += merges
        lap("segment (+ POS, align)")
        w_first = np.searchsorted(words.starts, d_start)
        w_stop = np.searchsorted(words.starts, d_end)
        # per-document views: offsets from the document's start
        w_doc = np.repeat(d_start, np.diff(np.append(w_first, len(words))))
        w_s = (words.starts - w_doc).astype(np.int32)
        w_e = (words.ends - w_doc).astype(np.int32)
        sent = np.empty((len(s_start), 2), dtype=np.int32)
        s_doc = np.repeat(d_start, s_count)
        sent[:, 0] = s_start - s_doc
        sent[:, 1] = s_end - s_doc
        pos = words.pos
        doc_words = []
        for d, a, b, sa, sb in zip(docs, w_first.tolist(), w_stop.tolist(), s_first.tolist(),
                                   (s_first + s_count).tolist()):
            d.words = w = Words(w_s[a:b], w_e[a:b], pos[a:b])
            doc_words.append(w)
            d.sentences = sent[sa:sb]
        lap("documents (join, views)")
        # entities
        det = self.entities
        try:
            if not self._batched_entities:  # the detector's trait: document by document
                raise ValueError("no batched detection")
            e_s, e_e, e_t = det.detect_joined(joined, words)
        except ValueError:  # per document
            for d, w in zip(docs, doc_words):  # sorted, as the unit-level packing needs them
                d.entities = sorted(det.detect(d.text, w), key=lambda sp: (sp.start, sp.end))
        else:
            e_doc = np.searchsorted(d_start, e_s, side="right") - 1
            off = d_start[e_doc]
            spans = list(map(Span, (e_s - off).tolist(), (e_e - off).tolist(), e_t))
            bounds = np.searchsorted(e_doc, np.arange(nd + 1)).tolist()
            for d, a, b in zip(docs, bounds, bounds[1:]):
                d.entities = spans[a:b]
        lap("entities")
        # tokens
        try:
            t = tok.tokenize_joined(joined, words, runs)
        except (UnicodeEncodeError, ValueError):  # a lone surrogate, the exact tokenizer: one by one
            for d, w in zip(docs, doc_words):
                d.tokens = tok.tokenize(d.text, w)
            lap("tokenise")
            return [bool(tok.unk_id in d.tokens.ids) for d in docs]
        lap("tokenise")
        t_first = np.searchsorted(t.starts, d_start).tolist() + [len(t)]
        t_count = np.diff(t_first)
        t_doc = np.repeat(np.arange(nd), t_count)
        t_s = (t.starts - d_start[t_doc]).astype(np.int32)
        t_e = (t.ends - d_start[t_doc]).astype(np.int32)
        t_w = (t.word - w_first[t_doc]).astype(np.int32)
        ids = t.ids
        for d, a, b in zip(docs, t_first, t_first[1:]):
            d.tokens = Tokens(ids[a:b], t_s[a:b], t_e[a:b], t_w[a:b])
        unk = np.zeros(nd, dtype=bool)
        unk[t_doc[ids == tok.unk_id]] = True
        lap("documents (join, views)")
        return unk.tolist()

    # ------------------------------------------------------------------ examples
    def unit_table(self, docs: list[Document]):
        """The unigram table of ``docs`` (a unit's documents): :mod:`zhmask.masking.unigram`."""
        from zhmask.masking.unigram import UnitTable

        return UnitTable.count([d.tokens.ids for d in docs if d.tokens is not None], self.tok.special_ids,
                               self.tok.vocab_size)

    def examples(self, docs: list[Document], unit: int | None = None, table=None) -> Iterable[Example]:
        """The examples of the tasks over ``docs``, the documents of one unit (``unit``: its
        index, written in the rows' ``unit`` column); ``--random-tokens unigram`` masks them with
        ``table`` (default: :meth:`unit_table` of ``docs``)."""
        from zhmask.masking.unigram import RESOURCE, CurrentUnit

        self.ctx.ent_cache = {}
        self.ctx.set_unit([d.id for d in docs])
        self._unit = unit
        if self.config.random_tokens == "unigram":
            self.ctx.resources[RESOURCE] = CurrentUnit(unit, table if table is not None else self.unit_table(docs))
        for _, gen in self.tasks:
            yield from gen(docs, self.ctx)

    def chinese_refs(self, exs: list[Example]) -> list[np.ndarray | None]:
        """Each example's ``chinese_ref`` from its unmasked ids (None where the example carries its
        own), all at once."""
        todo = [i for i, ex in enumerate(exs) if ex.extra.get("chinese_ref") is None]
        refs: list[np.ndarray | None] = [None] * len(exs)
        got = chinese_ref_batch([exs[i].input_ids for i in todo], [exs[i].word_ids for i in todo], self._cjk_table)
        for i, r in zip(todo, got):
            refs[i] = r
        return refs

    def masked_block(self, exs: list[Example], rngs: DrawsBatch, refs: list | None = None):
        """The schema rows of ``exs``, ``dupe_factor`` differently masked copies of each (copy k
        of an example drawn from ``rng_for(seed, example_id, "mask", k)``, the values
        ``zhmask.masking.dynamic`` gives epoch k; ``rngs`` prepared by :meth:`mask_keys`), as one
        column block, and their masking statistics: (Block, dict).  ``refs``: the examples'
        ``chinese_ref`` (:meth:`chinese_refs`), computed over the batch when not given.
        Strategies with a batched path (``mask.mask_rows``) mask the batch's concatenation; a
        strategy without one (``none``, a plugin's) masks example by example.  An example's extra
        columns become columns, and replace a base column where a task sets one (``clm``'s
        ``labels``).  tests/oracle.py's ``example_rows`` is the plain per-example version."""
        import pyarrow as pa

        from zhmask.masking.units import chinese_ref_rows
        from zhmask.schema import I32
        from zhmask.write.arrays import Block, ListColumn

        extra_keys: set = set()
        for ex in exs:
            if ex.extra:
                extra_keys.update(ex.extra)
        n = self.config.dupe_factor
        rows = exs if n == 1 else [ex for ex in exs for _ in range(n)]
        fast = getattr(self.mask, "mask_rows", None)
        if fast is not None:
            copies = np.tile(np.arange(n), len(exs))  # row i is copy i % n (knowledge's stages read it)
            res = fast(rows, rngs.rows(), copies)  # ValueError on a malformed row: the caller bisects
            rb, lens = res.rows, res.lens
            input_ids, labels = ListColumn(res.input_ids, lens), ListColumn(res.labels, lens)
            word_ids = ListColumn(rb.wid.astype(np.int32), lens)  # the rows' word ids (int32 already)
            mstats = res.stats
        else:  # a strategy without a batched path (none, a plugin's): example by example, written as columns all the same
            rb = None
            got = [call_mask(self.mask, ex, g, i % n) for i, (ex, g) in enumerate(zip(rows, rngs.rows()))]
            mstats = {}
            for r in got:
                for key, c in r.stats.items():
                    mstats[key] = mstats.get(key, 0) + int(c)
            input_ids = ListColumn.from_values([r.input_ids for r in got], I32)
            labels = ListColumn.from_values([r.labels for r in got], I32)
            word_ids = ListColumn.from_values([ex.word_ids for ex in rows], I32)
        cols: dict[str, Any] = {
            "doc_id": [ex.doc_id for ex in rows],
            "example_id": ([ex.example_id for ex in rows] if n == 1 else
                           [f"{ex.example_id}@{k}" for ex in exs for k in range(n)]),
            "task": [ex.task for ex in rows],
            "input_ids": input_ids,
            "token_type_ids": ListColumn.from_values([ex.token_type_ids for ex in rows], pa.int8()),
            "word_ids": word_ids,
            "labels": labels,
            SENTENCE_LABEL: [int(ex.label) for ex in rows],
            "entities": [ex.entities for ex in rows],
            "unit": [self._unit] * len(rows),
        }
        if refs is None and rb is not None and "chinese_ref" not in extra_keys:
            cols["chinese_ref"] = ListColumn(*chinese_ref_rows(rb, self._cjk_table))
        else:
            if refs is None:
                refs = self.chinese_refs(exs)
            if n > 1:
                refs = [r for r in refs for _ in range(n)]
            cols["chinese_ref"] = [r if ex.extra.get("chinese_ref") is None else ex.extra["chinese_ref"]
                                   for ex, r in zip(rows, refs)]
        for key in extra_keys - {"chinese_ref"}:
            if key not in _BASE_COLUMNS:
                cols[key] = [ex.extra.get(key) for ex in rows]
                continue
            # a task's own value of a base column (clm's labels) replaces it in the rows that carry one
            col = cols[key]
            if isinstance(col, ListColumn):
                o = col.offsets()
                vals = [None if col.valid is not None and not col.valid[i] else col.flat[o[i]:o[i + 1]]
                        for i in range(len(rows))]
            else:
                vals = list(col)
            for i, ex in enumerate(rows):
                if key in ex.extra:
                    vals[i] = ex.extra[key]
            cols[key] = (ListColumn.from_values(vals, pa.int8() if key == "token_type_ids" else I32)
                         if isinstance(col, ListColumn) else vals)
        if getattr(self.mask, "label_columns", None) is not None:
            if rb is not None:
                lab_flat, lab_lens = res.labels, lens
            else:
                lab_lens = np.array([len(r.labels) for r in got], dtype=np.int64)
                lab_flat = np.concatenate([r.labels for r in got]) if got else np.zeros(0, dtype=np.int32)
            for key, (flat, counts) in label_columns(self.mask, lab_flat, lab_lens).items():
                if key in extra_keys:  # a task's own column (ERNIE-GEN's span_bounds) is kept
                    own = cols[key]
                    cuts = np.cumsum(counts).tolist()
                    cols[key] = [v if v is not None else flat[b - c:b]
                                 for v, b, c in zip(own, cuts, counts.tolist())]
                else:
                    cols[key] = ListColumn(flat, counts)
        return Block(len(rows), cols), mstats

    def mask_batch(self, batch: list[Example], rngs: DrawsBatch, stats: dict[str, Any]) -> list:
        """The rows of a mask batch (at most MASK_BATCH examples, in order): ``[Block]`` from
        :meth:`masked_block` (``[]`` for no examples).  A crash is bisected down to the example
        that raises alone and raised as :class:`DocumentCrash` naming it.  The masking statistics
        are added to ``stats``."""
        from zhmask.errors import ZhmaskError

        def block(exs: list[Example]) -> tuple[list, dict]:
            if not exs:
                return [], {}
            rngs.prepare(self.mask_keys(exs))  # the keys of the examples' masked copies, hashed at once
            got, mstats = self.masked_block(exs, rngs)
            return [got], mstats

        try:
            items, mstats = block(batch)
        except ZhmaskError:
            raise
        except Exception as exc:
            bad, err = narrow(block, batch)
            if bad is None:
                raise DocumentCrash(f"masking {self.config.masking} crashed on examples {batch[0].example_id} .. "
                                    f"{batch[-1].example_id} together (none alone): {type(exc).__name__}: {exc}") from exc
            raise DocumentCrash(f"masking {self.config.masking} crashed on example {bad.example_id} "
                                f"(document {bad.doc_id}): {type(err).__name__}: {err}") from err
        masking = stats["masking"]
        for key, n in mstats.items():
            masking[key] = masking.get(key, 0) + int(n)
        return items

    def probe(self, raw: RawDoc) -> None:
        """Run one document alone through every stage, writing nothing: what the engines rerun
        to find the document that kills a worker process."""
        doc, _ = self.document(raw)
        if doc is not None:
            exs = list(self.examples([doc]))
            rngs, stats = DrawsBatch(), new_stats()
            for i in range(0, len(exs), MASK_BATCH):
                self.mask_batch(exs[i:i + MASK_BATCH], rngs, stats)

    def mask_keys(self, exs: list[Example]) -> list[tuple]:
        """The ``rng_for`` keys of every masked copy of ``exs``, in order (for a DrawsBatch)."""
        seed, n = self.config.seed, self.config.dupe_factor
        return [(seed, ex.example_id, "mask", k) for ex in exs for k in range(n)]

    # ------------------------------------------------------------------ one unit
    def run_unit(self, unit: int, raws: list[RawDoc], out_dir: Path,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """One work unit -> one shard and its stats (``data/shard-NNNNN.arrow`` and ``.stats.json``);
        ``extra``: more entries of the stats file (the unit's input ranges and their checksums)."""
        with fewer_collections():
            return self._run_unit(unit, raws, out_dir, extra or {})

    def _run_unit(self, unit: int, raws: list[RawDoc], out_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
        from zhmask.schema import schema_with_metadata
        from zhmask.write import FORMAT
        from zhmask.write.shards import ShardWriter, shard_file, unit_dir, write_json_atomic

        stats = new_stats()
        events: Counter = Counter()
        self.ctx.events = events
        docs: list[Document] = []
        decode_errors: list[str] = []
        unk_chars: Counter = Counter()
        self.normalizer.mapped.clear()  # the characters mapped to their vocabulary equivalent in this unit
        batched, doc_events, has_unk = self.documents_or_crash(raws)  # the unit's documents at once
        events.update(doc_events)
        unk_id = self.tok.unk_id
        for k, raw in enumerate(raws):
            stats["documents_read"] += 1
            stats["bytes"] += raw.nbytes
            for e in raw.events:  # reader events: long_line_piece, invalid_utf8_replaced, ...
                events[e] += 1
            if (raw.reject in ("invalid_utf8", "lone_surrogate") or "invalid_utf8_replaced" in raw.events
                    or "lone_surrogate_replaced" in raw.events) and len(decode_errors) < 100:
                decode_errors.append(f"{raw.where} ({'skipped' if raw.reject else 'replaced'})")
            doc, reason = batched[k]
            unk = has_unk[k]
            if doc is None:
                _bump(stats["documents_rejected"], reason or "unknown")
                continue
            if unk is None:
                unk = doc.tokens is not None and unk_id in doc.tokens.ids
            if unk:  # which characters became [UNK]
                for i in np.flatnonzero(doc.tokens.ids == unk_id)[:1000].tolist():
                    unk_chars[doc.text[int(doc.tokens.starts[i]):int(doc.tokens.ends[i])][:16]] += 1
            docs.append(doc)
        if decode_errors:
            stats["decode_errors"] = decode_errors
        if unk_chars:
            stats["unk_chars"] = dict(unk_chars.most_common(100))
        written: set[str] = set()
        shard = Path(out_dir) / unit_dir(self.config.shuffle) / shard_file(unit, FORMAT)
        table = None
        if self.config.random_tokens == "unigram":  # the unit's unigram table, beside the shards
            from zhmask.masking.unigram import table_file, write_table

            table = self.unit_table(docs)
            rel = table_file(unit)
            stats["unigram"] = {"file": rel, "sha256": write_table(Path(out_dir) / rel, table),
                                "tokens": table.total, "distinct": len(table.ids)}
        schema = schema_with_metadata(self.config_for_metadata(), __version__, self.tok.vocab_size)
        from zhmask.errors import ZhmaskError

        last = "none"
        rngs = DrawsBatch()
        full_packing = self.config.packing == "full"

        def mask_batch(batch: list[Example], w: ShardWriter) -> None:
            ids = [ex.input_ids for ex in batch]
            try:  # [UNK] tokens of the batch at once
                if not all(type(x) is np.ndarray and x.ndim == 1 for x in ids):
                    raise TypeError
                stats["unk_tokens"] += int(np.count_nonzero(np.concatenate(ids) == unk_id))
            except Exception:
                for x in ids:
                    stats["unk_tokens"] += int(np.count_nonzero(x == unk_id))
            for item in self.mask_batch(batch, rngs, stats):
                w.write_block(item)

        with ShardWriter(shard, schema, self.config.compression, FORMAT) as w:
            gen = iter(self.examples(docs, unit, table))
            batch: list[Example] = []
            while True:
                try:
                    ex = next(gen)
                except StopIteration:
                    break
                except (ZhmaskError, DocumentCrash):
                    raise
                except Exception as exc:  # name what crashed: the unit, its documents, the last example
                    span = f"{docs[0].id} .. {docs[-1].id}" if docs else "none"
                    raise DocumentCrash(f"a task generator crashed in unit {unit} (documents {span}) after example "
                                        f"{last}: {type(exc).__name__}: {exc}") from exc
                last = ex.example_id
                written.add(ex.doc_id)
                if full_packing or ex.extra.get("doc_bounds") is not None:  # a row filled across documents writes every document it holds
                    written.update(src["doc_id"] for src in ex.extra["segment_sources"])
                _bump(stats["examples"], ex.task)
                if ex.label >= 0:
                    _bump(stats["labels"].setdefault(ex.task, {}), str(ex.label))
                n_tok = int(len(ex.input_ids))
                stats["tokens"] += n_tok  # ([UNK] tokens: counted per mask batch)
                batch.append(ex)
                if len(batch) >= MASK_BATCH:
                    mask_batch(batch, w)
                    batch = []
            if batch:
                mask_batch(batch, w)
        for doc in docs:
            if doc.id in written:
                stats["documents_written"] += 1
            else:
                _bump(stats["documents_rejected"], "no_examples_for_tasks")
        stats["events"] = dict(events)
        if self.normalizer.mapped:  # (texts, titles, and what tasks normalise: seq2seq targets)
            stats["mapped_chars"] = dict(sorted(self.normalizer.mapped.items()))
        stats["shard"] = {"file": shard.relative_to(out_dir).as_posix(), **w.record()}
        stats["unit"] = unit
        stats.update(extra)
        write_json_atomic(shard.with_suffix(".stats.json"), stats)
        return stats

    def config_for_metadata(self) -> dict[str, Any]:
        d = self.config.to_dict()
        for k in ("workers", "engine", "ray_address", "out", "overwrite", "skip_bad_files"):
            d.pop(k, None)
        return d


_BASE_COLUMNS = frozenset(("doc_id", "example_id", "task", "input_ids", "token_type_ids", "word_ids", "labels",
                           SENTENCE_LABEL, "entities"))  # what example_row sets before the extra columns


class _Laps:
    """``lap(name)`` adds the wall and CPU time since the previous lap to ``times[name]``."""

    def __init__(self, times: dict[str, list[float]] | None) -> None:
        self.times = times
        if times is not None:
            import time

            self._clock = (time.perf_counter, time.process_time)
            self._last = (time.perf_counter(), time.process_time())

    def __call__(self, name: str) -> None:
        if self.times is None:
            return
        now = (self._clock[0](), self._clock[1]())
        acc = self.times.setdefault(name, [0.0, 0.0])
        acc[0] += now[0] - self._last[0]
        acc[1] += now[1] - self._last[1]
        self._last = now


@contextmanager
def fewer_collections(young: int = 50_000):
    """Run the block with the cyclic garbage collector's young generation collected every
    ``young`` allocations instead of 700 (restored afterwards).  A unit allocates millions of
    small objects that reference counting frees, almost none in cycles; the default threshold
    spends 4-8% of a build's CPU traversing them."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], young), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class DocumentCrash(Exception):
    """A stage raised on one document; the message names it (picklable across processes)."""


def narrow(run: Callable[[list], Any], items: list) -> tuple[Any, BaseException | None]:
    """The item that makes ``run([item])`` raise, and its exception, found by bisection after
    ``run(items)`` raised: about log2(len(items)) runs on halves, then one on the item.
    (None, None) when no single item raises alone (the failure needs several together)."""
    part = list(items)
    while len(part) > 1:
        half = part[: len(part) // 2]
        try:
            run(half)
        except Exception:
            part = half
        else:
            part = part[len(part) // 2:]
    try:
        run(part)
    except Exception as exc:
        return part[0], exc
    return None, None


def label_columns(mask, labels, lens) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The columns a strategy derives from the labels it wrote (``mask.label_columns``, e.g.
    ``span``'s ``span_bounds``) for rows of lengths ``lens`` concatenated in ``labels``: name ->
    (flat values, count per row); empty for strategies that add none."""
    fn = getattr(mask, "label_columns", None)
    return {} if fn is None else fn(np.asarray(labels), np.asarray(lens, dtype=np.int64))


def example_row(ex: Example, input_ids: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    row: dict[str, Any] = {
        "doc_id": ex.doc_id,
        "example_id": ex.example_id,
        "task": ex.task,
        "input_ids": input_ids,
        "token_type_ids": ex.token_type_ids,
        "word_ids": ex.word_ids,
        "labels": labels,
        SENTENCE_LABEL: int(ex.label),
        "entities": ex.entities,
    }
    row.update(ex.extra)
    return row
