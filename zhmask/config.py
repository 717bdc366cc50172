"""BuildConfig: every knob of a build, the seed included.

A config comes from CLI options, from a preset in ``pipelines/`` (``--pipeline NAME``), or
from a TOML file.  It is stored whole in the manifest and in every shard's schema metadata,
and its fingerprint decides whether an existing output directory may be resumed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zhmask.errors import ZhmaskError

# segmenters, entity detectors, engines, tasks and masking strategies: their registries (zhmask.registry)
FORMATS = ("auto", "text", "jsonl", "parquet", "arrow")
DOC_SEPS = ("line", "blank")
COMPRESSIONS = ("zstd", "lz4", "none")  # Arrow IPC buffer compression of the shards
PLM_UNITS = ("word", "token")  # plm: a segmented word moves as one unit of the factorisation order, or each token alone
PACKINGS = ("document", "full")  # mlm rows: one document's sentences, or filled across documents
DECODE_ERRORS = ("replace", "skip", "fail")
# where the 10% random branch draws (docs/masking.md): the unit's unigram table, the vocabulary (BERT),
# or the row's own tokens (what builds made before unit tables drew; DynamicMasking.from_build picks it for them)
RANDOM_TOKENS = ("unigram", "vocab", "row")
MAX_DUPE_FACTOR = 100  # BERT used 10; more copies than this is a mistake, not a recipe


@dataclass
class BuildConfig:
    # input
    inputs: list[str] = field(default_factory=list)
    format: str = "auto"
    text_field: str = "text"
    title_field: str | None = None
    source_field: str | None = None  # seq2seq fine-tuning pairs (--tasks seq2seq)
    target_field: str | None = None
    doc_sep: str = "line"
    on_decode_error: str = "replace"
    skip_bad_files: bool = False
    min_cjk_ratio: float = 0.0
    max_doc_mb: float = 1.0  # longer lines/records are cut into pieces at sentence ends
    # normalisation
    t2s: bool = False
    keep_unmapped: bool = False  # True: characters the vocabulary lacks stay (and become [UNK])
    # segmentation and entities
    segmenter: str = "rjieba"
    segmenter_model: str | None = None
    user_dict: list[str] = field(default_factory=list)
    hmm: bool = False
    entities: str = "lexicon"
    spacy_model: str | None = None
    lexicons: list[str] | None = None  # None: every lexicon in dictionaries/
    # tokenisation and packing
    vocab: str | None = None  # None: bundled bert-base-chinese vocab.txt
    tokenizer: str | None = None  # a tokenizer.json instead of vocab.txt
    lowercase: bool = True
    max_seq_length: int = 128
    short_seq_prob: float = 0.1
    packing: str = "document"  # "full": mlm rows filled across document boundaries (RoBERTa's FULL-SENTENCES)
    plm_units: str = "word"  # plm: the units of the factorisation order ("token": XLNet's original)
    # examples
    tasks: list[str] = field(default_factory=lambda: ["mlm"])
    masking: str = "none"
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    mask_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    random_tokens: str = "unigram"  # the random branch draws from the unit's tokens | "vocab": BERT's | "row"
    dupe_factor: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # strategy/task specific knobs
    # execution
    seed: int = 12345
    workers: int = 1
    engine: str = "local"
    ray_address: str | None = None
    docs_per_shard: int = 1000
    compression: str = "zstd"  # "none": shards datasets can memory-map (about 3x the bytes)
    shuffle: bool = True  # rows spread over the whole build in a seeded order (zhmask/write/shuffle.py)
    out: str = "zhmask-out"
    overwrite: bool = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BuildConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ZhmaskError(f"unknown config key(s): {', '.join(unknown)}")
        data = dict(data)
        if "mask_ratios" in data:
            data["mask_ratios"] = tuple(float(x) for x in data["mask_ratios"])
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path) -> "BuildConfig":
        try:  # imported here: a build from options alone never parses TOML (start-up time)
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ZhmaskError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ZhmaskError(f"config file {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data.get("build", data))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "BuildConfig":
        from zhmask.paths import preset_path

        cfg = cls.from_toml(preset_path(name))
        return dataclasses.replace(cfg, **overrides)

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mask_ratios"] = list(self.mask_ratios)
        return d

    def fingerprint(self) -> str:
        """Hash of everything that changes the output (not workers, engine, out, overwrite)."""
        d = self.to_dict()
        for k in ("workers", "engine", "ray_address", "out", "overwrite", "skip_bad_files"):
            d.pop(k, None)
        from zhmask import __version__
        from zhmask.schema import SCHEMA_VERSION

        # shards of another schema or another zhmask are never resumed into (nor mixed with)
        d["schema_version"] = SCHEMA_VERSION
        d["zhmask_version"] = __version__
        from zhmask.labels.ernie_gen import span_table_sha256

        table = span_table_sha256(self)  # the content of the span table an ERNIE-GEN build reads
        if table is not None:
            d["span_table_sha256"] = table
        from zhmask.registry import OUTPUT_KINDS, part_versions

        d["parts"] = part_versions(self, OUTPUT_KINDS)  # name@version: a changed part is never resumed into
        from zhmask.rng import RNG_VERSION

        d["rng"] = RNG_VERSION  # shards drawn by another scheme of random values are never resumed into
        from zhmask.steps.plan import UNIT_MAX_BYTES

        d["unit_max_bytes"] = UNIT_MAX_BYTES  # units cut elsewhere are never resumed into
        blob = json.dumps(d, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # ------------------------------------------------------------------ validation
    def validate(self) -> "BuildConfig":
        """Check every option before any work starts; raise ZhmaskError with one line."""
        _check_types(self)
        def choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
            if value not in allowed:
                raise ZhmaskError(f"--{name.replace('_', '-')}: {value!r} is not one of {', '.join(allowed)}")

        def prob(name: str, value: float, lo_open: bool = False) -> None:
            if not (0.0 <= value <= 1.0) or (lo_open and value == 0.0):
                raise ZhmaskError(f"--{name.replace('_', '-')} must be a probability in [0, 1], got {value}")

        choice("format", self.format, FORMATS)
        choice("doc_sep", self.doc_sep, DOC_SEPS)
        from zhmask.registry import registry, tokenizer_name

        parts = {kind: registry(kind) for kind in ("segmenter", "entities", "engine")}
        for kind, reg in parts.items():
            choice(kind, getattr(self, kind), tuple(reg.names()))
        choice("on_decode_error", self.on_decode_error, DECODE_ERRORS)
        choice("packing", self.packing, PACKINGS)
        choice("plm_units", self.plm_units, PLM_UNITS)
        choice("compression", self.compression, COMPRESSIONS)
        choice("random_tokens", self.random_tokens, RANDOM_TOKENS)
        prob("masked_lm_prob", self.masked_lm_prob)
        prob("short_seq_prob", self.short_seq_prob)
        prob("min_cjk_ratio", self.min_cjk_ratio)
        if len(self.mask_ratios) != 3 or any(r < 0 for r in self.mask_ratios) or abs(sum(self.mask_ratios) - 1) > 1e-6:
            raise ZhmaskError(f"--mask-ratios must be three non-negative numbers summing to 1, got {list(self.mask_ratios)}")
        if not 8 <= self.max_seq_length <= 8192:
            raise ZhmaskError(f"--max-seq-length must be between 8 and 8192, got {self.max_seq_length}")
        if self.max_predictions_per_seq < 1:
            raise ZhmaskError(f"--max-predictions-per-seq must be at least 1, got {self.max_predictions_per_seq}")
        if not 1 <= self.dupe_factor <= MAX_DUPE_FACTOR:
            raise ZhmaskError(f"--dupe-factor must be between 1 and {MAX_DUPE_FACTOR}, got {self.dupe_factor}")
        if self.workers < 1:
            raise ZhmaskError(f"--workers must be at least 1, got {self.workers}")
        if self.docs_per_shard < 1:
            raise ZhmaskError(f"--docs-per-shard must be at least 1, got {self.docs_per_shard}")
        for p in list(self.user_dict) + [x for x in (self.vocab, self.tokenizer, self.segmenter_model) if x]:
            if not Path(p).exists():
                raise ZhmaskError(f"file not found: {p}")
        for p in list(self.user_dict) + [x for x in (self.vocab, self.tokenizer) if x]:
            if not Path(p).is_file():
                raise ZhmaskError(f"not a file: {p}")
            try:
                with open(p, "rb") as fh:
                    fh.read(1)
            except OSError as exc:
                raise ZhmaskError(f"cannot read {p}: {exc.strerror or exc}") from None
        if not 0.001 <= self.max_doc_mb <= 1024:
            raise ZhmaskError(f"--max-doc-mb must be between 0.001 and 1024, got {self.max_doc_mb}")
        # the selected parts' own checks (a pkuseg model, lexicons, a spaCy pipeline), found before
        # any work starts, so a misspelt path fails at once instead of after --out was claimed
        for kind, reg in parts.items():
            reg.validate([getattr(self, kind)], self)
        registry("tokenizer").validate([tokenizer_name(self)], self)  # its special tokens, before any work
        if not self.tasks:
            raise ZhmaskError("--tasks needs at least one task")
        from zhmask.labels import TASKS
        from zhmask.masking import STRATEGIES

        for t in self.tasks:
            if t not in TASKS.entries:
                raise ZhmaskError(f"--tasks: unknown task {t!r}; known: {', '.join(TASKS.names())}")
        if self.masking not in STRATEGIES.entries:
            raise ZhmaskError(f"--masking: unknown strategy {self.masking!r}; known: {', '.join(STRATEGIES.names())}")
        other = ", ".join(t for t in self.tasks if not TASKS.has(t, "full_packing"))  # (clm rows are always packed so)
        if self.packing == "full" and other:
            raise ZhmaskError(f"--packing full fills mlm rows across documents; it makes no sense for --tasks {other} "
                              "(pair, sentence and generation tasks keep their documents apart): use --tasks mlm")
        known = {**STRATEGIES.declared([self.masking]), **TASKS.declared(list(self.tasks))}
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ZhmaskError(f"--option {unknown[0]}: not a knob of --masking {self.masking} or --tasks "
                              f"{','.join(self.tasks)}; known: {', '.join(sorted(known)) or 'none'}")
        STRATEGIES.validate([self.masking], self)
        TASKS.validate(list(self.tasks), self)
        return self


_TYPE_CHECKS = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "str | None": (lambda v: v is None or isinstance(v, str), "a string"),
    "list[str]": (lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v), "a list of strings"),
    "list[str] | None": (lambda v: v is None or (isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)),
                         "a list of strings"),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "a table of options"),
}


def _check_types(cfg: "BuildConfig") -> None:
    """Values from TOML or the library API have the declared types (one line otherwise)."""
    for f in dataclasses.fields(cfg):
        check = _TYPE_CHECKS.get(str(f.type))
        v = getattr(cfg, f.name)
        if check is not None and not check[0](v):
            raise ZhmaskError(f"--{f.name.replace('_', '-')} must be {check[1]}, got {v!r}")
