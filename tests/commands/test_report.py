"""``zhmask report`` (the page, its plots, the statistics behind them, a headless browser) and the
build's progress and summary (issue 18, "Seeing the data")."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from conftest import run_cli

from zhmask.api import build_corpus, known_input_bytes
from zhmask.config import BuildConfig
from zhmask.reader import Build

PLOTS = ("rows", "unit_lengths", "fates", "word_lengths", "sentence_lengths", "row_lengths", "padding", "classes",
         "entities", "rejections", "unk", "throughput")
CHROMIUM = Path("/usr/bin/chromium")
FIGURE = re.compile(r'<figure class="plot" id="plot-([a-z_]+)" data-empty="(true|false)">'
                    r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="module")
def built(tmp_path_factory, fixtures) -> Path:
    """12 iNews documents (one too short for a second line of text rejected by --min-cjk-ratio),
    MLM + SOP + token-document relation, whole-word masking, two shards."""
    tmp = tmp_path_factory.mktemp("report")
    src = tmp / "i12.jsonl"
    lines = (fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines(True)[:12]
    src.write_text("".join(lines) + json.dumps({"text": "abc def ghi jkl 123"}) + "\n", encoding="utf-8")
    out = tmp / "o"
    build_corpus(BuildConfig(inputs=[str(src)], text_field="text", title_field="title",
                             tasks=["mlm", "sop", "token_document_relation"], masking="wwm", docs_per_shard=7,
                             min_cjk_ratio=0.3, out=str(out)))
    return out


@pytest.fixture(scope="module")
def report(built, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("page") / "report.html"
    code, out, err = run_cli("report", str(built), "--out", str(dest))
    assert code == 0, err
    assert out.strip() == f"wrote {dest}"
    return dest


def _all_rows(out: Path) -> list[dict]:
    rows = []
    for p in Build(out).shards:
        with pa.memory_map(str(p)) as src:
            rows += ipc.open_stream(src).read_all().to_pylist()
    return rows


def test_every_plot_present_as_a_decodable_png(report):
    from PIL import Image

    page = report.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page  # self-contained
    found = FIGURE.findall(page)
    assert [k for k, _, _ in found] == list(PLOTS)
    empty = {k for k, e, _ in found if e == "true"}
    assert empty == set()  # this build has data for every plot (a rejected document, [UNK]s, timing)
    for key, _, b64 in found:
        data = base64.b64decode(b64)
        assert len(data) > 5000, key
        im = Image.open(io.BytesIO(data))
        im.load()
        assert im.format == "PNG" and im.size[0] >= 600 and im.size[1] >= 300, key
        px = np.asarray(im.convert("L"))
        assert px.std() > 10, key  # more than a blank canvas
    assert "Row statistics over all" in page


def test_statistics_match_the_rows_and_manifest(built):
    from zhmask.report import collect, padding_waste

    b = Build(built)
    st = collect(b, b.shards)
    rows = _all_rows(built)
    m = b.manifest
    assert st.rows == len(rows) == m["examples_written"]
    assert dict(st.rows_by_task) == dict(Counter(r["task"] for r in rows))
    # fates counted from the shards equal the masking strategy's own counters
    total = sum(st.fates_by_task.values())
    assert total[1:].tolist() == [m["masking"]["tokens_mask"], m["masking"]["tokens_random"], m["masking"]["tokens_keep"]]
    lens = [len(r["input_ids"]) for r in rows]
    assert st.row_len.sum() == len(rows) and (np.arange(len(st.row_len)) * st.row_len).sum() == sum(lens)
    assert {t: dict(c) for t, c in st.classes.items()} == {t: {int(k): v for k, v in c.items()}
                                                          for t, c in m["label_counts"].items()}
    assert dict(st.entity_types) == dict(Counter(e["type"] for r in rows for e in (r["entities"] or [])))
    # masked units: runs of consecutive predicted positions
    runs = Counter()
    for r in rows:
        k = 0
        for lab in r["labels"] + [-100]:
            if lab != -100:
                k += 1
            elif k:
                runs[k] += 1
                k = 0
    assert {i: int(v) for i, v in enumerate(st.unit_len) if v} == dict(runs)
    # padding to the longest row wastes what the rows leave empty; nothing is cut
    L = max(lens)
    ((_, waste, cut),) = padding_waste(st.row_len, [L])
    assert cut == 0 and waste == pytest.approx(1 - sum(lens) / (len(rows) * L))


def test_max_rows_says_it_sampled(built):
    from zhmask.report import collect, render_html

    b = Build(built)
    st = collect(b, b.shards, max_rows=5)
    assert st.rows == 5
    assert f"first 5 of {b.rows:,} rows (--max-rows 5)" in render_html(b, st, [], 5)


def test_no_data_plots_say_so():
    from zhmask.report import _plot

    p = _plot("x", "Nothing", "x label", "y label", lambda ax: False)
    assert p.empty and p.png.startswith(b"\x89PNG")


def test_missing_matplotlib_is_one_line(built, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an environment without it imports
    code, _, err = run_cli("report", str(built), "--out", str(tmp_path / "r.html"))
    assert code == 2 and err.count("\n") == 1 and "pip install 'zhmask[report]'" in err


def test_report_of_a_missing_build(tmp_path):
    code, _, err = run_cli("report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html"))
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.querySelectorAll('figure.plot img')];
  imgs.forEach(i => i.setAttribute('data-rendered', String(i.complete && i.naturalWidth > 0)));
  document.body.setAttribute('data-plots', String(imgs.length));
  document.body.setAttribute('data-rendered', String(imgs.filter(i => i.complete && i.naturalWidth > 0).length));
});
</script>"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium); "
                                                  "test_every_plot_present_as_a_decodable_png covers the page without it")
def test_every_plot_renders_in_a_headless_browser(report, tmp_path):
    page = tmp_path / "check.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    r = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                        "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    body = re.search(r"<body[^>]*>", r.stdout)
    assert body, r.stdout[:500]
    assert f'data-plots="{len(PLOTS)}"' in body.group(0) and f'data-rendered="{len(PLOTS)}"' in body.group(0)
    assert r.stdout.count('data-rendered="true"') == len(PLOTS)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


# ---------------------------------------------------------------------- progress and summary
def test_summary_says_what_was_written(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("今天北京的天气很好，我们去公园散步。\n人民日报发表了评论文章，引起广泛关注。\n", encoding="utf-8")
    code, out, err = run_cli("build-corpus", str(src), "--dupe-factor", "2", "--out", str(tmp_path / "o"))
    assert code == 0, err
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    n = sum(m["examples_by_task"].values())
    assert f"rows       {2 * n:,} in 1 shard(s): dupe_factor 2, 2 copies of each of {n:,} examples = 2 x {n:,} rows" in out
    assert "masking    none: no masks written" in out and "DynamicMasking" in out
    code, out, err = run_cli("build-corpus", str(src), "--masking", "wwm", "--out", str(tmp_path / "w"))
    assert code == 0, err
    m = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert "one per example" in out
    assert f"masking    wwm: {m['masking']['predicted_tokens']:,} tokens predicted" in out


def test_progress_knows_the_input_size(tmp_path, fixtures):
    from zhmask.cli import Reporter
    from zhmask.steps.read import InputFile

    src = fixtures / "inews_150.jsonl"
    cfg = BuildConfig(inputs=[str(src)], docs_per_shard=50, out=str(tmp_path / "o"))
    assert known_input_bytes(cfg, [InputFile(src, src.name)]) == src.stat().st_size
    gz = tmp_path / "x.jsonl.gz"
    gz.write_bytes(b"")
    assert known_input_bytes(cfg, [InputFile(gz, gz.name)]) is None
    seen = []
    rep = Reporter(enabled=False)

    def progress(stats):
        rep.update(stats)
        seen.append((rep.total, rep.bytes))

    build_corpus(cfg, progress=progress)
    assert seen[0] == (src.stat().st_size, 0)  # the total comes first
    assert seen[-1] == (src.stat().st_size, src.stat().st_size)  # and the units' bytes add up to it
    run = json.loads((tmp_path / "o" / "build.json").read_text())["run"]
    assert [u["unit"] for u in run["units"]] == [0, 1, 2] and sum(u["bytes"] for u in run["units"]) == src.stat().st_size


def test_train_segmenter_reports_each_iteration(fixtures, tmp_path):
    pytest.importorskip("spacy_pkuseg")
    from zhmask.segquality import read_gold
    from zhmask.segquality.training import train_segmenter

    train = read_gold(str(fixtures / "pd1998_gold_200.txt"), "auto", limit=20)
    done = []
    meta = train_segmenter(train, tmp_path / "m", iterations=2, progress=done.append)
    assert done == [1, 2] and len(meta["dev_log"]) == 2


def test_unk_characters_most_frequent_first(built):
    from zhmask.report import unk_chars

    m = Build(built).manifest
    got = unk_chars(m)
    assert got and sorted(v for _, v in got) == [v for _, v in got][::-1]
    assert dict(got) == m["unk_chars"]
