"""pipeline=train_editor: the tiny LLM learns edits and clones from token releases exactly; a killed run
resumes to the weights an uninterrupted run reaches; 2 Ray Train workers (gloo) train what 1 worker
trains on the same global batch; the compiled loss trains as the eager one; artifacts and bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, kill_when, make_cfg, tiny_llm, write_token_release
from editor.artifacts import SHIPPED_TOKENIZER, weights_digest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = ["pipeline=train_editor", "llm=tiny", "editor=tiny", "pipeline.train.rows=4", "pipeline.train.max_len=256",
        "pipeline.train.warmup=5", "pipeline.train.log_every=5", "pipeline.train.eval_every=10",
        "pipeline.train.ckpt_every=5", "pipeline.train.max_minutes=30", "pipeline.train.save_dtype=float32"]


def _ids(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 5120, n)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    """Four speakers: three train (one edit each, distinct tags and targets; two with a voice prompt,
    so two clone examples), one validation."""
    d = tmp_path_factory.mktemp("tok") / "emotion_triplets_tokens"
    ex = []
    for i, (spk, split, tag) in enumerate([("a", "train", "happy"), ("b", "train", "sad"), ("c", "train", "angry"),
                                           ("d", "validation", "happy")]):
        src = _ids(i, 30)
        ex.append({"key": f"emotion_{spk}_{i:04d}", "split": split, "speaker": spk, "tag": tag,
                   "text": f"Sentence number {i}.", "src": src, "tgt": _ids(100 + i, 25 + 5 * i),
                   "prompt": _ids(200 + i, 20) if i < 2 else None})
    # the shipped tokenizer's digest, as pipeline=tokenize records it: the LLM records it in turn
    return write_token_release(d, ex, digest=weights_digest(SHIPPED_TOKENIZER)), ex


def _run(overrides):
    import importlib
    cfg = make_cfg(overrides)
    return importlib.import_module("pipelines.train_editor").run(cfg), cfg


def _teacher_forced_exact(art_dir, data) -> tuple[int, int]:
    """(exactly reproduced examples, examples): greedy decoding reproduces an example exactly iff the
    argmax at every target position (audio ids and <|eos|>) is the target, given the target so far."""
    from editor.llm import chat
    from editor.llm.data import load_examples
    from editor.llm.model import load
    model, vocab = load(art_dir)
    model.eval()
    exs = [e for v in load_examples(str(data), "train").values() for e in v]
    good = 0
    for e in exs:
        seq = chat.build_example(e, vocab)
        x = torch.as_tensor(seq["input_ids"], dtype=torch.long)[None]
        with torch.no_grad():
            pred = model(input_ids=x).logits[0, :-1].argmax(-1).numpy()
        want = seq["labels"][1:]
        on = want != chat.IGNORE
        good += bool((pred[on] == want[on]).all())
    return good, len(exs)


def test_tiny_llm_learns_every_training_example_exactly(tokens, tmp_path):
    data, _ = tokens
    out = tmp_path / "llm"
    info, _ = _run([*BASE, f"data=[{data}]", f"output_dir={tmp_path}", f"pipeline.artifact_out={out}",
                    "pipeline.train.steps=150", "pipeline.train.lr=0.003", "pipeline.train.keep_best=false"])
    good, n = _teacher_forced_exact(out, data)
    assert n == 5, "3 edits + 2 clone examples of the train split"
    assert good == n, f"{good}/{n} examples reproduced exactly"
    tj = json.loads((out / "training.json").read_text())
    assert tj["published_step"] == 150, "keep_best=false publishes the last weights"
    assert tj["tokenizer_digest"] == weights_digest(SHIPPED_TOKENIZER)   # Editor.load checks the codec by it
    assert tj["steps"] == 150 and tj["data"]["emotion_edit"]["examples"] == 3 and tj["data"]["clone"]["examples"] == 2
    assert tj["validation_examples"] >= 1 and tj["final"]["val_loss"] is not None
    src = tj["data"]["emotion_edit"]["source_seconds"]       # the Editor's piece length reads this
    assert 0 < src["p50"] <= src["p90"] <= src["max"] < 30
    # answer over source length per tag, train split only (validation's happy is 40/30): the Editor's
    # speed window reads speed_edit's
    assert tj["data"]["emotion_edit"]["length_ratio"] == {"angry": 1.1667, "happy": 0.8333, "sad": 1.0}
    assert "length_ratio" not in tj["data"]["clone"]
    assert tj["command"].startswith("python run.py") and tj["device"] == "cpu"
    for f in ("config.json", "tokenizer.json", "llm_vocab.json", "training_log.jsonl", "loss_curve.png"):
        assert (out / f).is_file(), f
    assert list(out.glob("*.safetensors"))
    curve = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert curve[-1]["train_loss"] < 0.1 * curve[0]["train_loss"]
    assert all(0 < r["fill"] <= 1 for r in curve)   # the rows' share of example tokens, padding not
    # bench/llm_val_loss.py scores several models on the same examples, per task: the trained model's
    # loss on what it learned is a small part of a random one's
    sys.path.insert(0, str(REPO / "bench"))
    import llm_val_loss
    init = tiny_llm(tmp_path / "init")
    res = llm_val_loss.main(["--llm", str(out), str(init), "--data", str(data), "--split", "train",
                             "--rows", "2", "--batches", "1", "--out", str(tmp_path / "val_loss.json")])
    trained, random_ = res["models"][str(out)], res["models"][str(init)]
    assert set(trained["tasks"]) == {"emotion_edit", "clone"} and trained["tasks"]["clone"]["examples_in_split"] == 2
    assert trained["tasks"]["emotion_edit"]["answer_tokens"] == random_["tasks"]["emotion_edit"]["answer_tokens"]
    assert trained["all"] < 0.1 * random_["all"]
    assert json.loads((tmp_path / "val_loss.json").read_text())["models"][str(out)]["all"] == trained["all"]
    assert torch.is_grad_enabled(), "the tool ran in this process and must leave autograd on for the next test"
    from editor.llm.editor import write_codec_meta
    other = tiny_llm(tmp_path / "other_codec")
    write_codec_meta(other, "tokenizer-v3")           # a model of another codec reads other sounds in these ids
    with pytest.raises(SystemExit, match="trained on codec tokenizer-v3 ids"):
        llm_val_loss.main(["--llm", str(other), "--data", str(data), "--out", str(tmp_path / "refused.json")])


def _params(art_dir):
    from editor.llm.model import load
    model, _ = load(art_dir)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_killed_run_resumes_to_the_uninterrupted_weights(tokens, tmp_path):
    data, _ = tokens
    args = [*BASE, f"data=[{data}]", "pipeline.train.steps=80", "pipeline.train.ckpt_every=4"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    a = tmp_path / "a"
    cmd = [sys.executable, "run.py", *args, f"output_dir={a}", f"pipeline.artifact_out={a / 'llm'}"]
    ckpt = a / "llm.checkpoints" / "checkpoint.pt"
    kill_when(cmd, ckpt.is_file, env)
    step = torch.load(ckpt, weights_only=False)["step"]
    assert step < 80 and not (a / "llm").exists(), "killed before the end: nothing published"
    r = subprocess.run([*cmd, "resume=true"], cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from {ckpt} at step {step}" in r.stdout + r.stderr
    b = tmp_path / "b"
    _run([*args, f"output_dir={b}", f"pipeline.artifact_out={b / 'llm'}"])
    # early stopping (keep_best, the default): the published weights are those of the lowest validation loss
    curve = [json.loads(line) for line in (b / "llm" / "training_log.jsonl").read_text().splitlines()]
    evals = [(r["val_loss"], r["step"]) for r in curve if r.get("val_loss") is not None]
    tj = json.loads((b / "llm" / "training.json").read_text())
    assert (tj["best_val_loss"], tj["published_step"]) == min(evals)
    pa, pb = _params(a / "llm"), _params(b / "llm")
    for k in pb:
        assert torch.allclose(pa[k], pb[k], atol=1e-5, rtol=1e-4), k


def test_two_ray_train_workers_match_one(tokens, tmp_path, ray_local):
    data, _ = tokens
    args = [*BASE, f"data=[{data}]", "pipeline.train.steps=12", "pipeline.train.ckpt_every=100"]
    one, _ = _run([*args, f"output_dir={tmp_path / 'one'}", f"pipeline.artifact_out={tmp_path / 'one' / 'llm'}"])
    two, _ = _run([*args, "editor.train.workers=2", f"output_dir={tmp_path / 'two'}",
                   f"pipeline.artifact_out={tmp_path / 'two' / 'llm'}"])
    tj = json.loads((tmp_path / "two" / "llm" / "training.json").read_text())
    assert tj["workers"] == 2 and tj["steps"] == 12
    p1, p2 = _params(tmp_path / "one" / "llm"), _params(tmp_path / "two" / "llm")
    start = _params_at_init(data)
    moved = sum(float((p1[k] - start[k]).abs().sum()) for k in p1)
    assert moved > 0
    for k in p1:
        assert torch.allclose(p1[k], p2[k], atol=2e-5, rtol=1e-3), k


def _params_at_init(data):
    from editor.llm.model import build_model, load_preset
    from editor.llm.vocab import load_vocab
    torch.manual_seed(0)
    return {k: v.detach().clone() for k, v in build_model(load_preset("tiny"), load_vocab()).state_dict().items()}


def test_bad_input_is_named(tokens, tmp_path):
    data, _ = tokens
    with pytest.raises(ValueError, match="data= is required"):
        _run([*BASE, f"output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="no such token release"):
        _run([*BASE, f"data=[{tmp_path / 'nothing'}]", f"output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="unknown tasks"):
        _run([*BASE, f"data=[{data}]", f"output_dir={tmp_path}", "+pipeline.train.mixture.karaoke=1.0"])
    with pytest.raises(ValueError, match="multiple of the 3 workers"):
        from editor.llm.train import train_loop
        tc = OmegaConf.to_container(make_cfg([*BASE]).pipeline.train, resolve=True)
        train_loop(tc, OmegaConf.to_container(make_cfg([*BASE]).llm), [str(data)], tmp_path / "x", tmp_path, "cpu",
                   False, rank=0, world=3)


def test_tiny_llm_with_pronunciations_learns_and_publishes_the_scheme(tokens, tmp_path):
    from editor.llm.model import load
    from editor.llm.pronounce import PRONUNCIATION_SCHEME
    data, _ = tokens
    out = tmp_path / "llm"
    _run([*BASE, f"data=[{data}]", f"output_dir={tmp_path}", f"pipeline.artifact_out={out}", "pipeline.train.steps=150",
          "pipeline.train.lr=0.003", "pipeline.train.keep_best=false", "pipeline.train.pronounce=true"])
    assert json.loads((out / "llm_vocab.json").read_text())["pronunciation_scheme"] == PRONUNCIATION_SCHEME
    assert json.loads((out / "training.json").read_text())["train"]["pronounce"] is True
    _, vocab = load(out)
    assert vocab.pronunciation_scheme == PRONUNCIATION_SCHEME
    good, n = _teacher_forced_exact(out, data)     # its examples now carry "Sentence number i." pronounced
    assert good == n == 5, f"{good}/{n} examples reproduced exactly"


def test_resume_refuses_data_that_changed(tokens, tmp_path):
    """The checkpoint's data positions index the examples it trained on: the same releases in another
    order, or a release rewritten, are refused by name; a run stopped by its time budget resumes to
    publish, not to train on."""
    data, ex = tokens
    other = write_token_release(tmp_path / "style_tokens", [{**e, "key": e["key"] + "_o"} for e in ex])
    args = [*BASE, "pipeline.train.steps=6", "pipeline.train.ckpt_every=2", "pipeline.train.warmup=1",
            f"output_dir={tmp_path}", f"pipeline.artifact_out={tmp_path / 'llm'}"]
    _run([*args, f"data=[{data},{other}]"])
    with pytest.raises(ValueError, match="other inputs or settings"):
        _run([*args, f"data=[{other},{data}]", "resume=true"])
    # a budget of a millisecond: the time is counted after the first (compiling) step, so two steps run
    budget = [*args, f"data=[{data}]", "pipeline.train.max_minutes=0.00002"]
    first, _ = _run([*budget, f"pipeline.checkpoint_dir={tmp_path / 'b'}"])
    again, _ = _run([*budget, f"pipeline.checkpoint_dir={tmp_path / 'b'}", "resume=true"])
    assert first["steps"] < 6 and again["steps"] == first["steps"], "a spent budget trains no more steps"


def test_init_from_an_editor_llm_or_another_checkpoint(tokens, tmp_path):
    """init_from an editor LLM keeps its vocab and weights; another causal LM brings its own tokenizer and
    a text block as large as its embedding; a tokenizer or codec that is not the checkpoint's is refused."""
    import transformers
    from editor.llm.model import load, training_vocab
    from editor.llm.text_tokenizer import train as train_tokenizer
    from editor.llm.train import check_init_codec
    data, _ = tokens
    first = tmp_path / "first"
    _run([*BASE, f"data=[{data}]", f"output_dir={tmp_path}", f"pipeline.artifact_out={first}", "pipeline.train.steps=20"])
    second = tmp_path / "second"
    info, _ = _run([*BASE, f"data=[{data}]", f"output_dir={tmp_path}", f"pipeline.artifact_out={second}",
                    "pipeline.train.steps=1", "pipeline.train.warmup=0", "pipeline.train.lr=1e-9",
                    "pipeline.train.keep_best=false", f"llm.init_from={first}"])
    (m1, v1), (m2, v2) = load(first), load(second)
    assert v2.version == v1.version
    w1, w2 = m1.state_dict(), m2.state_dict()
    assert all(torch.allclose(w1[k], w2[k], atol=1e-3) for k in w1), "it started from the editor's weights"
    with pytest.raises(ValueError, match="codec tokenizer-v0 ids"):
        (tmp_path / "third").mkdir()
        (tmp_path / "third" / "training.json").write_text(json.dumps({"tokenizer_version": "tokenizer-v0"}))
        check_init_codec(tmp_path / "third", info["tokenizer_version"])
    (tmp_path / "third" / "training.json").write_text(json.dumps({"tokenizer_version": info["tokenizer_version"],
                                                                   "tokenizer_digest": "0123456789abcdef"}))
    with pytest.raises(ValueError, match="another tokenizer named"):
        check_init_codec(tmp_path / "third", info["tokenizer_version"], info["tokenizer_digest"])
    check_init_codec(first, info["tokenizer_version"], info["tokenizer_digest"])     # the same codec's weights
    from editor.llm.editor import write_codec_meta                  # a DPO or PPO editor records it in codec.json
    (tmp_path / "third" / "training.json").unlink()
    write_codec_meta(tmp_path / "third", info["tokenizer_version"], "0123456789abcdef")
    with pytest.raises(ValueError, match="another tokenizer named"):
        check_init_codec(tmp_path / "third", info["tokenizer_version"], info["tokenizer_digest"])
    # another causal LM: 320 embedding rows over a 300-id tokenizer saved beside it
    foreign = tmp_path / "foreign"
    transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2)).save_pretrained(foreign)
    with pytest.raises(ValueError, match="no tokenizer.json"):
        training_vocab(foreign)
    train_tokenizer(["hello world", "the audio editor"], 300).save(str(foreign / "tokenizer.json"))
    assert training_vocab(foreign).text_size == 320
    with pytest.raises(ValueError, match="is not init_from"):
        training_vocab(foreign, text_tokenizer=REPO / "editor" / "artifacts" / "text-tokenizer-v1")
    out = tmp_path / "from_foreign"
    _run([*BASE, f"data=[{data}]", f"output_dir={tmp_path}", f"pipeline.artifact_out={out}", "pipeline.train.steps=2",
          f"llm.init_from={foreign}"])
    assert load(out)[1].text_size == 320


