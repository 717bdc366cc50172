"""Small named registries for masking strategies, task generators and shard writers.

An entry is a factory (masking), a generator (tasks) or a class (writers) registered under a
name, together with the knobs it reads from ``BuildConfig.options`` (name -> default), an
optional ``validate(config)`` that raises :class:`zhmask.errors.ZhmaskError` with one line, the
optional shard columns it fills (``columns``: tasks and masking strategies; see
:mod:`zhmask.schema`) and a ``version`` (writers: raised when the bytes it writes change).  The config
checks every selected entry's options before any work starts, and rejects option keys that no
selected entry declares, so a misspelt ``--option`` never passes silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Entry:
    name: str
    fn: Callable
    options: dict[str, Any] = field(default_factory=dict)
    validate: Callable[[Any], None] | None = None
    columns: tuple[str, ...] = ()
    version: int = 1


class Registry(dict):
    """name -> callable (so ``REG[name](...)`` keeps working), plus the entries' metadata."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.entries: dict[str, Entry] = {}

    def register(self, name: str, options: dict[str, Any] | None = None,
                 validate: Callable[[Any], None] | None = None, columns: tuple[str, ...] = (), version: int = 1):
        def deco(fn):
            self[name] = fn
            self.entries[name] = Entry(name, fn, dict(options or {}), validate, tuple(columns), version)
            return fn
        return deco

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
