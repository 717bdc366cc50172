"""Rebuild the curated lexicons in dictionaries/ from ../shared/lexicons.

Run from the repository root:  python scripts/build_dictionaries.py ../shared/lexicons

Every output is plain UTF-8 in jieba's user-dictionary format, one entry a line:
``word freq tag``.  The tag is the entity/phrase type zhmask assigns on a match.
Sources and licences are listed in dictionaries/README.md.

Entries that dictionaries/not_entity.txt lists for the lexicon's type (common words that are
mostly not entities of it in running text, e.g. 合作 and 和平 as places; see
scripts/build_entity_filter.py) are left out.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

CJK_ONLY = re.compile(r"^[\u4e00-\u9fff]+$")


def read_tsv(path: Path) -> list[tuple[str, int]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1].strip().isdigit():
            out.append((parts[0].strip(), int(parts[1])))
    return out


def not_entities() -> dict[str, set[str]]:
    """dictionaries/not_entity.txt: word -> the types it is not (empty without the file)."""
    path = Path(__file__).resolve().parent.parent / "dictionaries" / "not_entity.txt"
    out: dict[str, set[str]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith("#"):
                out[parts[0]] = set(parts[1:])
    return out


def write(path: Path, entries: dict[str, int], tag: str, stop: dict[str, set[str]] | None = None) -> None:
    """The lexicon file, without the entries ``stop`` (default: not_entity.txt) lists for ``tag``."""
    stop = not_entities() if stop is None else stop
    dropped = sum(1 for w in entries if tag in stop.get(w, ()))
    rows = sorted(((w, f) for w, f in entries.items() if tag not in stop.get(w, ())), key=lambda kv: (-kv[1], kv[0]))
    with path.open("w", encoding="utf-8") as fh:
        for word, freq in rows:
            fh.write(f"{word} {freq} {tag}\n")
    if stop:
        print(f"{path}: {len(rows)} entries ({dropped} left out as not {tag})")


def locations(shared: Path) -> dict[str, int]:
    """Province, prefecture and county names (levels 0-2) with their short forms."""
    out: dict[str, int] = {}
    for line in (shared / "jionlp_china_location.txt").read_text(encoding="utf-8").splitlines():
        depth = len(line) - len(line.lstrip("\t"))
        if depth > 2:
            continue
        parts = line.strip().split("\t")
        for name in (parts[0], parts[2] if len(parts) > 2 else ""):
            if len(name) >= 2 and CJK_ONLY.match(name):
                out[name] = max(out.get(name, 0), 100 - 30 * depth)
    for word, freq in read_tsv(shared / "jieba_tag_ns.tsv"):
        if freq >= 20 and len(word) >= 2 and CJK_ONLY.match(word):
            out[word] = max(out.get(word, 0), freq)
    return out


def lexicons(shared: Path) -> dict[str, tuple[dict[str, int], str]]:
    """file name -> (word -> freq, TYPE) of every lexicon, before the not_entity.txt filter."""
    org = {w: f for w, f in read_tsv(shared / "jieba_tag_nt.tsv") if f >= 5 and len(w) >= 2}
    misc = {w: f for w, f in read_tsv(shared / "jieba_tag_nz.tsv")
            if f >= 5 and len(w) >= 3 and CJK_ONLY.match(w)}
    idioms = {w: max(f, 1) for w, f in read_tsv(shared / "jionlp_chinese_idiom.txt")
              if len(w) >= 4 and CJK_ONLY.match(w)}
    for w, f in read_tsv(shared / "jieba_tag_i.tsv"):
        if len(w) >= 4 and CJK_ONLY.match(w):
            idioms[w] = max(idioms.get(w, 0), f)
    phrases = {w: f for w, f in read_tsv(shared / "jieba_tag_l.tsv")
               if f >= 5 and len(w) >= 3 and CJK_ONLY.match(w)}
    return {"loc.txt": (locations(shared), "LOC"), "org.txt": (org, "ORG"), "misc.txt": (misc, "MISC"),
            "idiom.txt": (idioms, "IDIOM"), "phrase.txt": (phrases, "PHRASE")}


def main(shared_dir: str) -> None:
    here = Path(__file__).resolve().parent.parent / "dictionaries"
    for name, (entries, tag) in lexicons(Path(shared_dir)).items():
        write(here / name, entries, tag)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/lexicons")