def test_validation_loss_reads_a_fair_sample():
    """More validation examples than rows: a random subset is scored, not the longest ones that
    packing places first."""
    from editor.llm.batches import eval_batches, lengths
    from editor.llm.vocab import load_vocab
    vocab = load_vocab()
    exs = [{"system": "edit", "instruction": "Make it happy.", "text": "Hi.", "target_text": "Hi.",
            "language": "en", "source_tokens": np.zeros(n, dtype=np.int64), "target_tokens": np.zeros(n, dtype=np.int64),
            "edit_info": "happy", "task": "emotion_edit"} for n in range(20, 120, 5)]
    every = sorted(lengths(exs, vocab))
    (batch,) = eval_batches(exs, vocab, rows=4, max_len=256, n_batches=1)
    scored = []
    for r in range(4):
        real = batch["input_ids"][r] != vocab.pad
        seg = (batch["position_ids"][r] == 0).cumsum(0)[real]
        scored += [int(n) for n in torch.bincount(seg) if n]
    assert len(scored) >= 4 and set(scored) <= set(every)
    longest = every[-len(scored):]
    assert np.mean(scored) < np.mean(longest) - 20, (scored, longest)


def test_bad_settings_are_named(tokens, tmp_path):
    data, ex = tokens
    args = [*BASE, f"data=[{data}]", f"output_dir={tmp_path}"]
    for override, msg in (("pipeline.train.mixture.clone=-1", "mixture.clone=-1"),
                          ("pipeline.train.mixture.clone=null", "mixture.clone=None"),
                          ("pipeline.train.steps=0", "steps=0"), ("pipeline.train.ckpt_every=0", "ckpt_every=0"),
                          ("pipeline.train.pack_lookahead=0", "pack_lookahead=0"),
                          ("pipeline.train.compile_mode=fastest", "compile_mode='fastest'")):
        with pytest.raises(ValueError, match=msg):
            _run([*args, override])
    with pytest.raises(ValueError, match="no such token release .the pattern matches nothing"):
        _run([*BASE, f"data=[{tmp_path}/none-*.tar]", f"output_dir={tmp_path}"])
    shards = sorted((data / "releases" / "r1" / "shards").glob("*.tar"))
    pattern = str(shards[0]).replace("-000000", "-00000[0-9]")
    assert pattern != str(shards[0])
    from pipelines.train_editor import data_list
    assert data_list(make_cfg([*BASE, f"data=['{pattern}']"])) == [pattern]


