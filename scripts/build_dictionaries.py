"""Rebuild the curated lexicons in dictionaries/ from ../shared/lexicons.

Run from the repository root:  python scripts/build_dictionaries.py ../shared/lexicons

Every output is plain UTF-8 in jieba's user-dictionary format, one entry a line:
``word freq tag``.  The tag is the entity/phrase type zhmask assigns on a match.
Sources and licences are listed in dictionaries/README.md.
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


def write(path: Path, entries: dict[str, int], tag: str) -> None:
    rows = sorted(entries.items(), key=lambda kv: (-kv[1], kv[0]))
    with path.open("w", encoding="utf-8") as fh:
        for word, freq in rows:
            fh.write(f"{word} {freq} {tag}\n")
    print(f"{path}: {len(rows)} entries")


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


def main(shared_dir: str) -> None:
    shared = Path(shared_dir)
    here = Path(__file__).resolve().parent.parent / "dictionaries"
    write(here / "loc.txt", locations(shared), "LOC")
    org = {w: f for w, f in read_tsv(shared / "jieba_tag_nt.tsv") if f >= 5 and len(w) >= 2}
    write(here / "org.txt", org, "ORG")
    misc = {w: f for w, f in read_tsv(shared / "jieba_tag_nz.tsv")
            if f >= 5 and len(w) >= 3 and CJK_ONLY.match(w)}
    write(here / "misc.txt", misc, "MISC")
    idioms = {w: max(f, 1) for w, f in read_tsv(shared / "jionlp_chinese_idiom.txt")
              if len(w) >= 4 and CJK_ONLY.match(w)}
    for w, f in read_tsv(shared / "jieba_tag_i.tsv"):
        if len(w) >= 4 and CJK_ONLY.match(w):
            idioms[w] = max(idioms.get(w, 0), f)
    write(here / "idiom.txt", idioms, "IDIOM")
    phrases = {w: f for w, f in read_tsv(shared / "jieba_tag_l.tsv")
               if f >= 5 and len(w) >= 3 and CJK_ONLY.match(w)}
    write(here / "phrase.txt", phrases, "PHRASE")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/lexicons")
