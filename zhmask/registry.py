"""Declared parts: one registry per kind of pluggable part.

Every part a build is made of is an :class:`Entry` in the registry of its kind (:data:`KINDS`):
segmenter, entity detector, tokenizer, task, masking strategy, engine.  An entry declares

* ``fn``: the part itself (a factory, a generator, an engine's run function: what the kind's
  module documents);
* ``options``: the knobs it reads from ``BuildConfig.options`` (name -> default);
* ``fields``: the :class:`~zhmask.config.BuildConfig` fields it reads (``--hmm``, ``--vocab``...);
* ``traits``: booleans over the names its registry declares (``whole_word`` for masking,
  ``pos_tags`` for segmenters...), so code asks ``REG.has(name, "whole_word")`` instead of
  comparing names;
* ``version``: an int, raised when the part's output changes; ``entry.versioned`` is
  ``name@version``, as the manifest's ``parts`` and the build fingerprint record it;
* ``validate(config)``: raises :class:`zhmask.errors.ZhmaskError` with one line;
* ``checks``: row checks ``check(row, ctx) -> list[str]`` that ``zhmask verify`` runs on the rows
  the part wrote (:meth:`Registry.add_check`);
* ``help``: one line for the CLI's help;
* ``columns``: the shard columns beyond every row's own that the part fills (tasks and masking
  strategies; :mod:`zhmask.schema` declares the columns, ``zhmask verify`` holds rows to this).

The config checks every selected entry's options before any work starts, and rejects option
keys that no selected entry declares, so a misspelt ``--option`` never passes silently.  A new
part is one module that registers itself (docs/pipeline.md, "Parts and registries").
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

# kind -> "module:attribute" of its registry, imported on first use (start-up pays for none)
KINDS = {
    "tokenizer": "zhmask.steps.tokenize:TOKENIZERS",
    "segmenter": "zhmask.steps.segment:SEGMENTERS",
    "entities": "zhmask.steps.entities:ENTITY_DETECTORS",
    "tasks": "zhmask.labels:TASKS",
    "masking": "zhmask.masking:STRATEGIES",
    "engine": "zhmask.engines:ENGINES",
}
# the parts whose version changes the output (the engine's never does: the same shards either way)
OUTPUT_KINDS = ("tokenizer", "segmenter", "entities", "tasks", "masking")


@dataclass
class Entry:
    name: str
    fn: Callable
    options: dict[str, Any] = field(default_factory=dict)
    validate: Callable[[Any], None] | None = None
    version: int = 1
    traits: dict[str, bool] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    help: str = ""
    checks: list[Callable[[dict[str, Any], dict[str, Any]], list[str]]] = field(default_factory=list)
    columns: tuple[str, ...] = ()

    @property
    def versioned(self) -> str:
        return f"{self.name}@{self.version}"


class Registry(dict):
    """name -> callable (so ``REG[name](...)`` keeps working), plus the entries' declarations.

    ``traits``: the trait names this kind of part declares (every entry gets each one, False
    unless it names it)."""

    def __init__(self, kind: str, traits: Iterable[str] = ()) -> None:
        super().__init__()
        self.kind = kind
        self.trait_names: tuple[str, ...] = tuple(traits)
        self.entries: dict[str, Entry] = {}
        self.common_checks: list[Callable[[dict[str, Any], dict[str, Any]], list[str]]] = []  # run for every entry

    def register(self, name: str, options: dict[str, Any] | None = None,
                 validate: Callable[[Any], None] | None = None, *, version: int = 1,
                 traits: Iterable[str] = (), fields: Iterable[str] = (), help: str = "",
                 columns: Iterable[str] = ()):
        unknown = sorted(set(traits) - set(self.trait_names))
        if unknown:
            raise ValueError(f"{self.kind} {name!r}: unknown trait(s) {', '.join(unknown)}; "
                             f"declared: {', '.join(self.trait_names) or 'none'}")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"{self.kind} {name!r}: version must be a positive int, got {version!r}")
        declared = {t: t in set(traits) for t in self.trait_names}

        def deco(fn):
            self[name] = fn
            self.entries[name] = Entry(name, fn, dict(options or {}), validate, version, declared, tuple(fields),
                                       help, [], tuple(columns))
            return fn
        return deco

    def add_check(self, name: str):
        """Decorator: a row check ``check(row, ctx) -> list[str]`` that ``zhmask verify`` runs on
        the rows of entry ``name``."""
        def deco(fn):
            checks = self.entries[name].checks
            if fn not in checks:
                checks.append(fn)
            return fn
        return deco

    def checks_of(self, name: str) -> list[Callable[[dict[str, Any], dict[str, Any]], list[str]]]:
        """The row checks ``zhmask verify`` runs on rows of entry ``name``: the registry's common
        ones, then the entry's own (none for a name no entry holds: a plugin not installed)."""
        entry = self.entries.get(name)
        return [*self.common_checks, *entry.checks] if entry is not None else []

    def entry(self, name: str) -> Entry:
        """The entry ``name``, or one line naming the known ones."""
        from zhmask.errors import ZhmaskError

        try:
            return self.entries[name]
        except KeyError:
            raise ZhmaskError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self.entries)

    def has(self, name: str, trait: str, unknown: bool | None = None) -> bool:
        """Whether entry ``name`` has ``trait`` (one of :attr:`trait_names`); for a name no entry
        holds (a build's part whose plugin is not installed here), ``unknown``, or KeyError."""
        if trait not in self.trait_names:
            raise KeyError(f"{self.kind}s declare no trait {trait!r}")
        entry = self.entries.get(name)
        if entry is None:
            if unknown is None:
                raise KeyError(f"no {self.kind} {name!r}")
            return unknown
        return entry.traits.get(trait, False)

    def option(self, name: str, config, key: str) -> Any:
        """The value of knob ``key`` for entry ``name``: ``config.options`` or the default."""
        defaults = self.entries[name].options
        if key not in defaults:
            raise KeyError(f"{self.kind} {name!r} declares no option {key!r}")
        return config.options.get(key, defaults[key])

    def declared(self, names: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n in names:
            out.update(self.entries[n].options)
        return out

    def validate(self, names: list[str], config) -> None:
        for n in names:
            v = self.entries[n].validate
            if v is not None:
                v(config)


def registry(kind: str) -> Registry:
    """The registry of ``kind`` (a key of :data:`KINDS`), its module imported on first use."""
    module, attr = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), attr)


def tokenizer_name(config) -> str:
    """The tokenizer entry a config selects: a ``--tokenizer`` tokenizer.json, else WordPiece."""
    return "tokenizer_json" if config.tokenizer else "wordpiece"


def selected(config) -> dict[str, list[str]]:
    """The parts a config names, per kind (the list the pipeline is made of)."""
    return {"tokenizer": [tokenizer_name(config)], "segmenter": [config.segmenter], "entities": [config.entities],
            "tasks": list(config.tasks), "masking": [config.masking], "engine": [config.engine]}


def part_versions(config, kinds: Iterable[str] = tuple(KINDS)) -> dict[str, Any]:
    """``name@version`` of every selected part of ``kinds`` (a list for tasks).  Of
    :data:`OUTPUT_KINDS`: what the manifest records as ``parts`` and the fingerprint hashes, so
    that a part whose output changed is never resumed into nor mixed with shards of its older
    version.  Parts the
    config names but no registry holds are left out (the config's validation reports them)."""
    out: dict[str, Any] = {}
    names = selected(config)
    for kind in kinds:
        reg = registry(kind)
        got = [reg.entries[n].versioned for n in names[kind] if n in reg.entries]
        out[kind] = got if kind == "tasks" else (got[0] if got else None)
    return out
