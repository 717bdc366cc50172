"""``zhmask report``: one self-contained HTML page of plots describing a build.

Statistics are accumulated by streaming the shards one record batch at a time with numpy
(histograms as bincounts, counters per task): memory is bounded by a record batch whatever the
build's size, and ``max_rows`` reads only the first rows (whole batches, then a slice) when a
quick look is enough, which the page says.  The manifest gives rejections, ``[UNK]``
characters and word-aware class counts; ``build.json`` the timing of the build's last run
(throughput).  Figures are drawn with matplotlib (Agg backend, imported here only) and embedded
as base64 PNG, so the page needs no other file and no network.  Every plot has a title and
axis labels; a plot without data says "no data".
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from zhmask.errors import ZhmaskError
from zhmask.schema import SENTENCE_LABEL
from zhmask.view import FATE_NAMES, IGNORE, fates, iter_batches, open_build

SENTENCE_END = ("。", "！", "？", "!", "?")
FATE_COLORS = {"masked": "#d62728", "replaced": "#e6b800", "kept": "#2ca02c"}


def _grow_add(acc: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``acc + counts`` where either may be longer (histograms as bincounts)."""
    if len(counts) > len(acc):
        acc = np.concatenate([acc, np.zeros(len(counts) - len(acc), dtype=acc.dtype)])
    acc[: len(counts)] += counts
    return acc


