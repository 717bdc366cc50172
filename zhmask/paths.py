"""Where the bundled data lives: dictionaries/, pipelines/ and zhmask/data/."""
from __future__ import annotations

from pathlib import Path

from zhmask.errors import ZhmaskError

_PKG = Path(__file__).resolve().parent


def _dir(name: str) -> Path:
    # Installed wheel: mapped into the package as zhmask/<name>; source checkout: top level.
    for cand in (_PKG / name, _PKG.parent / name):
        if cand.is_dir():
            return cand
    try:
        import importlib.resources as ir

        return Path(str(ir.files(f"zhmask.{name}")))
    except Exception:  # pragma: no cover - broken install
        raise ZhmaskError(f"zhmask installation is missing its {name}/ directory") from None


def data_path(name: str) -> Path:
    return _PKG / "data" / name


def dictionaries_dir() -> Path:
    return _dir("dictionaries")


def pipelines_dir() -> Path:
    return _dir("pipelines")


def default_vocab() -> Path:
    return data_path("vocab.txt")


def default_corpus() -> Path:
    return data_path("pd1998_sample.txt")


def preset_path(name: str) -> Path:
    p = Path(name)
    if p.suffix == ".toml" and p.exists():
        return p
    cand = pipelines_dir() / f"{name}.toml"
    if not cand.exists():
        known = sorted(q.stem for q in pipelines_dir().glob("*.toml"))
        raise ZhmaskError(f"unknown pipeline {name!r}; known: {', '.join(known)}")
    return cand