def test_checkpoint_write_leaves_no_half_files(tmp_path):
    """A killed run's half-written checkpoint (another pid's temporary file) is cleared by the next write."""
    from editor.training import save_checkpoint
    ckpt = tmp_path / "checkpoint.pt"
    (tmp_path / "checkpoint.pt.tmp-999999").write_bytes(b"half a checkpoint")
    save_checkpoint(ckpt, {"step": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert torch.load(ckpt, weights_only=False) == {"step": 3}


def test_compiled_loss_trains_as_the_eager_one(tokens, tmp_path):
    """On CUDA the model and its loss are compiled as one module (train.TokenLoss); only a GPU would
    otherwise notice a loss that does not compile or a compiled step that trains otherwise."""
    data, _ = tokens
    curves = {}
    for compiled in ("false", "true"):
        out = tmp_path / f"llm_{compiled}"
        _run([*BASE, f"data=[{data}]", f"output_dir={tmp_path / compiled}", f"pipeline.artifact_out={out}",
              "pipeline.train.steps=10", f"pipeline.train.compile={compiled}", "pipeline.train.keep_best=false"])
        curves[compiled] = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    eager, compiled = curves["false"], curves["true"]
    assert [r["step"] for r in eager] == [r["step"] for r in compiled] == [5, 10]
    for a, b in zip(eager, compiled):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3), (a, b)
    assert compiled[-1]["train_loss"] < compiled[0]["train_loss"]
