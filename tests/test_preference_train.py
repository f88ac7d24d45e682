"""pipeline=train_reward and pipeline=train_dpo on a tiny editor and a planted preference: the chosen
answers are all low codec ids, the rejected ones all high. The reward model learns to order unseen
pairs; DPO raises the chosen answers' log-prob ratio to the reference over the rejected ones; the
answer log-probs ignore padding and prompt tokens; a killed run resumes to the uninterrupted weights;
the DPO artifact is an editor Editor.load runs; bad input is named."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, SHIPPED_CODEC, kill_when, make_cfg

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = ["pipeline.train.pairs_per_step=4", "pipeline.train.max_len=256", "pipeline.train.log_every=5",
        "pipeline.train.eval_every=10", "pipeline.train.ckpt_every=5", "pipeline.train.save_dtype=float32",
        "pipeline.device=cpu"]
RM = ["pipeline=train_reward", *BASE, "pipeline.train.lr=0.003", "pipeline.train.min_lr=0.0003"]
DPO = ["pipeline=train_dpo", *BASE, "pipeline.train.lr=0.001", "pipeline.train.min_lr=0.0001"]


def _example(rng, i):
    from editor.llm.pairs import example_json
    return example_json({"system": "edit", "instruction": f"Make it sound happy, take {i}.", "text": f"Line {i}.",
                         "target_text": f"Line {i}.", "language": "en", "source_tokens": rng.integers(0, 5120, 16)})


def _rows(n, split, seed, start=0, **extra):
    """n pairs of one split: chosen = 10 low codec ids [0, 64), rejected = 10 high ids [5056, 5120)."""
    rng = np.random.default_rng(seed)
    return [{"pair_id": f"{split}-{start + i}", "prompt_key": f"p{split}{start + i}", "task": "emotion_edit",
             "split": split, "example": _example(rng, start + i), "chosen": rng.integers(0, 64, 10),
             "rejected": rng.integers(5056, 5120, 10), "chosen_score": 9.0, "rejected_score": 1.0, "margin": 8.0,
             "rater": "machine:test", **extra} for i in range(n)]


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    """A fresh tiny editor LLM saved as the SFT trainer saves one (weights, vocab, codec record)."""
    from editor.llm.editor import write_codec_meta
    from editor.llm.model import build_model, load_preset, save
    from editor.llm.vocab import load_vocab
    d = tmp_path_factory.mktemp("sft") / "llm"
    torch.manual_seed(0)
    vocab = load_vocab()
    save(build_model(load_preset("tiny"), vocab), vocab, d)
    write_codec_meta(d, SHIPPED_CODEC)
    return d


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from editor.llm.pairs import write_pairs
    d = tmp_path_factory.mktemp("pairs")
    write_pairs(_rows(16, "train", 1) + _rows(6, "validation", 2), d)
    return d


def _run(overrides):
    import importlib
    from run import model_shorthand   # editor=DIR as on the command line
    cfg = make_cfg(model_shorthand(overrides))
    return importlib.import_module(f"pipelines.{cfg.pipeline.name}").run(cfg)


def _unseen(vocab, n=8):
    """Built (chosen, rejected) sequences of pairs no run saw."""
    from editor.llm import chat
    from editor.llm.pairs import answered, read_pairs, write_pairs
    import tempfile
    with tempfile.TemporaryDirectory() as t:
        write_pairs(_rows(n, "test", 3, start=100), t)
        rows = read_pairs(t)
    return [tuple(chat.build_example(e, vocab) for e in answered(r)) for r in rows]


def test_reward_model_orders_a_planted_preference(sft, pairs, tmp_path):
    from editor.llm import preference_train as pt
    from editor.llm.reward import RewardModel
    out = tmp_path / "rm"
    info = _run([*RM, f"editor={sft}", f"pairs=[{pairs}]", f"output_dir={tmp_path}",
                 f"pipeline.artifact_out={out}", "pipeline.train.steps=30"])
    tj = json.loads((out / "training.json").read_text())
    assert tj["steps"] == 30 and tj["device"] == "cpu" and tj["command"].startswith("python run.py")
    assert tj["train_pairs"] == 16 and tj["validation_pairs"] == 6
    assert tj["train_by_rater_task"] == {"machine:test/emotion_edit": 16}
    assert tj["final"]["val_accuracy"] == 1.0 and info["final"]["val_accuracy"] == 1.0
    assert tj["final"]["val_loss"] < 0.1 < tj["start"]["val_loss"]
    for f in ("reward_head.safetensors", "reward.json", "config.json", "llm_vocab.json", "training_log.jsonl",
              "curves.png"):
        assert (out / f).is_file(), f
    rm = RewardModel.load(out).eval()
    with torch.no_grad():
        rc, rr = (rm(pt.rows_of(_unseen(rm.vocab), rm.vocab, "cpu")[0]).reshape(2, -1))
    assert bool((rc > rr).all()), (rc, rr)
    # the untrained head on the same backbone does not order them: the order was learned
    fresh = RewardModel.from_sft(sft).eval()
    with torch.no_grad():
        fc, fr = fresh(pt.rows_of(_unseen(rm.vocab), rm.vocab, "cpu")[0]).reshape(2, -1)
    assert float((rc - rr).min()) > float((fc - fr).abs().max())


def test_answer_logprobs_ignore_padding_and_prompt_tokens(sft):
    from editor.llm import chat
    from editor.llm.logprobs import answer_logprobs, pad_rows, token_logprobs
    from editor.llm.model import load
    model, vocab = load(sft)
    model.eval()
    (c, r), (c2, _) = _unseen(vocab, 2)
    long = {**c2, "input_ids": np.concatenate([c2["input_ids"]] * 2), "labels": np.concatenate([c2["labels"]] * 2)}
    with torch.no_grad():
        alone = answer_logprobs(model, pad_rows([c], vocab.pad))[0]
        padded = answer_logprobs(model, pad_rows([c], vocab.pad, max_len=len(c["input_ids"]) + 57))[0]
        in_batch = answer_logprobs(model, pad_rows([long, r, c], vocab.pad))[2]
        # by hand: only the answer's audio ids and <|eos|> count
        x = torch.as_tensor(c["input_ids"], dtype=torch.long)[None]
        lp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
        tgt = torch.as_tensor(c["input_ids"][1:], dtype=torch.long)
        n_prompt = int((c["labels"] == chat.IGNORE).sum())
        by_hand = lp[torch.arange(len(tgt)), tgt][n_prompt - 1:].sum()
        # a prompt token given a label would count: the labels, not the positions, decide
        labelled = {**c, "labels": c["labels"].copy()}
        labelled["labels"][5] = labelled["input_ids"][5]
        more = answer_logprobs(model, pad_rows([labelled], vocab.pad))[0]
    assert int((c["labels"] != chat.IGNORE).sum()) == 11, "10 audio ids + <|eos|>"
    assert torch.allclose(alone, padded, atol=1e-4) and torch.allclose(alone, in_batch, atol=1e-4)
    assert torch.allclose(alone, by_hand, atol=1e-4)
    assert torch.allclose(more - alone, lp[4, int(c["input_ids"][5])], atol=1e-4)
    # masked positions contribute exactly 0, whatever their logits
    logits = torch.randn(1, 6, 9) * 100
    labels = torch.tensor([[chat.IGNORE, chat.IGNORE, 3, chat.IGNORE, 4, chat.IGNORE]])
    picked, mask = token_logprobs(logits, labels)
    assert mask.sum() == 2 and bool((picked[~mask] == 0).all())


def _dpo_margins(policy_dir, sft_dir, seqs):
    """[n] (log pi/ref)(chosen) - (log pi/ref)(rejected) on built pairs."""
    from editor.llm import preference_train as pt
    from editor.llm.logprobs import answer_logprobs
    from editor.llm.model import load
    pol, vocab = load(policy_dir)
    ref, _ = load(sft_dir)
    with torch.no_grad():
        b, n = pt.rows_of(seqs, vocab, "cpu")
        d = answer_logprobs(pol.eval(), b) - answer_logprobs(ref.eval(), b)
    return d[:n] - d[n:], d[:n]


def test_dpo_raises_the_chosen_ratio_and_publishes_an_editor(sft, pairs, tmp_path):
    from editor.llm.editor import Editor
    from editor.llm.model import load
    out = tmp_path / "dpo"
    _run([*DPO, f"editor={sft}", f"pairs=[{pairs}]", f"output_dir={tmp_path}",
          f"pipeline.artifact_out={out}", "pipeline.train.steps=20"])
    tj = json.loads((out / "training.json").read_text())
    assert tj["beta"] == 0.1 and tj["steps"] == 20 and tj["tokenizer_version"] == SHIPPED_CODEC
    assert tj["start"]["val_margin"] == pytest.approx(0, abs=1e-4), "policy = reference at step 0"
    assert tj["final"]["val_accuracy"] == 1.0 and tj["final"]["val_margin"] > 0.3   # beta * log-ratio margin
    curve = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert all("train_kl_chosen" in r for r in curve[1:]) and curve[-1]["val_kl_chosen"] > 0
    assert (out / "curves.png").is_file()
    _, vocab = load(sft)
    margin, kl = _dpo_margins(out, sft, _unseen(vocab))
    assert bool((margin > 1.0).all()), margin
    assert bool((kl > 0).all()), "the chosen (low-id) answers became more likely than under SFT"
    ed = Editor.load(out, device="cpu")   # the benchmark's loader: codec record, weights, vocab
    assert ed.vocab.version == vocab.version


def _params(path, reward=False):
    from editor.llm.reward import RewardModel
    from editor.llm.model import load
    m = RewardModel.load(path) if reward else load(path)[0]
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_killed_reward_run_resumes_to_the_uninterrupted_weights(sft, pairs, tmp_path):
    args = [*RM, f"editor={sft}", f"pairs=[{pairs}]", "pipeline.train.steps=20", "pipeline.train.ckpt_every=3"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    a = tmp_path / "a"
    cmd = [sys.executable, "run.py", *args, f"output_dir={a}", f"pipeline.artifact_out={a / 'rm'}"]
    ckpt = a / "rm.checkpoints" / "checkpoint.pt"
    kill_when(cmd, ckpt.is_file, env)
    step = torch.load(ckpt, weights_only=False)["step"]
    assert step < 20 and not (a / "rm").exists(), "killed before the end: nothing published"
    r = subprocess.run([*cmd, "resume=true"], cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from {ckpt} at step {step}" in r.stdout + r.stderr
    b = tmp_path / "b"
    _run([*args, f"output_dir={b}", f"pipeline.artifact_out={b / 'rm'}"])
    pa, pb = _params(a / "rm", True), _params(b / "rm", True)
    for k in pb:
        assert torch.allclose(pa[k], pb[k], atol=1e-6, rtol=1e-5), k
    ca = [json.loads(x) for x in (a / "rm" / "training_log.jsonl").read_text().splitlines()]
    cb = [json.loads(x) for x in (b / "rm" / "training_log.jsonl").read_text().splitlines()]
    # the held-out curve continues where it stopped (train-loss windows differ: one restarts at the resume)
    val = lambda c: [(r["step"], r["val_loss"]) for r in c if "val_loss" in r]
    assert [s for s, _ in val(ca)] == [s for s, _ in val(cb)] == [0, 10, 20]
    assert [v for _, v in val(ca)] == pytest.approx([v for _, v in val(cb)], abs=1e-4)


def test_two_ray_train_workers_match_one(sft, pairs, tmp_path, ray_local):
    args = [*RM, f"editor={sft}", f"pairs=[{pairs}]", "pipeline.train.steps=6", "pipeline.train.ckpt_every=100"]
    _run([*args, f"output_dir={tmp_path / 'one'}", f"pipeline.artifact_out={tmp_path / 'one' / 'rm'}"])
    _run([*args, "pipeline.train.workers=2", f"output_dir={tmp_path / 'two'}",
          f"pipeline.artifact_out={tmp_path / 'two' / 'rm'}"])
    tj = json.loads((tmp_path / "two" / "rm" / "training.json").read_text())
    assert tj["workers"] == 2 and tj["steps"] == 6
    p1, p2 = _params(tmp_path / "one" / "rm", True), _params(tmp_path / "two" / "rm", True)
    assert float((p1["head.weight"] - p2["head.weight"]).abs().max()) < 1e-5
    from editor.llm import preference_train as pt
    from editor.llm.reward import RewardModel
    torch.manual_seed(0)
    start = {k: v.detach().clone() for k, v in RewardModel.from_sft(sft).state_dict().items()}
    assert sum(float((p1[k] - start[k]).abs().sum()) for k in p1) > 0
    diff = {k: float((p1[k] - p2[k]).abs().max()) for k in p1}
    print("max |1 worker - 2 workers| per tensor:", diff)
    # DDP's all-reduce sums in another order; Adam turns a rounding difference in an almost-zero
    # gradient into up to an lr-sized step (3e-3 here), so a rare element may differ by ~1e-4
    for k in p1:
        assert torch.allclose(p1[k], p2[k], atol=1e-3), (k, diff)
        assert float(((p1[k] - p2[k]).abs() > 5e-5).float().mean()) < 1e-3, (k, diff)
    r1, r2 = (RewardModel.load(tmp_path / w / "rm").eval() for w in ("one", "two"))
    with torch.no_grad():
        b = pt.rows_of(_unseen(r1.vocab), r1.vocab, "cpu")[0]
        assert torch.allclose(r1(b), r2(b), atol=1e-3)


def test_bad_input_is_named(sft, pairs, tmp_path):
    from editor.llm.pairs import write_pairs
    from editor.llm.vocab import Vocab, load_vocab
    common = [f"output_dir={tmp_path}", "pipeline.train.steps=1"]
    for p in (RM, DPO):
        with pytest.raises(ValueError, match=r"pairs= is required"):
            _run([*p, f"editor={sft}", *common])
        with pytest.raises(ValueError, match="no pairs.parquet there"):
            _run([*p, f"editor={sft}", f"pairs=[{tmp_path / 'nothing'}]", *common])
        with pytest.raises(ValueError, match="not an editor LLM artifact"):
            _run([*p, f"editor={tmp_path}", f"pairs=[{pairs}]", *common])
        with pytest.raises(ValueError, match="editor= is required"):
            _run([*p, f"pairs=[{pairs}]", *common])
    only_val = tmp_path / "only_val"
    only_val.mkdir()
    write_pairs(_rows(3, "validation", 5), only_val)
    with pytest.raises(ValueError, match="no train-split pairs"):
        _run([*RM, f"editor={sft}", f"pairs=[{only_val}]", *common])
    # pairs of another codec tokenizer (a table that names its codec)
    other = tmp_path / "other_codec"
    other.mkdir()
    write_pairs(_rows(3, "train", 6), other)
    df = pd.read_parquet(other / "pairs.parquet")
    df["tokenizer_version"] = "tokenizer-tiny"
    df.to_parquet(other / "pairs.parquet")
    for p in (RM, DPO):
        with pytest.raises(ValueError, match="vocab mismatch: the pairs' codec ids are of"):
            _run([*p, f"editor={sft}", f"pairs=[{other}]", *common])
    # an editor whose vocab layout does not match its weights
    bad = tmp_path / "bad_vocab"
    shutil.copytree(sft, bad)
    v = load_vocab()
    wider = Vocab(v.text, v.text_size + 64)
    (bad / "llm_vocab.json").write_text(json.dumps({"version": wider.version, "text_size": wider.text_size}))
    with pytest.raises(ValueError, match="vocab mismatch: the model has"):
        _run([*RM, f"editor={bad}", f"pairs=[{pairs}]", *common])
    with pytest.raises(ValueError, match="beta=0.0: must be > 0"):
        _run([*DPO, f"editor={sft}", f"pairs=[{pairs}]", "pipeline.train.beta=0", *common])


def test_resume_refuses_changed_pairs_or_editor_and_a_spent_budget_trains_no_more(sft, pairs, tmp_path):
    """A checkpoint resumes only on the same pairs (in their order) and the same SFT editor, by content
    not path; a run stopped by its time budget publishes on resume instead of training a step more."""
    from editor.llm.pairs import write_pairs
    pa, pb = tmp_path / "a", tmp_path / "b"
    pa.mkdir(), pb.mkdir()
    write_pairs(_rows(8, "train", 1), pa)
    write_pairs(_rows(8, "train", 7, start=50) + _rows(3, "validation", 8), pb)
    args = [*RM, f"editor={sft}", "pipeline.train.steps=4", "pipeline.train.ckpt_every=2", f"output_dir={tmp_path}",
            f"pipeline.artifact_out={tmp_path / 'rm'}"]
    _run([*args, f"pairs=[{pa},{pb}]"])
    with pytest.raises(ValueError, match="other inputs or settings"):
        _run([*args, f"pairs=[{pb},{pa}]", "resume=true"])
    write_pairs(_rows(8, "train", 9), pa)                      # rewritten under the same path
    with pytest.raises(ValueError, match="other inputs or settings"):
        _run([*args, f"pairs=[{pa},{pb}]", "resume=true"])
    copy = tmp_path / "sft_copy"
    shutil.copytree(sft, copy)
    (copy / "llm_vocab.json").write_text((copy / "llm_vocab.json").read_text() + " ")   # another file's bytes
    budget = [*RM, "pipeline.train.steps=50", "pipeline.train.max_minutes=0.00002", f"pairs=[{pa},{pb}]",
              f"output_dir={tmp_path}", f"pipeline.artifact_out={tmp_path / 'rm2'}"]
    first = _run([*budget, f"editor={copy}"])
    again = _run([*budget, f"editor={copy}", "resume=true"])
    assert first["steps"] < 50 and again["steps"] == first["steps"]
    (copy / "llm_vocab.json").write_text((copy / "llm_vocab.json").read_text().rstrip())
    with pytest.raises(ValueError, match="other inputs or settings"):
        _run([*budget, f"editor={copy}", "resume=true"])


def test_dpo_editor_decodes_as_its_sft_editor(sft, pairs, tmp_path):
    """The DPO artifact carries the SFT editor's inference.json and training data summary: Editor.load
    gives it the same guidance, piece lengths and speed ratios, so a benchmark compares weights only."""
    from editor.llm.editor import Editor
    s = tmp_path / "sft"
    shutil.copytree(sft, s)
    (s / "inference.json").write_text(json.dumps({"guidance": {"emotion": 1.5}, "guided_iterations": 1}))
    (s / "training.json").write_text(json.dumps({"tokenizer_version": SHIPPED_CODEC, "data": {
        "emotion_edit": {"source_seconds": {"p90": 5.28}}, "speed_edit": {"length_ratio": {"faster": 0.8}}}}))
    out = tmp_path / "dpo"
    _run([*DPO, f"editor={s}", f"pairs=[{pairs}]", f"output_dir={tmp_path}", f"pipeline.artifact_out={out}",
          "pipeline.train.steps=1"])
    a, b = Editor.load(s, device="cpu"), Editor.load(out, device="cpu")
    assert (b.guidance, b.guided_iterations, b.piece_s, b.speed_ratio) == \
        (a.guidance, a.guided_iterations, a.piece_s, a.speed_ratio) and a.piece_s["emotion"] == 5.28


def test_pairs_a_trainer_cannot_learn_from_are_refused(tmp_path):
    from editor.llm.pairs import read_pairs, write_pairs
    good = _rows(2, "train", 1)
    for bad, msg in ((dict(rejected=good[0]["chosen"]), "the same"),
                     (dict(chosen_score=1.0, rejected_score=9.0), "is not above"),
                     (dict(split="val"), "split 'val'; splits are train, validation, test")):
        with pytest.raises(ValueError, match=msg):
            write_pairs([{**good[0], **bad}, good[1]], tmp_path)
    write_pairs(good, tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="also in"):
        read_pairs([tmp_path / "a.parquet", tmp_path / "a.parquet"])
    write_pairs([{**good[0], "pair_id": "other", "split": "validation"}], tmp_path / "b.parquet")
    with pytest.raises(ValueError, match="in both the train and the validation split"):
        read_pairs([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    df = pd.read_parquet(tmp_path / "a.parquet")
    df.loc[0, "example"] = "{not json"
    df.to_parquet(tmp_path / "c.parquet")
    with pytest.raises(ValueError, match="example is not a JSON object"):
        read_pairs(tmp_path / "c.parquet")


def test_zero_settings_are_named(sft, pairs, tmp_path):
    common = [f"editor={sft}", f"pairs=[{pairs}]", f"output_dir={tmp_path}"]
    for override, msg in (("pipeline.train.ckpt_every=0", "ckpt_every=0"), ("pipeline.train.max_minutes=0", "max_minutes=0"),
                          ("pipeline.train.pairs_per_step=0", "pairs_per_step=0"), ("pipeline.train.lr=0", "lr=0")):
        with pytest.raises(ValueError, match=msg):
            _run([*RM, *common, override])