def _runs(flag: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in ``flag``; a run also ends where ``breaks`` is True
    (the first position of a row)."""
    if not flag.any():
        return np.zeros(0, dtype=np.int64)
    start = flag & (np.concatenate([[True], ~flag[:-1]]) | breaks)
    run_id = np.cumsum(start)[flag]
    return np.bincount(run_id)[1:]


@dataclass
class Stats:
    """What the plots show, accumulated over record batches (:meth:`add`)."""

    rows: int = 0
    rows_by_task: Counter = field(default_factory=Counter)
    row_len: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    unit_len: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    word_chars: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    sentence_chars: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    fates_by_task: dict[str, np.ndarray] = field(default_factory=dict)
    classes: dict[str, Counter] = field(default_factory=dict)
    entity_types: Counter = field(default_factory=Counter)

    def add(self, batch, mask_id: int, char_len: np.ndarray, end_ids: np.ndarray) -> None:
        from zhmask.reader import _list_view

        n = batch.num_rows
        self.rows += n
        tasks = np.asarray(batch.column("task").to_pylist(), dtype=object)
        self.rows_by_task.update(tasks.tolist())
        offs, ids, _ = _list_view(batch.column("input_ids"))
        _, lab, _ = _list_view(batch.column("labels"))
        _, wid, _ = _list_view(batch.column("word_ids"))
        offs = offs.astype(np.int64)
        base, end = int(offs[0]), int(offs[-1])
        ids, lab, wid = ids[base:end].astype(np.int64), lab[base:end].astype(np.int64), wid[base:end].astype(np.int64)
        offs = offs - base
        lens = np.diff(offs)
        self.row_len = _grow_add(self.row_len, np.bincount(lens))
        row_start = np.zeros(len(ids), dtype=bool)
        row_start[offs[:-1][lens > 0]] = True
        row_of = np.repeat(np.arange(n), lens)
        # masked units: runs of consecutive predicted tokens; fates per task
        fate = fates(ids, lab, mask_id)
        self.unit_len = _grow_add(self.unit_len, np.bincount(_runs(fate > 0, row_start)))
        pred = fate > 0
        if pred.any():
            pred_task = tasks[row_of[pred]]
            for t in sorted(set(pred_task.tolist())):
                sel = fate[pred][pred_task == t]
                acc = self.fates_by_task.setdefault(t, np.zeros(4, dtype=np.int64))
                acc += np.bincount(sel, minlength=4)
        # words and sentences in characters, from the original tokens (labels where predicted)
        orig = np.where(lab != IGNORE, lab, ids)
        orig = np.clip(orig, 0, len(char_len) - 1)
        chars = char_len[orig]
        word = wid >= 0
        new_word = word & (row_start | np.concatenate([[True], wid[1:] != wid[:-1]]))
        wid_run = np.cumsum(new_word)
        if word.any():
            wl = np.bincount(wid_run[word], weights=chars[word])[1:]
            self.word_chars = _grow_add(self.word_chars, np.bincount(wl[wl > 0].astype(np.int64)))
        is_end = np.isin(orig, end_ids)
        after_end = np.concatenate([[True], is_end[:-1] | ~word[:-1]])
        new_sent = word & (row_start | after_end)
        sent_run = np.cumsum(new_sent)
        if word.any():
            sl = np.bincount(sent_run[word], weights=chars[word])[1:]
            self.sentence_chars = _grow_add(self.sentence_chars, np.bincount(sl[sl > 0].astype(np.int64)))
        # sentence-level classes
        label = batch.column(SENTENCE_LABEL).to_numpy(zero_copy_only=False)
        has = label >= 0
        for t, c in zip(tasks[has].tolist(), label[has].tolist()):
            self.classes.setdefault(t, Counter())[int(c)] += 1
        # entity types
        ents = batch.column("entities")
        if ents.null_count < n:
            import pyarrow.compute as pc

            flat = pc.list_flatten(ents)
            if len(flat):
                for item in pc.value_counts(flat.field("type")).to_pylist():
                    self.entity_types[item["values"]] += int(item["counts"])


def char_lengths(tok) -> np.ndarray:
    """Characters of text each vocabulary entry stands for (``##`` dropped; special tokens 0,
    [UNK] 1: it replaces one character or a run the tokenizer could not split)."""
    specials = set(int(x) for x in tok.special_ids.tolist())
    out = np.array([len(t[2:]) if t.startswith("##") else len(t) for t in tok.id_to_token], dtype=np.int64)
    out[list(specials)] = 0
    out[int(tok.unk_id)] = 1
    return out


def collect(build, shards: Sequence[Path], max_rows: int | None = None) -> Stats:
    """:class:`Stats` of the rows of ``shards`` (at most ``max_rows``, in build order)."""
    tok = build.tokenizer
    char_len = char_lengths(tok)
    end_ids = np.array([tok.vocab[c] for c in SENTENCE_END if c in tok.vocab], dtype=np.int64)
    st = Stats()
    for batch in iter_batches(shards):
        if max_rows is not None:
            left = max_rows - st.rows
            if left <= 0:
                break
            if batch.num_rows > left:
                batch = batch.slice(0, left)
        st.add(batch, int(tok.mask_id), char_len, end_ids)
    return st


# ---------------------------------------------------------------------- plots
@dataclass
class Plot:
    key: str
    title: str
    png: bytes
    note: str = ""
    empty: bool = False


# fonts with CJK glyphs, used first where installed (labels such as [UNK] characters); matplotlib
# falls back glyph by glyph to the next font of the list
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "SimHei",
             "Microsoft YaHei", "PingFang SC")
_FONTS: list[str] | None = None
_CHARMAPS: list[set[int]] | None = None


def _font_paths() -> list[str]:
    """Files of the fonts the plots use, CJK fonts first (the ones installed)."""
    global _FONTS
    if _FONTS is None:
        import matplotlib
        from matplotlib import font_manager

        names = {f.name: f.fname for f in font_manager.fontManager.ttflist}
        cjk = [n for n in CJK_FONTS if n in names]
        matplotlib.rcParams["font.sans-serif"] = cjk + [n for n in matplotlib.rcParams["font.sans-serif"]
                                                        if n not in cjk]
        _FONTS = [names[n] for n in cjk] + [font_manager.findfont(font_manager.FontProperties())]
    return _FONTS


def _has_glyph(text: str) -> bool:
    """Whether the plots' fonts draw every character of ``text`` (else ticks show code points)."""
    global _CHARMAPS
    if _CHARMAPS is None:
        from matplotlib.ft2font import FT2Font

        _CHARMAPS = []
        for path in _font_paths():
            try:
                _CHARMAPS.append(set(FT2Font(path).get_charmap()))
            except (OSError, RuntimeError, ValueError):
                continue
    return all(any(ord(c) in cm for cm in _CHARMAPS) for c in text)


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    _font_paths()
    fig, ax = plt.subplots(figsize=(7.2, 3.6), dpi=100)
    return plt, fig, ax


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: same build, same bytes
    plt.close(fig)
    return buf.getvalue()


def _plot(key: str, title: str, xlabel: str, ylabel: str, draw: Callable[[Any], bool], note: str = "") -> Plot:
    """A figure with ``title`` and axis labels; ``draw(ax)`` returns False when it had no data,
    and the plot then says "no data"."""
    plt, fig, ax = _figure()
    has = draw(ax)
    if not has:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=16, color="#777", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return Plot(key, title, _png(plt, fig), note, empty=not has)


def _hist(counts: np.ndarray, color: str = "#1f77b4", cap: int | None = None):
    def draw(ax) -> bool:
        c = np.asarray(counts)
        if c.sum() <= 0:
            return False
        if cap is not None and len(c) > cap + 1:  # one bar for the tail
            c = np.concatenate([c[:cap], [c[cap:].sum()]])
        x = np.arange(len(c))
        nz = np.flatnonzero(c)
        lo, hi = int(nz[0]), int(nz[-1])
        if hi - lo > 40:  # one artist, not a rectangle per bar
            ax.stairs(c[lo:hi + 1], np.arange(lo, hi + 2) - 0.5, fill=True, color=color)
        else:
            ax.bar(x[lo:hi + 1], c[lo:hi + 1], width=0.8, color=color)
        ax.set_xlim(lo - 1, hi + 1)
        return True
    return draw


def _bars(labels: Sequence[str], values: Sequence[float], horizontal: bool = False, color: str = "#1f77b4"):
    def draw(ax) -> bool:
        if not len(values) or sum(values) <= 0:
            return False
        pos = np.arange(len(values))
        if horizontal:
            ax.barh(pos, values, color=color)
            ax.set_yticks(pos, labels)
            ax.invert_yaxis()
        else:
            ax.bar(pos, values, color=color)
            ax.set_xticks(pos, labels, rotation=30 if max(len(s) for s in labels) > 6 else 0, ha="right"
                          if max(len(s) for s in labels) > 6 else "center")
        return True
    return draw


def _mean(counts: np.ndarray) -> float:
    return float((np.arange(len(counts)) * counts).sum() / max(counts.sum(), 1))


def padding_waste(row_len: np.ndarray, lengths: Sequence[int]) -> list[tuple[int, float, float]]:
    """(L, share of padding, share of rows longer than L) when every row is padded (or cut) to L."""
    n = int(row_len.sum())
    x = np.arange(len(row_len))
    out = []
    for L in lengths:
        if n == 0:
            continue
        kept = float((np.minimum(x, L) * row_len).sum())
        out.append((int(L), 1.0 - kept / (n * L), float(row_len[L + 1:].sum()) / n))
    return out


def unk_chars(manifest: dict[str, Any]) -> list[tuple[str, int]]:
    """The manifest's ``unk_chars`` (a JSON object, keys sorted) most frequent first."""
    return sorted((manifest.get("unk_chars") or {}).items(), key=lambda kv: (-kv[1], kv[0]))


def run_timing(out: Path) -> dict[str, Any] | None:
    """The timing of the build's last run from ``build.json`` (None when it has none)."""
    try:
        data = json.loads((out / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    run = data.get("run") if isinstance(data, dict) else None
    return run if isinstance(run, dict) and run.get("units") is not None else None


def make_plots(build, st: Stats) -> list[Plot]:
    m = build.manifest
    plots: list[Plot] = []
    # rows per task
    tasks = sorted(st.rows_by_task)
    plots.append(_plot("rows", "Rows per task", "task", "rows", _bars(tasks, [st.rows_by_task[t] for t in tasks])))
    # masked units and fates
    plots.append(_plot("unit_lengths", "Masked-unit lengths", "tokens in a run of consecutive predicted tokens",
                       "runs", _hist(st.unit_len, "#d62728", cap=30),
                       note=f"mean {_mean(st.unit_len):.2f} tokens; adjacent units (two masked words side by side) "
                            "count as one run. --masking none writes no labels: no data."))

    def draw_fates(ax) -> bool:
        ts = sorted(st.fates_by_task)
        if not ts:
            return False
        left = np.zeros(len(ts))
        tot = np.array([st.fates_by_task[t][1:].sum() for t in ts], dtype=float)
        for code, name in FATE_NAMES.items():
            share = np.array([st.fates_by_task[t][code] for t in ts]) / np.maximum(tot, 1)
            ax.barh(np.arange(len(ts)), share, left=left, color=FATE_COLORS[name], label=name)
            left += share
        ax.set_yticks(np.arange(len(ts)), ts)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.legend(loc="lower right", fontsize=8)
        return True

    total_f = sum((v for v in st.fates_by_task.values()), np.zeros(4, dtype=np.int64))
    plots.append(_plot("fates", "Fates of predicted tokens", "share of predicted tokens", "task", draw_fates,
                       note="  ".join(f"{name} {int(total_f[c]):,}" for c, name in FATE_NAMES.items())))
    # words and sentences
    plots.append(_plot("word_lengths", "Word lengths", "characters per word", "words",
                       _hist(st.word_chars, "#9467bd", cap=12), note=f"mean {_mean(st.word_chars):.2f} characters"))
    plots.append(_plot("sentence_lengths", "Sentence lengths", "characters per sentence piece", "sentence pieces",
                       _hist(st.sentence_chars, "#8c564b", cap=200),
                       note=f"mean {_mean(st.sentence_chars):.1f} characters; rows do not store sentence bounds: a piece "
                            f"ends at {' '.join(SENTENCE_END)} or at a segment's end (so sentences cut by packing "
                            "count as pieces)"))
    # sequence lengths and padding
    max_len = build.max_seq_length
    plots.append(_plot("row_lengths", "Sequence lengths", "tokens per row", "rows", _hist(st.row_len, "#17becf"),
                       note=f"mean {_mean(st.row_len):.1f} of --max-seq-length {max_len}"))
    lengths = sorted({L for L in (16, 32, 64, 128, 256, 512, 1024) if L <= max_len} | {max_len})
    waste = padding_waste(st.row_len, lengths)

    def draw_waste(ax) -> bool:
        if not waste:
            return False
        pos = np.arange(len(waste))
        ax.bar(pos, [w * 100 for _, w, _ in waste], color="#7f7f7f", label="padding")
        ax.bar(pos, [c * 100 for _, _, c in waste], color="#ff7f0e", width=0.4, label="rows longer (cut)")
        ax.set_xticks(pos, [str(L) for L, _, _ in waste])
        ax.set_ylim(0, 100)
        ax.legend(fontsize=8)
        return True

    plots.append(_plot("padding", "Padding waste at each sequence length", "rows padded to this many tokens",
                       "% of the padded tokens / % of rows", draw_waste,
                       note="; ".join(f"{L}: {w:.0%} padding, {c:.0%} rows longer" for L, w, c in waste)))
    # classes per task: sentence labels from the rows, word-aware classes from the manifest's events
    events = m.get("events") or {}
    word_aware = {}
    for k, v in events.items():
        for t in ("token_document_relation", "capitalization"):
            if k.startswith(f"{t}_words_") and k[len(t) + 7:].isdigit():
                word_aware.setdefault(t, Counter())[int(k[len(t) + 7:])] += int(v)

    def draw_classes(ax) -> bool:
        groups = [(t, c, "rows") for t, c in sorted(st.classes.items())] + \
                 [(t, c, "words") for t, c in sorted(word_aware.items())]
        if not groups:
            return False
        for i, (t, c, _) in enumerate(groups):
            total = sum(c.values())
            left = 0.0
            for k in sorted(c):
                share = c[k] / total
                ax.barh(i, share, left=left, color=f"C{k % 10}", edgecolor="white")
                if share > 0.04:
                    ax.text(left + share / 2, i, str(k), ha="center", va="center", fontsize=7, color="white")
                left += share
        ax.set_yticks(np.arange(len(groups)), [f"{t} ({u})" for t, _, u in groups])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        return True

    plots.append(_plot("classes", "Class balance per task", "share of the task's rows (words for word-aware tasks)",
                       "task", draw_classes, note="segments are labelled with their class number (docs/labels.md)"))
    ents = st.entity_types.most_common()
    plots.append(_plot("entities", "Entity types", "entity spans in the rows", "type",
                       _bars([k for k, _ in ents], [v for _, v in ents], horizontal=True, color="#17a589")))
    rej = sorted((m.get("documents_rejected") or {}).items(), key=lambda kv: -kv[1])
    plots.append(_plot("rejections", "Rejected documents by reason", "documents", "reason",
                       _bars([k for k, _ in rej], [v for _, v in rej], horizontal=True, color="#c0392b"),
                       note=f"{sum(v for _, v in rej):,} of {m.get('documents_read', 0):,} documents read"))
    unk = unk_chars(m)[:15]
    unk_labels = [f"{c} U+{ord(c[0]):04X}" if _has_glyph(c) else f"U+{ord(c[0]):04X}" + ("…" if len(c) > 1 else "")
                  for c, _ in unk]
    plots.append(_plot("unk", "Characters that became [UNK]", "[UNK] tokens", "character",
                       _bars(unk_labels, [v for _, v in unk], horizontal=True, color="#34495e"),
                       note=f"{m.get('unk_tokens', 0):,} [UNK] tokens of {m.get('tokens_written', 0):,}; the most "
                            "frequent listed in the table below"))
    timing = run_timing(build.out)

    def draw_throughput(ax) -> bool:
        if not timing:
            return False
        units = sorted((u for u in timing["units"] if not u.get("reused")), key=lambda u: u["done_s"])
        if not units:
            return False
        t = np.array([0.0] + [float(u["done_s"]) for u in units])
        mb = np.cumsum([0.0] + [u["bytes"] / 1e6 for u in units])
        ax.plot(t, mb, marker="o", markersize=3, color="#1f77b4")
        ax.set_xlim(0, max(t[-1], 1e-3) * 1.02)
        return True

    if timing:
        secs = float(timing.get("seconds", 0))
        done = [u for u in timing["units"] if not u.get("reused")]
        mb = sum(u["bytes"] for u in done) / 1e6
        tnote = (f"last run: {secs:.1f} s, {mb:.2f} MB of input in {len(done)} unit(s) "
                 f"({mb / max(secs, 1e-9):.2f} MB/s, {sum(u['documents'] for u in done) / max(secs, 1e-9):,.0f} "
                 f"documents/s), workers {timing.get('workers')}, engine {timing.get('engine')}"
                 + (f"; {len(timing['units']) - len(done)} finished unit(s) reused" if len(done) < len(timing["units"])
                    else ""))
    else:
        tnote = "build.json has no timing (a build made before zhmask recorded it)"
    plots.append(_plot("throughput", "Throughput of the last run", "seconds since the start", "input MB processed",
                       draw_throughput, note=tnote))
    return plots


# ---------------------------------------------------------------------- the page
CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:left;font-size:.9em}.plots{display:flex;flex-wrap:wrap;gap:1em}figure.plot{margin:0;width:520px}
figure.plot img{width:100%;height:auto;border:1px solid #ddd}figcaption{font-size:.85em;color:#444}
.note{color:#a04000}"""


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def render_html(build, st: Stats, plots: Sequence[Plot], max_rows: int | None) -> str:
    m, cfg = build.manifest, build.config
    total = build.rows
    sample = (f"Row statistics over the first {st.rows:,} of {total:,} rows (--max-rows {max_rows})."
              if st.rows < total else f"Row statistics over all {total:,} rows.")
    facts = [
        ("build", str(build.out)),
        ("zhmask", f"{m.get('zhmask_version')} (schema {m.get('schema_version')}, fingerprint {m.get('fingerprint')})"),
        ("tasks", ", ".join(cfg.get("tasks") or [])),
        ("masking", f"{cfg.get('masking')} (masked_lm_prob {cfg.get('masked_lm_prob')}, dupe_factor "
                    f"{cfg.get('dupe_factor', 1)})"),
        ("max_seq_length", cfg.get("max_seq_length")),
        ("segmenter / entities", f"{cfg.get('segmenter')} / {cfg.get('entities')}"),
        ("documents", f"read {m.get('documents_read', 0):,}, written {m.get('documents_written', 0):,}, rejected "
                      f"{sum((m.get('documents_rejected') or {}).values()):,}"),
        ("rows", f"{total:,} in {len(build.shards)} shard(s)"),
        ("tokens", f"{m.get('tokens_written', 0):,} ([UNK] {m.get('unk_tokens', 0):,})"),
        ("input", f"{m.get('input_bytes', 0) / 1e6:.2f} MB"),
    ]
    figs = []
    for p in plots:
        b64 = base64.b64encode(p.png).decode("ascii")
        note = f"<br>{html.escape(p.note)}" if p.note else ""
        figs.append(f'<figure class="plot" id="plot-{p.key}" data-empty="{str(p.empty).lower()}">'
                    f'<img alt="{html.escape(p.title)}" src="data:image/png;base64,{b64}">'
                    f"<figcaption><b>{html.escape(p.title)}</b>{note}</figcaption></figure>")
    unk = unk_chars(m)
    unk_html = ("<h2>Characters that became [UNK]</h2>" + _table([(c, f"{v:,}  (U+{ord(c[0]):04X})")
                                                                   for c, v in unk])) if unk else ""
    events = m.get("events") or {}
    ev_html = ("<h2>Events</h2>" + _table([(k, f"{v:,}") for k, v in events.items()])) if events else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>zhmask report: "
            f"{html.escape(build.out.name)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>zhmask report: {html.escape(str(build.out))}</h1>\n{_table(facts)}\n"
            f"<p class=\"note\">{html.escape(sample)}</p>\n<div class=\"plots\">\n" + "\n".join(figs)
            + f"\n</div>\n{unk_html}\n{ev_html}\n</body></html>\n")


def write_report(path: str | Path, out: str | Path | None = None, max_rows: int | None = None) -> Path:
    """Write the report of the build at ``path`` to ``out`` (default ``report.html``)."""
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        raise ZhmaskError("zhmask report needs matplotlib: pip install 'zhmask[report]'") from None
    if max_rows is not None and max_rows < 1:
        raise ZhmaskError(f"--max-rows must be at least 1, got {max_rows}")
    build, shards = open_build(path)
    st = collect(build, shards, max_rows)
    page = render_html(build, st, make_plots(build, st), max_rows)
    dest = Path(out) if out is not None else Path("report.html")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ZhmaskError(f"cannot write {dest}: {exc.strerror or exc}") from None
    return dest
