"""Build dictionaries/synonyms.txt, the similar-word lexicon of ``--masking mac``.

Usage: python scripts/build_synonyms.py ../shared/lexicons [dictionaries/synonyms.txt]

Sources (see dictionaries/README.md): HIT Tongyici Cilin (extended), only its ``=`` groups
(true synonyms; ``#`` related and ``@`` standalone entries are left out), and the cnsyn
synonym groups.  Kept: words of 1 to 6 characters that are all CJK ideographs; groups with at
least two such words and at most ``MAX_GROUP`` words (larger cnsyn groups are loose topic
lists).  Output: one group a line, words separated by one space, groups deduplicated, sorted
by source then first appearance.  Plain text, no pickles.
"""
from __future__ import annotations

import sys
from pathlib import Path

MAX_GROUP = 40
MAX_CHARS = 6


def is_cjk_word(w: str) -> bool:
    return 1 <= len(w) <= MAX_CHARS and all(0x4E00 <= ord(c) <= 0x9FFF or 0x3400 <= ord(c) <= 0x4DBF for c in w)


def clean(words: list[str]) -> list[str] | None:
    seen: dict[str, None] = {}
    for w in words:
        if is_cjk_word(w):
            seen.setdefault(w, None)
    out = list(seen)
    return out if 2 <= len(out) <= MAX_GROUP else None


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    src = Path(argv[0])
    dst = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "dictionaries" / "synonyms.txt"
    groups: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    counts = {"cilin": 0, "cnsyn": 0}

    def add(ws: list[str] | None, source: str) -> None:
        if ws is None:
            return
        key = tuple(sorted(ws))
        if key in seen:
            return
        seen.add(key)
        groups.append(tuple(ws))
        counts[source] += 1

    for line in (src / "cilin_extended.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("="):
            add(clean(parts[1:]), "cilin")
    for line in (src / "cnsyn_sim_words.txt").read_text(encoding="utf-8").splitlines():
        add(clean(line.split()), "cnsyn")
    header = ("# similar-word groups for zhmask --masking mac: one group a line, space-separated.\n"
              "# built by scripts/build_synonyms.py from HIT Tongyici Cilin (extended, '=' groups) and cnsyn;\n"
              "# see dictionaries/README.md for sources and licences.\n")
    dst.write_text(header + "".join(" ".join(g) + "\n" for g in groups), encoding="utf-8")
    words = {w for g in groups for w in g}
    print(f"wrote {dst}: {len(groups):,} groups (cilin {counts['cilin']:,}, cnsyn {counts['cnsyn']:,}), "
          f"{len(words):,} distinct words, {dst.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
