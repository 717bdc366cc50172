"""Entity and phrase detection: typed spans over whole words.

Types: PER, LOC, ORG, MISC (proper nouns), IDIOM, PHRASE.

``lexicon`` backend (default) combines two sources:

* the segmenter's POS tags: nr/nrt/nrfg -> PER (adjacent person tokens form one name, as in
  江/nr 泽民/nr), ns -> LOC, nt -> ORG, nz -> MISC, i -> IDIOM, l -> PHRASE; these are dictionary
  tags, blind to context (jieba tags 文明, 明白 and 令人 as person names), so a tagged span is
  dropped when the stop list (``dictionaries/not_entity.txt``, ``word TYPE...``) says the
  string is not of that type: the common words whose tagged occurrences were mostly not
  entities of the type on a corpus (see :func:`load_stoplist` and dictionaries/README.md);
* matching against the lexicons in ``dictionaries/`` (``word freq TYPE``): every span that
  starts and ends on word boundaries and is a lexicon entry.  The bundled lexicons are
  filtered the same way when they are built; a user's lexicon is taken as it is.

An ORG candidate right after a word tagged as a place or an abbreviation (美国/ns 国防部) is
dropped: it is the tail of a compound name (see :func:`_org_context`).

Overlaps are resolved longest first, then leftmost; the result is sorted and non-overlapping.
The ``spacy`` backend runs any installed spaCy pipeline with an ``ner`` (or entity_ruler)
component and snaps its entities outwards to word boundaries.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.record import Span, Words
from zhmask.registry import Registry

TYPES = ("PER", "LOC", "ORG", "MISC", "IDIOM", "PHRASE")
POS_TYPES = {"nr": "PER", "nrt": "PER", "nrfg": "PER", "ns": "LOC", "nt": "ORG", "nz": "MISC",
             "i": "IDIOM", "l": "PHRASE"}
SPACY_TYPES = {"PERSON": "PER", "PER": "PER", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "ORG": "ORG"}


def load_lexicons(paths: list[Path]) -> dict[str, str]:
    """word -> type from files of ``word [freq] TYPE`` lines; later files win."""
    from zhmask.lexcache import read_lines

    out: dict[str, str] = {}
    for path in paths:
        for line in read_lines(path, "lexicon"):
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith("#"):
                typ = parts[-1].upper()
                if typ in TYPES and len(parts[0]) >= 2:
                    out[parts[0]] = typ
    return out


def _entry_lines(paths: list[Path], what: str):
    """(path, line number, fields) of every line of ``paths`` but blank and ``#`` lines;
    ZhmaskError naming ``what`` when a file cannot be read."""
    from zhmask.lexcache import read_lines

    for path in paths:
        for n, line in enumerate(read_lines(path, what), 1):
            parts = line.split()
            if parts and not parts[0].startswith("#"):
                yield path, n, parts


def load_stoplist(paths: list[Path]) -> dict[str, int]:
    """word -> bit mask of the TYPES it never takes (bit ``TYPES.index(t)``), from files of
    ``word TYPE [TYPE ...]`` lines (``#`` starts a comment line)."""
    out: dict[str, int] = {}
    for path, n, parts in _entry_lines(paths, "entity stop list"):
        if len(parts) < 2 or any(t.upper() not in TYPES for t in parts[1:]):
            raise ZhmaskError(f"{path}:{n}: expected 'word TYPE [TYPE ...]' with types among "
                              f"{', '.join(TYPES)}, got {' '.join(parts)!r}")
        for t in parts[1:]:
            out[parts[0]] = out.get(parts[0], 0) | 1 << TYPES.index(t.upper())
    return out


def default_stoplist_paths() -> list[Path]:
    from zhmask.paths import dictionaries_dir

    p = dictionaries_dir() / "not_entity.txt"
    return [p] if p.is_file() else []


def default_person_chars_paths() -> list[Path]:
    from zhmask.paths import dictionaries_dir

    p = dictionaries_dir() / "person_chars.txt"
    return [p] if p.is_file() else []


def default_lexicon_paths(names: list[str] | None = None) -> list[Path]:
    from zhmask.paths import dictionaries_dir

    d = dictionaries_dir()
    if names is None:
        return sorted(p for p in d.glob("*.txt") if p.stem in ("loc", "org", "misc", "idiom", "phrase", "per"))
    out = []
    for n in names:
        p = Path(n)
        if not p.exists():
            p = d / f"{n}.txt"
        if not p.exists():
            raise ZhmaskError(f"lexicon not found: {n}")
        out.append(p)
    return out


def resolve(cands: list[tuple[int, int, str]]) -> list[Span]:
    """Non-overlapping spans, longest first then leftmost, returned sorted by start."""
    cands.sort(key=lambda c: (-(c[1] - c[0]), c[0]))
    out: list[Span] = []
    if any(e <= s for s, e, _ in cands):  # empty spans (never from the detectors here): pairwise test
        taken: list[tuple[int, int]] = []
        for s, e, t in cands:
            if any(s < te and ts < e for ts, te in taken):
                continue
            taken.append((s, e))
            out.append(Span(s, e, t))
    else:  # a span is free when none of its characters is taken yet: one C-level find per candidate
        occ = bytearray(max((e for _, e, _ in cands), default=0))
        for s, e, t in cands:
            if occ.find(1, s, e) >= 0:
                continue
            occ[s:e] = b"\x01" * (e - s)
            out.append(Span(s, e, t))
    out.sort(key=lambda sp: sp.start)
    return out


class LexiconEntities:
    name = "lexicon"

    def __init__(self, lexicon_paths: list[Path] | None = None, use_pos: bool = True,
                 stoplist_paths: list[Path] | None = None, person_chars_paths: list[Path] | None = None) -> None:
        from zhmask.lexcache import cached

        self.use_pos = use_pos
        self._lex_paths = list(lexicon_paths if lexicon_paths is not None else default_lexicon_paths())
        # the segmenter's tags pass a filter (None: the bundled stop list and person characters)
        stop_paths = default_stoplist_paths() if stoplist_paths is None else list(stoplist_paths)
        person_paths = default_person_chars_paths() if person_chars_paths is None else list(person_chars_paths)
        # the parsed files and the hash table, from the lexicon cache when it has them (zhmask/lexcache.py)
        t = cached("entities", {"lexicons": self._lex_paths, "stoplist": stop_paths, "person_chars": person_paths},
                   lambda: _entity_tables(self._lex_paths, stop_paths, person_paths))
        stop, sur, fg = t["stop"], t["surnames"], t["foreign"]
        self._filter = TagFilter(stop, sur, fg) if stop or sur or fg else None
        self._maxlen = t["maxlen"]
        self._empty = t["maxlen"] == 0
        self._table = _LexTable.from_arrays(t) if not self._empty else None
        self._lex_dict: dict[str, str] | None = None
        self._prefix_set: set[str] | None = None

    @property
    def _lex(self) -> dict[str, str]:
        """word -> type of the lexicons (for the per-text walk of :meth:`candidates`, parsed on first use)."""
        if self._lex_dict is None:
            self._lex_dict = load_lexicons(self._lex_paths)
        return self._lex_dict

    @property
    def _prefixes(self) -> set[str]:
        """The proper prefixes of the lexicon entries.  A lexicon match must start and end on word
        boundaries, so it is found by walking from each boundary over the following ones while the
        text read so far is a prefix of an entry: the same matches as Aho-Corasick over every
        character followed by the boundary filter, in about half the time (a handful of set
        lookups per word)."""
        if self._prefix_set is None:
            self._prefix_set = _prefixes(self._lex)
        return self._prefix_set

    def detect(self, text: str, words: Words) -> list[Span]:
        cands = self.candidates(text, words)
        if cands:  # (as detect_joined: the ORG context rule, then overlaps)
            a = np.fromiter((c[0] for c in cands), dtype=np.int64, count=len(cands))
            t = np.fromiter((_TYPE_CODE[c[2]] for c in cands), dtype=np.int8, count=len(cands))
            keep = _org_context(words, a, t).tolist()
            cands = [c for c, k in zip(cands, keep) if k]
        return resolve(cands) if cands else []

    def candidates(self, text: str, words: Words) -> list[tuple[int, int, str]]:
        """Every (start, end, type) the tags and the lexicons propose, before overlaps are resolved:
        the tagged spans first, then the lexicon matches."""
        cands: list[tuple[int, int, str]] = []
        if self.use_pos and len(words):
            c_s: list[np.ndarray] = []
            c_e: list[np.ndarray] = []
            c_t: list[np.ndarray] = []
            _pos_candidates(text, words, self._filter, c_s, c_e, c_t)
            if c_s:
                cands += zip(c_s[0].tolist(), c_e[0].tolist(), [TYPES[t] for t in c_t[0].tolist()])
        if not self._empty and len(words):
            st, en = words.starts, words.ends
            if st[0] == 0 and en[-1] == len(text) and np.array_equal(st[1:], en[:-1]):
                bounds = st.tolist() + [len(text)]  # the words cover the text: the usual case
            else:
                bounds = sorted(set(st.tolist()) | set(en.tolist()))
            lex, pref, maxlen = self._lex, self._prefixes, self._maxlen
            nb = len(bounds)
            for i in range(nb - 1):
                s = bounds[i]
                for j in range(i + 1, nb):
                    e = bounds[j]
                    if e - s > maxlen:
                        break
                    sub = text[s:e]
                    typ = lex.get(sub)
                    if typ is not None:
                        cands.append((s, e, typ))
                    if sub not in pref:
                        break
        return cands

    # ------------------------------------------------------------------ many texts at once
    def _hash_table(self) -> "_LexTable":
        if self._table is None:
            self._table = _LexTable.from_arrays(_LexTable.build(self._lex, self._prefixes, self._maxlen))
        return self._table

    def detect_joined(self, joined: str, words: Words) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """:meth:`detect` of texts joined by ``"\\n"`` at once: ``words`` cover ``joined`` (one
        separator word between two texts).  Returns the spans' starts, ends and types, sorted by
        start: per text, :meth:`detect`'s.

        No candidate crosses a separator (it is never tagged and no entry contains it), so the
        candidates are those of each text; and overlap resolution never compares two texts'
        candidates, so resolving them all in :func:`resolve`'s order (longest, leftmost; on the
        same span, POS before lexicon) leaves each text's own result."""
        starts, ends = words.starts, words.ends
        n = len(starts)
        c_s: list[np.ndarray] = []
        c_e: list[np.ndarray] = []
        c_t: list[np.ndarray] = []  # indices into TYPES
        if self.use_pos and n:
            _pos_candidates(joined, words, self._filter, c_s, c_e, c_t)
        if not self._empty and n:
            self._hash_table().walk(joined, starts, ends, c_s, c_e, c_t)
        if not c_s:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []
        cs, ce, ct = np.concatenate(c_s), np.concatenate(c_e), np.concatenate(c_t)
        k = _org_context(words, cs, ct)
        if not k.all():
            cs, ce, ct = cs[k], ce[k], ct[k]
        if not len(cs):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []
        cs, ce, ct = resolve_arrays(cs, ce, ct)
        return cs, ce, [TYPES[t] for t in ct.tolist()]


_TYPE_CODE = {t: i for i, t in enumerate(TYPES)}
_PER = _TYPE_CODE["PER"]
_POS_CODE = {tag: _TYPE_CODE[t] for tag, t in POS_TYPES.items()}


def _pos_candidates(text: str, words: Words, filt: "TagFilter | None", c_s: list, c_e: list, c_t: list) -> None:
    """The POS candidates of :meth:`LexiconEntities.detect`, over all words at once (``words``
    cut ``text``): a typed word, or a run of PER words (adjacent, or joined by a middle dot as
    in 拉菲克·塔拉尔), that spans two characters or more (or is a run of two PER words or more),
    unless ``filt`` rejects it (see :class:`TagFilter`)."""
    types = POS_TYPES
    pos = words.pos
    n = len(pos)
    typed = np.flatnonzero(np.fromiter(map(types.__contains__, pos), dtype=bool, count=n))
    if not len(typed):
        return
    code = np.fromiter(map(_POS_CODE.__getitem__, map(pos.__getitem__, typed.tolist())), dtype=np.int8,
                       count=len(typed))
    per = code == _PER
    # a PER word right after a PER word (or after a PER word and a middle dot) continues its run
    cont = np.zeros(len(typed), dtype=bool)
    both = per[1:] & per[:-1]
    gap = typed[1:] - typed[:-1]
    cont[1:] = both & (gap == 1)
    dot = np.flatnonzero(both & (gap == 2))
    if len(dot):
        mid = typed[dot] + 1
        cont[dot[[text[a:b] in _NAME_DOTS for a, b in zip(words.starts[mid].tolist(), words.ends[mid].tolist())]]
             + 1] = True
    head = np.flatnonzero(~cont)
    last = np.append(head[1:], len(typed)) - 1
    i, j = typed[head], typed[last] + 1
    s, e = words.starts[i], words.ends[j - 1]
    t = code[head]
    ok = (e - s >= 2) | ((t == _PER) & (j - i > 1))
    if filt is not None and ok.any():
        keep = filt.keep
        ok[ok] = [keep(text[a:b], c, run) for a, b, c, run in
                  zip(s[ok].tolist(), e[ok].tolist(), t[ok].tolist(), (j - i > 1)[ok].tolist())]
    c_s.append(s[ok])
    c_e.append(e[ok])
    c_t.append(t[ok])


def _org_context(words: Words, cs: np.ndarray, ct: np.ndarray) -> np.ndarray:
    """Which candidates (starts ``cs``, type codes ``ct``) to keep: every one but an ORG that
    starts right after a word tagged as a place or an abbreviation (美国/ns 国防部, 中/j 外交部):
    the tail of a compound name, which People's Daily's gold tags as a plain noun there (and
    as an organisation alone).  The place stays a unit of its own."""
    keep = np.ones(len(cs), dtype=bool)
    org = np.flatnonzero(ct == _TYPE_CODE["ORG"])
    if not len(org):
        return keep
    w = np.searchsorted(words.starts, cs[org])
    pos = words.pos
    n = len(pos)
    prev = [0 < k < n and pos[k - 1] in ("ns", "j") and words.ends[k - 1] == words.starts[k] for k in w.tolist()]
    keep[org[np.asarray(prev, dtype=bool)]] = False
    return keep


_NAME_DOTS = frozenset("·•・‧")
# words that follow a surname inside one dictionary word (徐先生, 孔书记): a form of address,
# not a name as a gold standard marks it (徐/nr 先生/n)
TITLES = ("先生", "女士", "小姐", "夫人", "太太", "同志", "师傅", "老师", "教授", "博士", "大夫", "医生",
          "书记", "主席", "总理", "部长", "局长", "省长", "市长", "县长", "乡长", "镇长", "村长", "厂长",
          "校长", "院长", "所长", "经理", "主任", "司令", "将军", "总统", "首相", "大使", "委员", "阿姨",
          "大爷", "大娘", "大妈", "大伯", "大哥", "大姐", "老汉", "老人", "队长", "班长", "连长", "总")


class TagFilter:
    """What the segmenter's dictionary tags must pass to become entity candidates.

    * the stop list (``word TYPE...``, :func:`load_stoplist`): the string is never of that type;
    * a person name needs the shape of one: a run of person words, or one word of 2-3
      characters, that begins with a surname (one or two characters), or a word whose
      characters all occur in transliterated foreign names (克林顿, 叶利钦); a form of address
      (徐先生, 周总理) or a longer word (阳光明媚, 家庭幸福: jieba tags both nr) is not a name.
      The surnames and transliteration characters come from ``person_chars.txt`` (``char
      SURNAME|FOREIGN`` lines); without that file, person words are only checked against the
      stop list.
    """

    def __init__(self, stop: dict[str, int], surnames: set[str], foreign: set[str]) -> None:
        self.stop = stop
        self.surnames = surnames
        self.foreign = foreign
        self.names = bool(surnames or foreign)

    def keep(self, w: str, code: int, run: bool) -> bool:
        if self.stop.get(w, 0) >> code & 1:
            return False
        if code != _PER or not self.names:
            return True
        if w.endswith(TITLES):
            return False
        sur = self.surnames
        if (w[0] in sur or w[:2] in sur) and (run or len(w) <= 3):
            return True
        fg = self.foreign
        return all(c in fg or c in _NAME_DOTS for c in w)


def load_person_chars(paths: list[Path]) -> tuple[set[str], set[str]]:
    """(surnames, transliteration characters) from files of ``chars SURNAME|FOREIGN`` lines."""
    sur: set[str] = set()
    fg: set[str] = set()
    for path, n, parts in _entry_lines(paths, "person characters"):
        if len(parts) != 2 or parts[1] not in ("SURNAME", "FOREIGN"):
            raise ZhmaskError(f"{path}:{n}: expected 'chars SURNAME' or 'char FOREIGN', got {' '.join(parts)!r}")
        (sur if parts[1] == "SURNAME" else fg).add(parts[0])
    return sur, fg


def _prefixes(lex: dict[str, str]) -> set[str]:
    """The proper prefixes of the entries of ``lex``."""
    return {w[:k] for w in lex for k in range(1, len(w))}


def _entity_tables(lex_paths: list[Path], stop_paths: list[Path], person_paths: list[Path]) -> dict:
    """What :class:`LexiconEntities` reads from its files, parsed: the stop list, the person
    characters, and the lexicons' hash table (:meth:`_LexTable.build`; ``maxlen`` 0 when the
    lexicons are empty).  The lexicon cache stores it."""
    stop = load_stoplist(stop_paths)
    sur, fg = load_person_chars(person_paths)
    lex = load_lexicons(lex_paths)
    maxlen = max(map(len, lex), default=0)
    t = _LexTable.build(lex, _prefixes(lex), maxlen) if lex else {"maxlen": 0}
    return {**t, "stop": stop, "surnames": sur, "foreign": fg}


_BUCKET_BITS = 18
_BASE = 0x9E3779B97F4A7C15  # odd: invertible mod 2**64
_MIX = 0xBF58476D1CE4E5B9  # odd: a bijection that spreads short strings' hashes over the top bits


def _powers(n: int) -> np.ndarray:
    out, x = [], 1
    for _ in range(n):
        out.append(x)
        x = x * _BASE % (1 << 64)
    return np.array(out, dtype=np.uint64)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _hashes(cps: np.ndarray, starts: np.ndarray, lens: np.ndarray, pw: np.ndarray) -> np.ndarray:
    """sum(cps[s + j] * BASE**j for j < len) mod 2**64 of each span [s, s + len), len < len(pw)."""
    h = np.zeros(len(starts), dtype=np.uint64)
    sel = np.flatnonzero(lens > 0)
    j = 0
    while len(sel):
        h[sel] += cps[starts[sel] + j].astype(np.uint64) * pw[j]
        j += 1
        sel = sel[lens[sel] > j]
    return h


class _LexTable:
    """A lexicon's entries and their proper prefixes in a hash table over code points, for the
    lexicon walk of many words at once (:meth:`walk`).  Its arrays (:meth:`build`) are what the
    lexicon cache stores."""

    ARRAYS = ("pw", "key_cps", "key_start", "key_len", "key_type", "key_prefix", "h", "key", "bucket")

    @staticmethod
    def build(lex: dict[str, str], prefixes: set[str], maxlen: int) -> dict:
        """The table's arrays (:attr:`ARRAYS`), ``maxlen`` and ``ambiguous``."""
        entries = list(lex)
        others = list(prefixes.difference(lex))  # prefixes that are not entries
        keys = entries + others
        t: dict = {"maxlen": maxlen, "pw": _powers(maxlen + 1)}
        lens = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
        t["key_cps"] = _code_points("".join(keys))
        t["key_start"] = np.cumsum(lens) - lens
        t["key_len"] = lens
        t["key_type"] = np.concatenate([
            np.fromiter(map(_TYPE_CODE.__getitem__, lex.values()), dtype=np.int8, count=len(entries)),
            np.full(len(others), -1, dtype=np.int8)])
        t["key_prefix"] = np.concatenate([
            np.fromiter(map(prefixes.__contains__, entries), dtype=bool, count=len(entries)),
            np.ones(len(others), dtype=bool)])
        h = _hashes(t["key_cps"], t["key_start"], lens, t["pw"]) * np.uint64(_MIX)
        order = np.argsort(h, kind="stable")
        h = h[order]
        # two keys of one hash (not seen in practice): walk() refuses, the texts go one by one
        t["ambiguous"] = bool((h[1:] == h[:-1]).any())
        t["h"] = np.append(h, np.uint64(0))
        t["key"] = np.append(order, 0)
        top = np.arange((1 << _BUCKET_BITS) + 1, dtype=np.uint64) << np.uint64(64 - _BUCKET_BITS)
        bucket = np.searchsorted(h, top).astype(np.int64)
        bucket[-1] = len(h)
        t["bucket"] = bucket
        return t

    @classmethod
    def from_arrays(cls, t: dict) -> "_LexTable":
        self = cls.__new__(cls)
        self.maxlen = t["maxlen"]
        self.ambiguous = t["ambiguous"]
        for name in cls.ARRAYS:
            setattr(self, name, t[name])
        return self

    def find(self, h: np.ndarray) -> np.ndarray:
        """Index of the key of each (mixed) hash, -1 where no key has it."""
        b = (h >> np.uint64(64 - _BUCKET_BITS)).astype(np.int64)
        lo = self.bucket[b]
        cnt = self.bucket[b + 1] - lo
        keys = self.h
        res = np.where((cnt > 0) & (keys[lo] == h), self.key[lo], -1)
        sel = np.flatnonzero((res < 0) & (cnt > 1))
        r = 1
        while len(sel):
            j = lo[sel] + r
            m = keys[j] == h[sel]
            res[sel[m]] = self.key[j[m]]
            r += 1
            sel = sel[~m & (cnt[sel] > r)]
        return res

    def walk(self, joined: str, starts: np.ndarray, ends: np.ndarray, c_s: list, c_e: list, c_t: list) -> None:
        """The lexicon walk of :meth:`LexiconEntities.detect` over all the words at once, level by
        level: the spans of k + 1 words that extend a span of k words which is a proper prefix of
        an entry.  A span is looked up by a 64-bit polynomial hash of its code points (built from
        its words' hashes) and confirmed against the key's code points, so the matches are exact."""
        if self.ambiguous:
            raise ValueError("two lexicon keys share a hash")
        n = len(starts)
        maxlen, pw = self.maxlen, self.pw
        key_len, key_start, key_cps, key_type, key_prefix = (self.key_len, self.key_start, self.key_cps,
                                                             self.key_type, self.key_prefix)
        cps = _code_points(joined)
        lens = ends - starts
        short = np.flatnonzero(lens <= maxlen)  # a longer word is no entry and no prefix
        wh = np.zeros(n, dtype=np.uint64)
        wh[short] = _hashes(cps, starts[short], lens[short], pw)
        first, last, h, ln = short, short, wh[short], lens[short]
        mix = np.uint64(_MIX)
        while len(first):
            k = self.find(h * mix)
            f = np.flatnonzero(k >= 0)
            k = k[f]
            # the entries among them, each confirmed by its code points (a prefix found by a hash
            # collision only makes the walk go on: whatever it finds is confirmed here)
            typ = key_type[k]
            e = np.flatnonzero(typ >= 0)
            if len(e):
                fe, ke = f[e], k[e]
                s, L = starts[first[fe]], ln[fe]
                ok = key_len[ke] == L
                ks = key_start[ke]
                sel = np.flatnonzero(ok)
                j = 0
                while len(sel):
                    bad = cps[s[sel] + j] != key_cps[ks[sel] + j]
                    ok[sel[bad]] = False
                    j += 1
                    sel = sel[~bad & (L[sel] > j)]
                c_s.append(s[ok])
                c_e.append(ends[last[fe[ok]]])
                c_t.append(typ[e][ok])
            # the proper prefixes go on with the next word
            g = f[key_prefix[k]]
            g = g[last[g] + 1 < n]
            nxt = last[g] + 1
            ln2 = ln[g] + lens[nxt]
            keep = ln2 <= maxlen
            g, nxt = g[keep], nxt[keep]
            h = h[g] + wh[nxt] * pw[ln[g]]
            first, last, ln = first[g], nxt, ln2[keep]


def resolve_arrays(cs: np.ndarray, ce: np.ndarray, ct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`resolve` of candidates given as arrays (starts, ends, types, in candidate order):
    the kept spans' starts, ends and types, sorted by start.  Spans must not be empty.

    A span that overlaps no other candidate is always kept, and a later candidate of the same
    span as an earlier one never is; the greedy pass runs over the rest only."""
    if (ce <= cs).any():
        raise ValueError("empty candidate span")
    n = len(cs)
    if n == 0:
        return cs, ce, ct
    _, first = np.unique(cs * (int(ce.max()) + 1) + ce, return_index=True)  # first candidate of each span
    by_start = first[np.lexsort((ce[first], cs[first]))]  # by start, then end
    s, e = cs[by_start], ce[by_start]
    reach = np.maximum.accumulate(e)
    clash = np.zeros(len(s), dtype=bool)
    clash[1:] = s[1:] < reach[:-1]  # overlaps an earlier-starting span
    clash[:-1] |= s[1:] < e[:-1]  # overlaps the next one
    keep = [by_start[~clash]]
    todo = by_start[clash]
    if len(todo):
        order = todo[np.lexsort((todo, cs[todo], cs[todo] - ce[todo]))]  # longest, leftmost, first
        occ = bytearray(int(ce[order].max()))
        find = occ.find
        kept: list[int] = []
        for o, a, b in zip(order.tolist(), cs[order].tolist(), ce[order].tolist()):
            if find(1, a, b) >= 0:
                continue
            occ[a:b] = b"\x01" * (b - a)
            kept.append(o)
        keep.append(np.asarray(kept, dtype=np.int64))
    out = np.concatenate(keep)
    out = out[np.argsort(cs[out], kind="stable")]
    return cs[out], ce[out], ct[out]


class SpacyEntities:
    name = "spacy"

    def __init__(self, model: str) -> None:
        try:
            import spacy
        except ImportError:
            raise ZhmaskError("the spacy entity backend needs spaCy: pip install 'zhmask[spacy]'") from None
        try:
            self.nlp = spacy.load(model)
        except Exception as exc:
            raise ZhmaskError(f"cannot load spaCy pipeline {model!r}: {exc}") from None
        if not any(n in self.nlp.pipe_names for n in ("ner", "entity_ruler")):
            raise ZhmaskError(f"spaCy pipeline {model!r} has no ner or entity_ruler component")

    @classmethod
    def from_nlp(cls, nlp) -> "SpacyEntities":
        obj = cls.__new__(cls)
        obj.nlp = nlp
        return obj

    def detect(self, text: str, words: Words) -> list[Span]:
        doc = self.nlp(text)
        if len(words) == 0:
            return []
        cands = []
        for ent in doc.ents:
            s, e = ent.start_char, ent.end_char
            i = int(np.searchsorted(words.starts, s, side="right")) - 1
            j = int(np.searchsorted(words.starts, e, side="left"))
            s, e = int(words.starts[max(i, 0)]), int(words.ends[max(j - 1, 0)])
            if e > s:
                cands.append((s, e, SPACY_TYPES.get(ent.label_, "MISC")))
        return resolve(cands)


class NoEntities:
    name = "none"

    def detect(self, text: str, words: Words) -> list[Span]:
        return []

    def detect_joined(self, joined: str, words: Words) -> tuple[np.ndarray, np.ndarray, list[str]]:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []


ENTITY_DETECTORS = Registry("entity detector", traits=("batched", "uses_pos_tags", "needs_model"))
"""Entity detectors, selected with ``--entities NAME``: a factory ``make(spacy_model=None,
lexicons=None)`` (the :class:`BuildConfig` fields of the same names).  Traits: ``batched`` (it
detects over a unit's joined texts at once, ``detect_joined``; the others document by
document), ``uses_pos_tags`` (it reads the segmenter's part-of-speech tags), ``needs_model``."""


def _check_lexicons(config) -> None:
    """The lexicons a build names are readable before any work starts."""
    if config.lexicons is None:
        return
    for p in default_lexicon_paths(list(config.lexicons)):
        try:
            with open(p, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ZhmaskError(f"cannot read lexicon {p}: {exc.strerror or exc}") from None


def _check_spacy(config) -> None:
    """The spaCy pipeline is found before any work starts (a directory, or an installed package)."""
    if not config.spacy_model:
        raise ZhmaskError("--entities spacy needs --spacy-model (an installed pipeline name or a directory)")
    p = Path(config.spacy_model)
    if p.exists():
        if not (p / "config.cfg").is_file():
            raise ZhmaskError(f"--spacy-model {config.spacy_model}: not a spaCy pipeline directory (no config.cfg)")
        return
    try:
        import spacy.util
    except ImportError:
        raise ZhmaskError("the spacy entity backend needs spaCy: pip install 'zhmask[spacy]'") from None
    if not spacy.util.is_package(config.spacy_model):
        raise ZhmaskError(f"--spacy-model {config.spacy_model!r}: neither an installed spaCy pipeline package "
                          "nor a directory")


@ENTITY_DETECTORS.register("lexicon", validate=_check_lexicons, traits=("batched", "uses_pos_tags"),
                           fields=("lexicons",),
                           help="the segmenter's POS tags and the lexicons in dictionaries/ (default)")
def _lexicon(spacy_model: str | None = None, lexicons: list[str] | None = None):
    return LexiconEntities(default_lexicon_paths(lexicons))


@ENTITY_DETECTORS.register("spacy", validate=_check_spacy, traits=("needs_model",), fields=("spacy_model",),
                           help="an installed spaCy pipeline's ner (--spacy-model)")
def _spacy(spacy_model: str | None = None, lexicons: list[str] | None = None):
    return SpacyEntities(spacy_model or "")


@ENTITY_DETECTORS.register("none", traits=("batched",), help="no entities")
def _none(spacy_model: str | None = None, lexicons: list[str] | None = None):
    return NoEntities()


def make_entity_detector(name: str, *, spacy_model: str | None = None, lexicons: list[str] | None = None):
    """The entity detector registered as ``name`` (one line naming the known ones otherwise)."""
    return ENTITY_DETECTORS.entry(name).fn(spacy_model=spacy_model, lexicons=lexicons)
