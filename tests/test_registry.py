"""Declared parts (zhmask/registry.py): every entry of every registry declares a version, boolean
traits, real config fields and options the config accepts; the CLI's help and choices, the
manifest, the fingerprint and ``zhmask verify``'s checks come from the registries."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from conftest import run_cli
from zhmask.config import BuildConfig
from zhmask.errors import ZhmaskError
from zhmask.registry import KINDS, OUTPUT_KINDS, Registry, part_versions, registry

ALL = [(kind, name) for kind in KINDS for name in registry(kind).names()]
CONFIG_FIELDS = {f.name for f in dataclasses.fields(BuildConfig)}


def test_every_kind_has_entries_and_every_config_choice_is_registered():
    for kind in KINDS:
        assert registry(kind).names(), kind
    assert set(registry("segmenter").names()) >= {"rjieba", "jieba", "pkuseg", "char"}
    assert set(registry("entities").names()) >= {"lexicon", "spacy", "none"}
    assert set(registry("engine").names()) >= {"local", "ray"}
    assert set(registry("tokenizer").names()) >= {"wordpiece", "tokenizer_json"}


@pytest.mark.parametrize("kind,name", ALL)
def test_entry_declares_version_traits_fields_and_options(kind, name):
    reg = registry(kind)
    e = reg.entries[name]
    assert e.name == name and callable(e.fn) and reg[name] is e.fn
    assert isinstance(e.version, int) and not isinstance(e.version, bool) and e.version >= 1
    assert e.versioned == f"{name}@{e.version}"
    assert set(e.traits) == set(reg.trait_names)
    assert all(type(v) is bool for v in e.traits.values())
    assert set(e.fields) <= CONFIG_FIELDS, sorted(set(e.fields) - CONFIG_FIELDS)
    assert isinstance(e.help, str) and "\n" not in e.help
    assert all(callable(c) for c in e.checks)
    json.dumps(e.options)  # knobs travel in the config (TOML, JSON, shard metadata)


def _config_selecting(kind: str, name: str, **extra) -> BuildConfig:
    """A valid config that selects ``name`` of ``kind``, with its declared options set."""
    from zhmask.labels import TASKS

    if kind == "tasks":
        unmasked = TASKS.has(name, "unmasked")
        fields = {"source_field": "src", "target_field": "tgt"} if name == "seq2seq" else {}
        return BuildConfig(tasks=[name], masking="none" if unmasked else "wwm", options=extra, **fields)
    return BuildConfig(masking=name, options=extra)


@pytest.mark.parametrize("kind,name", [(k, n) for k, n in ALL if k in ("tasks", "masking")])
def test_declared_options_are_accepted_and_others_refused(kind, name):
    opts = registry(kind).entries[name].options
    assert _config_selecting(kind, name, **opts).validate()  # every declared knob, at its default
    with pytest.raises(ZhmaskError, match="--option no_such_knob: not a knob of"):
        _config_selecting(kind, name, no_such_knob=1).validate()


def test_registry_refuses_undeclared_traits_and_bad_versions():
    reg = Registry("widget", traits=("shiny",))
    with pytest.raises(ValueError, match="unknown trait"):
        reg.register("a", traits=("dull",))
    for bad in (0, True, "2"):
        with pytest.raises(ValueError, match="version"):
            reg.register("b", version=bad)
    reg.register("c", traits=("shiny",), version=3)(len)
    assert reg.has("c", "shiny") and reg.entries["c"].versioned == "c@3"
    with pytest.raises(KeyError):
        reg.has("c", "dull")
    with pytest.raises(KeyError):
        reg.has("d", "shiny")
    assert reg.has("d", "shiny", unknown=True) and not reg.has("d", "shiny", unknown=False)
    with pytest.raises(ZhmaskError, match="unknown widget 'd'; known: c"):
        reg.entry("d")


def test_make_by_name_goes_through_the_registry():
    from zhmask.steps.entities import make_entity_detector
    from zhmask.steps.segment import make_segmenter

    assert make_segmenter("char").segment("好天气").texts("好天气") == ["好", "天", "气"]
    with pytest.raises(ZhmaskError, match="unknown segmenter 'ltp'; known: char, jieba, pkuseg, rjieba"):
        make_segmenter("ltp")
    with pytest.raises(ZhmaskError, match="unknown entity detector 'crf'"):  # (was silently no entities)
        make_entity_detector("crf")


def test_whole_word_trait_decides_the_partial_word_check():
    """verify's partial-word check follows the strategy's trait, not a list of names."""
    from zhmask.checks import row_checks
    from zhmask.masking import STRATEGIES

    row = {"task": "mlm", "input_ids": [101, 5, 6, 7, 102], "labels": [-100, 5, -100, -100, -100],
           "word_ids": [-1, 0, 0, 1, -1]}  # word 0 half predicted
    ctx = {"config": {"masking": "?", "max_predictions_per_seq": 20}, "mask_id": 103}
    for name in STRATEGIES.names():
        if name in ("none", "knowledge"):
            continue
        ctx["config"]["masking"] = name
        found = [p for fn in row_checks("mlm", name) for p in fn(dict(row, span_bounds=[0, 1]), ctx)]
        partial = any("only partly predicted" in p for p in found)
        assert partial == STRATEGIES.has(name, "whole_word"), (name, found)


def test_manifest_records_part_versions_and_the_fingerprint_follows_them(tmp_path, monkeypatch):
    from zhmask.masking import STRATEGIES

    src = tmp_path / "in.txt"
    src.write_text("今天天气很好。我们去公园散步。\n北京是中国的首都。\n", encoding="utf-8")
    code, _, err = run_cli("build-corpus", str(src), "--masking", "wwm", "--out", str(tmp_path / "o"), "-q")
    assert code == 0, err
    m = json.loads((tmp_path / "o" / "manifest.json").read_text(encoding="utf-8"))
    assert m["parts"] == {"tokenizer": "wordpiece@1", "segmenter": "rjieba@1", "entities": "lexicon@1",
                          "tasks": ["mlm@1"], "masking": "wwm@1"}  # (the engine makes no difference)
    cfg = BuildConfig(masking="wwm")
    before = cfg.fingerprint()
    assert part_versions(cfg, OUTPUT_KINDS)["masking"] == "wwm@1"
    monkeypatch.setattr(STRATEGIES.entries["wwm"], "version", 2)  # a changed part is never resumed into
    assert cfg.fingerprint() != before
    assert BuildConfig(masking="wwm", engine="ray").fingerprint() == cfg.fingerprint()  # engines: same shards


@pytest.fixture
def plugin_strategy():
    """A masking strategy registered at run time, as a plugin would (removed afterwards)."""
    from zhmask.masking import STRATEGIES

    STRATEGIES.register("test_plugin_mask", help="a plugin")(STRATEGIES["char"])
    yield "test_plugin_mask"
    STRATEGIES.pop("test_plugin_mask")
    STRATEGIES.entries.pop("test_plugin_mask")


def test_cli_help_lists_the_registered_names(plugin_strategy):
    code, out, _ = run_cli("build-corpus", "--help")
    assert code == 0
    flat = " ".join(out.split())
    for kind in ("segmenter", "entities", "tasks", "masking", "engine"):
        for name in registry(kind).names():
            assert name in flat, (kind, name)
    assert plugin_strategy in flat  # registered after start-up, still listed
    code, _, err = run_cli("build-corpus", "--masking", "no_such", "--out", "x")
    assert code == 2 and "'no_such' is not one of" in err and plugin_strategy in err
    code, out, _ = run_cli("eval-segmenter", "--help")
    assert code == 0 and all(n in " ".join(out.split()) for n in registry("segmenter").names())


def test_engines_share_the_base():
    from zhmask.engines.base import Engine
    from zhmask.engines.local import LocalEngine
    from zhmask.engines.ray_engine import RayEngine

    assert issubclass(LocalEngine, Engine) and issubclass(RayEngine, Engine)
    for cls in (LocalEngine, RayEngine):  # the search for a killer is the base's; the rerun is each engine's
        assert "find_killer" not in vars(cls) and {"rerun_dies", "first_killer", "run"} <= set(vars(cls))


def test_job_errors_become_one_line(tmp_path, pipeline, monkeypatch):
    """run_job reads its unit (a descriptor) and turns a worker's failure into data;
    Engine.result raises it as one line of the right class, or collects the stats."""
    from zhmask.engines.base import Engine, payload, run_job
    from zhmask.errors import BuildFailed
    from zhmask.steps.plan import UnitDescriptor
    from zhmask.steps.read import Segment

    class Breaking:  # the normaliser, failing on one document's text
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, text, **kw):
            if "坏" in text:
                raise ValueError("cannot translate")
            return self.inner(text, **kw)

    def unit(n: int, name: str, text: str, end: int | None = None) -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        size = path.stat().st_size
        return payload(UnitDescriptor(n, (Segment(str(path), name, "text", 0, size if end is None else end),)))

    monkeypatch.setattr(pipeline, "normalizer", Breaking(pipeline.normalizer))
    res = run_job(pipeline, unit(0, "x.txt", "今天天气很好。\n" * 8 + "坏。\n"), tmp_path)
    assert res["kind"] == "crash" and res["stats"] is None and res["span"] == "x.txt:1 .. x.txt:9"
    eng = Engine(BuildConfig(), tmp_path, lambda st: None)
    with pytest.raises(BuildFailed, match="document x.txt:9 crashed the pipeline: ValueError"):
        eng.result(res)
    with pytest.raises(BuildFailed, match=r"unit 7 \(documents x.txt:9 .. x.txt:9\) failed in a worker process: K"):
        eng.result({"unit": 7, "stats": None, "error": "KeyError: 'k'", "kind": "other", "span": "x.txt:9 .. x.txt:9"})
    with pytest.raises(ZhmaskError, match="disk full") as info:
        eng.result({"unit": 1, "stats": None, "error": "disk full", "kind": "BadInputFile", "span": ""})
    assert type(info.value).__name__ == "BadInputFile"
    res = run_job(pipeline, unit(2, "short.txt", "今天天气很好。\n", end=999), tmp_path)  # the file shrank
    assert res["kind"] == "BadInputFile" and "short.txt: ends before byte 999" in res["error"]
    got = []
    res = run_job(pipeline, unit(3, "y.txt", "今天天气很好。\n"), tmp_path)
    Engine(BuildConfig(), tmp_path, got.append).result(res)
    assert got[0]["unit"] == 3 and got[0]["documents_written"] == 1
    assert got[0]["input_ranges"] == [{"name": "y.txt", "start": 0, "end": 22,
                                       "sha256": hashlib.sha256("今天天气很好。\n".encode()).hexdigest()}]
