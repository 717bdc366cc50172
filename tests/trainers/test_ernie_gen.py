"""ERNIE-GEN training and decoding (trainers/ernie_gen.py, trainers/finetune_gen.py): the model's
multi-flow masks cell by cell, no generation query sees its own target, infilling decoding equals
the training layout, beam width 1 equals greedy, dynamic noise, checkpoints load in transformers,
and `zhmask finetune-gen` end to end with ROUGE. Tiny models (hidden 32, 2 layers)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.conftest import run_cli  # noqa: E402
from trainers.ernie_gen import ErnieGen, FlowCollator, _next_logprobs, assemble, generate, row_example  # noqa: E402

TINY = ["num_layers=2", "hidden_size=32", "num_heads=2", "intermediate_size=64", "batch_size=8", "lr=3e-3",
        "warmup=1", "threads=1", "validation=0.05", "eval_batches=1", "save_every=0", "eval_every=0"]
CLS, SEP, PAD, MASK = 2, 3, 0, 4


def tiny_model(vocab=40, seed=0) -> ErnieGen:
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=PAD)
    return ErnieGen(BertForMaskedLM(cfg)).eval()


def synthetic_row(source, target, span_bounds, fragment_bounds=None):
    src = [CLS, *source, SEP]
    ids = src + list(target) + [SEP]
    return {"example_id": "d#0", "source_ids": np.array(src), "target_ids": np.array(target),
            "input_ids": np.array(ids), "token_type_ids": (np.arange(len(ids)) >= len(src)).astype(int),
            "span_bounds": np.array(span_bounds), "fragment_bounds": fragment_bounds}


def batch_of(rows, flows=("word", "span"), multiple=None):
    out = assemble([row_example(r, SEP) for r in rows], flows, PAD, MASK, multiple)
    return {k: torch.from_numpy(v) for k, v in out.items()}


def test_model_masks_equal_documented_cells():
    # source [CLS] a [SEP] (s0..s2), target x y and its [SEP] (t0..t2); spans: "x y", then [SEP]
    b = batch_of([synthetic_row([10], [11, 12], [0, 2])])
    # docs/ernie_gen.md "Attention masks", written out by hand; keys s0 s1 s2 t0 t1 t2 | W0 W1 W2 | P0 P1 P2
    expected = """
        s0 111 000 000 000
        s1 111 000 000 000
        s2 111 000 000 000
        t0 111 100 000 000
        t1 111 110 000 000
        t2 111 111 000 000
        W0 111 000 100 000
        W1 111 100 010 000
        W2 111 110 001 000
        P0 111 000 000 100
        P1 111 000 000 010
        P2 111 110 000 001"""
    want = np.array([[c == "1" for c in "".join(line.split()[1:])] for line in expected.strip().splitlines()])
    got = (tiny_model().attention_bias(b)[0, 0] == 0).numpy()   # what BERT receives
    assert got.shape == (12, 12)
    assert (got == want).all(), np.argwhere(got != want)
    # [ATTN] queries: the [MASK] embedding at the position of the token they predict, labels the clean target
    assert b["input_ids"][0, 6:].tolist() == [MASK] * 6
    assert b["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5]
    assert b["labels"][0].tolist() == [-100] * 6 + [11, 12, SEP] * 2
    # a fragment example: positions are those of the original text (fragments.original_positions)
    fb = batch_of([synthetic_row([10, 13], [11], [0, 1], fragment_bounds=np.array([1, 2]))])
    # original: 10 11 13 -> [CLS]=0, 10 at 1, 13 at 3, source [SEP] 4, target 11 at 2, its [SEP] 5
    assert fb["position_ids"][0, :6].tolist() == [0, 1, 3, 4, 2, 5]


def test_padded_batch_keeps_each_example_mask():
    short, long = synthetic_row([10], [11, 12], [0, 2]), synthetic_row([10, 14, 15], [11, 12, 13, 16], [0, 1, 4])
    alone = batch_of([short])["flow_mask"][0]
    both = batch_of([long, short], multiple=8)
    m = both["flow_mask"][1]
    lm, ntm = both["flow"].shape[1] - 2 * 5, 5
    keep = [*range(6), lm, lm + 1, lm + 2, lm + ntm, lm + ntm + 1, lm + ntm + 2]
    assert torch.equal(m[keep][:, keep], alone)
    assert not m[keep][:, [i for i in range(m.shape[1]) if i not in keep]].any()   # never a padding key


def test_generation_query_never_sees_its_own_target():
    model = tiny_model()
    row = synthetic_row([10, 20, 21], [11, 12, 13, 14, 15, 16], [0, 2, 5, 6])
    ex = row_example(row, SEP)
    ns, nt, starts = ex["ns"], ex["nt"], ex["starts"]

    def logits(r):
        b = batch_of([r])
        h = model.hidden(b)[0]
        return model.model.cls(h[b["flow"][0] == 1]), model.model.cls(h[b["flow"][0] == 2])

    with torch.no_grad():
        w0, s0 = logits(row)
        for j in range(nt - 1):   # change the target token at position j
            changed = dict(row, input_ids=row["input_ids"].copy())
            changed["input_ids"][ns + j] = 30
            w1, s1 = logits(changed)
            for i in range(nt):
                same_w = torch.allclose(w0[i], w1[i], atol=1e-6)
                same_s = torch.allclose(s0[i], s1[i], atol=1e-6)
                assert same_w == (i <= j), (j, i)            # word-by-word: sees targets before i only
                assert same_s == (starts[i] <= j), (j, i)    # span-by-span: only before its span


def test_infilling_step_equals_training_layout():
    """A decoding step's next-token distribution is the word-by-word flow's on the same prefix."""
    model = tiny_model()
    row = synthetic_row([10, 20, 21, 22], [11, 12, 13], [0, 1, 2, 3])
    b = batch_of([row], flows=("word",))
    with torch.no_grad():
        h = model.hidden(b)[0]
        train_lp = torch.log_softmax(model.model.cls(h[b["flow"][0] == 1]).float(), -1)
        target = row["target_ids"].tolist()
        for t in range(len(target) + 1):
            lp = _next_logprobs(model, [row["source_ids"]], [target[:t]], PAD, MASK, [], "cpu")[0]
            assert torch.allclose(lp, train_lp[t], atol=1e-5), t


def test_beam_width_one_equals_greedy():
    model = tiny_model(seed=3)
    sources = [[CLS, 10, 11, SEP], [CLS, 12, 13, 14, 15, 16, SEP], [CLS, 17, SEP], [CLS, 20, 21, 22, SEP]]
    kw = dict(sep_id=SEP, pad_id=PAD, attn_id=MASK, banned=[PAD, CLS, MASK], max_length=7)
    greedy = generate(model, sources, **kw)
    assert any(len(g) > 1 for g in greedy)
    for alpha in (0.0, 2.0):
        assert generate(model, sources, beam_size=1, length_penalty=alpha, **kw) == greedy
    wide = generate(model, sources, beam_size=4, **kw)
    assert all(1 <= len(w) <= 7 and not set(w) & {PAD, CLS, MASK, SEP} for w in wide)
    # the beam's pick scores at least the greedy sequence (sum of log p / length)
    def score(src, seq):
        toks, s = list(seq) + [SEP], 0.0
        for t in range(len(toks)):
            s += float(_next_logprobs(model, [np.array(src)], [toks[:t]], PAD, MASK, [PAD, CLS, MASK], "cpu",
                                      SEP, 1)[0, toks[t]])
        return s / len(toks)
    for src, g, w in zip(sources, greedy, wide):
        if len(g) < 7 and len(w) < 7:
            assert score(src, w) >= score(src, g) - 1e-5


@pytest.fixture(scope="module")
def gen_build(tmp_path_factory):
    from zhmask.api import build_corpus
    from zhmask.config import BuildConfig

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("erniegen")
    res = build_corpus(BuildConfig(out=str(root / "eg"), max_seq_length=64, masking="none", tasks=["ernie_gen"]))
    return Path(res.out_dir), root


def test_dynamic_noise_epochs(gen_build):
    from trainers.common import make_config
    from zhmask.reader import Build, ShardDataset

    build = Build(gen_build[0])
    rows = [ShardDataset(build, split=None)[i] for i in range(40)]
    dyn = FlowCollator(build, make_config(None, ["gen_noise=dynamic"]))
    stored = FlowCollator(build, make_config(None, []))
    assert stored.mode == "shards" and dyn.mode == "dynamic"
    e0 = [dyn.inputs(r) for r in rows]
    assert all(np.array_equal(a, r["input_ids"]) for a, r in zip(e0, rows))   # epoch 0 = the static shard
    dyn.set_epoch(1)
    e1 = [dyn.inputs(r) for r in rows]
    assert any(not np.array_equal(a, b) for a, b in zip(e0, e1))
    for a, r in zip(e1, rows):   # only target inputs change; labels stay the clean target
        ns = len(r["source_ids"])
        assert np.array_equal(a[:ns], r["source_ids"]) and a[-1] == build.sep_id
    assert torch.equal(dyn(rows)["labels"], stored(rows)["labels"])
    with pytest.raises(Exception, match="gen_noise"):
        FlowCollator(build, make_config(None, ["gen_noise=sometimes"]))


@pytest.fixture(scope="module")
def pretrained(gen_build):
    data, root = gen_build
    run = root / "run"
    code, out, err = run_cli("pretrain", "ernie_gen", "--data", str(data), "--out", str(run), "-q",
                             *[x for s in TINY + ["max_steps=8"] for x in ("--set", s)])
    assert code == 0, err
    return run


def test_pretrain_logs_both_flows_and_loads_in_transformers(pretrained):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    recs = [json.loads(x) for x in (pretrained / "log.jsonl").read_text().splitlines()]
    steps = [r for r in recs if "eval" not in r]
    assert len(steps) == 8 and all("loss_word" in r and "loss_span" in r for r in steps)
    assert sum(r["loss"] for r in steps[-3:]) < sum(r["loss"] for r in steps[:3])   # it learns
    assert {"word_accuracy", "span_accuracy"} <= set(recs[-1]["eval"])
    final = pretrained / "final"
    hf = AutoModelForMaskedLM.from_pretrained(str(final)).eval()
    tok = AutoTokenizer.from_pretrained(str(final))
    ids = tok("再就业工程取得新的成绩。", return_tensors="pt")
    from trainers.common import make_config
    from trainers.ernie_gen import make_model
    from zhmask.reader import Build

    ours = make_model(make_config(None, TINY), Build(json.loads((pretrained / "train_config.json").read_text())["data"]), [])
    ours.load(final)
    ours.eval()
    with torch.no_grad():
        assert torch.allclose(hf(**ids).logits, ours.model(**ids).logits, atol=1e-5)
    assert type(hf).__name__ == "BertForMaskedLM"


def test_finetune_gen_cli_rouge(pretrained, tmp_path, fixtures):
    lines = (fixtures / "inews_150.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "tr.jsonl").write_text("\n".join(lines[:24]) + "\n", encoding="utf-8")
    (tmp_path / "dv.jsonl").write_text("\n".join(lines[140:146]) + "\n", encoding="utf-8")
    args = ["finetune-gen", str(pretrained / "final"), "--train", str(tmp_path / "tr.jsonl"),
            "--dev", str(tmp_path / "dv.jsonl"), "--max-seq-length", "96", "--max-length", "6", "-q",
            "--set", "max_steps=3", "--set", "batch_size=8", "--set", "threads=1"]
    code, out, err = run_cli(*args, "--out", str(tmp_path / "ft"), "--beam", "2")
    assert code == 0, err
    res = json.loads((tmp_path / "ft" / "results.json").read_text(encoding="utf-8"))
    assert res["dev_examples"] == 6 and res["train_examples"] == 24 and res["steps"] == 3
    assert all(0.0 <= res[k] <= 100.0 for k in ("rouge1", "rouge2", "rougeL"))
    def han(text):   # the Chinese characters (punctuation is normalised by the build)
        return "".join(c for c in text if "\u4e00" <= c <= "\u9fff")

    titles = [han(json.loads(x)["title"]) for x in lines[140:146]]
    for ex in res["examples"]:   # the reference is a dev title (cut to max_target_length tokens)
        assert ex["generated"] and any(t.startswith(han(ex["reference"])) and ex["reference"] for t in titles)
    # bad input: one line, exit code 2
    code, out, err = run_cli(*args, "--out", str(tmp_path / "bad"), "--target-field", "headline")
    assert code == 2 and "headline" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(*args, "--out", str(tmp_path / "ft"))   # a finished run is not overwritten
    assert code == 2 and "already holds" in err and len(err.strip().splitlines()) == 1


def test_character_rouge_from_rouge_score():
    from trainers.finetune_gen import rouge

    assert rouge(["大吉大利"], ["大吉大利"]) == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    r = rouge(["大吉"], ["大吉大利"])   # P 1, R 1/2 on characters; bigrams: 1 of 3
    assert r["rouge1"] == pytest.approx(200 / 3) and r["rouge2"] == pytest.approx(50.0)
    assert rouge(["今晚 孔乙鸡"], ["今晚孔乙鸡"])["rougeL"] == 100.0   # spaces are not characters
