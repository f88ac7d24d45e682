"""pipeline=train_ppo on tiny models: PPO raises a planted reward on fresh rollouts with a finite KL;
the critic learns alone during its warm-up (the actor's weights do not move); a killed run resumes to
the uninterrupted run's weights; the hardest prompts are those the SFT policy scores worst on; 2 Ray
Train workers (gloo) train what 1 worker does; bad input is named; the published actor loads as an Editor."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SHIPPED_CODEC, make_cfg

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_TRAIN = 8


def _ids(seed: int, n: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, 5120, n).tolist()


class Planted(torch.nn.Module):
    """A reward model stand-in: the fraction of an answer's audio ids below 512 (linguistic ids of the
    lower half; about 0.2 for a near-uniform policy, at most 0.4 = 2 linguistic ids per block of 5)."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def forward(self, batch):
        lab = batch["labels"]
        audio = (lab >= self.vocab.audio_offset) & (lab < self.vocab.special_offset)
        low = audio & (lab - self.vocab.audio_offset < 512)
        return low.sum(-1).float() / audio.sum(-1).clamp_min(1).float()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny fresh 'SFT' editor, a tiny reward model over the same vocab, a pairs table (8 train
    prompts, 1 validation), and a reward model over another vocab."""
    from editor.llm.editor import write_codec_meta
    from editor.llm.model import build_model, load_preset, save
    from editor.llm.pairs import example_json, write_pairs
    from editor.llm.reward import RewardModel
    from editor.llm.vocab import load_vocab
    d = tmp_path_factory.mktemp("ppo")
    vocab = load_vocab()
    torch.manual_seed(0)
    sft = d / "sft"
    model = build_model(load_preset("tiny"), vocab)
    with torch.no_grad():
        # a feature shared by the linguistic ids below 512 (and its opposite by those above), as a trained
        # SFT model's embeddings share features: a fresh model's ids have nothing in common, so raising
        # the planted reward would mean learning 512 ids one by one from a few samples each
        u = torch.nn.functional.normalize(torch.randn(model.config.hidden_size), dim=0) * 0.3
        emb = model.get_input_embeddings().weight
        emb[vocab.audio_offset:vocab.audio_offset + 512] += u
        emb[vocab.audio_offset + 512:vocab.audio_offset + 1024] -= u
    save(model, vocab, sft)
    write_codec_meta(sft, SHIPPED_CODEC)
    rm = d / "rm"
    RewardModel(build_model(load_preset("tiny"), vocab), vocab).save(rm)
    other = load_vocab(text_size=vocab.text_size + 64)
    rm_other = d / "rm_other"
    RewardModel(build_model(load_preset("tiny"), other), other).save(rm_other)
    rows = []
    for i in range(N_TRAIN + 1):
        ex = {"system": "edit", "instruction": f"Make it happy {i}.", "text": "hi", "target_text": "hi",
              "language": "en", "source_tokens": _ids(i, 15)}
        rows.append({"pair_id": f"p{i}", "prompt_key": f"k{i}", "task": "emotion_edit",
                     "split": "train" if i < N_TRAIN else "validation", "example": example_json(ex),
                     "chosen": _ids(100 + i, 10), "rejected": _ids(200 + i, 10), "chosen_score": 9.0,
                     "rejected_score": 1.0, "margin": 8.0, "rater": "machine:test"})
    (d / "pairs").mkdir()
    write_pairs(rows, d / "pairs")
    write_pairs(rows[N_TRAIN:], d / "val_only.parquet")
    return {"dir": d, "sft": sft, "rm": rm, "rm_other": rm_other, "pairs": d / "pairs", "vocab": vocab}


def _cfg(m, out, *extra):
    return make_cfg(["pipeline=train_ppo", "editor=tiny", f"pipeline.editor={m['sft']}", f"pipeline.reward={m['rm']}",
                     f"pipeline.pairs=[{m['pairs']}]", f"output_dir={out}", f"pipeline.artifact_out={out}/ppo",
                     "pipeline.train.rollout_batch=8", "pipeline.train.minibatch=4", "pipeline.train.ppo_epochs=2",
                     "pipeline.train.max_new_factor=1.0", "pipeline.train.missing_eos_penalty=0.0",
                     "pipeline.train.save_dtype=float32", "pipeline.train.log_every=100", *extra])


def _run(cfg, reward_fn=None):
    from pipelines import train_ppo
    return train_ppo.run(cfg, reward_fn=reward_fn)


def _weights(d) -> dict:
    from editor.llm.model import load
    return {k: v.clone() for k, v in load(d)[0].state_dict().items()}


def _fresh_reward(llm_dir, pairs, n=48, seed=10_000) -> float:
    """The planted reward of n fresh rollouts (seeds the training never used) of an LLM directory."""
    from editor.llm.editor import DEFAULT_TOKENIZER
    from editor.llm import train_ppo
    from editor.llm.model import load
    model, v = load(llm_dir)
    prompts = train_ppo.prompts_of([pairs], v, {"max_new_factor": 1.0, "max_new_tokens": 100}, 5)
    prompts = (prompts * (n // len(prompts) + 1))[:n]
    pc = {"temperature": 1.0, "cuda_graphs": False}
    ro = train_ppo.rollout(model, v, prompts, [seed + i for i in range(n)], pc, train_ppo.layout_of(DEFAULT_TOKENIZER))
    with torch.no_grad():
        return Planted(v)(train_ppo.policy_rows(ro, v, with_eos=True)).mean().item()


def test_ppo_raises_a_planted_reward(models, tmp_path):
    out = tmp_path / "o"
    info = _run(_cfg(models, out, "pipeline.train.steps=16", "pipeline.train.critic_warmup=2",
                     "pipeline.train.lr=0.003", "pipeline.train.min_lr=0.003", "pipeline.train.critic_lr=0.001",
                     "pipeline.train.rollout_batch=16", "pipeline.train.minibatch=8",
                     "pipeline.train.hardest_fraction=1.0"),
                reward_fn=Planted(models["vocab"]))
    before = _fresh_reward(models["sft"], models["pairs"])
    after = _fresh_reward(out / "ppo", models["pairs"])
    # about 0.21 -> 0.30 (at most 0.4)
    assert after > before + 0.06, f"planted reward on fresh rollouts: {before:.3f} -> {after:.3f}"
    curve = [json.loads(line) for line in (out / "ppo" / "training_log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["kl"]) for r in curve)
    # one batch's sampled estimate may dip below 0; its average over steps is a KL, > 0 once the actor moved
    assert np.mean([r["kl"] for r in curve[-5:]]) > 0.01, "the actor moved away from the SFT policy"
    assert all(r["kl"] == 0 for r in curve[:2]), "no KL while the actor is frozen"
    assert curve[0]["clip_frac"] is None and curve[-1]["clip_frac"] is not None
    assert (out / "ppo" / "ppo_curve.png").stat().st_size > 0
    assert info["actor_steps"] == 14


def test_critic_warms_up_while_the_actor_stays(models, tmp_path):
    from editor.llm.reward import RewardModel
    out = tmp_path / "o"
    _run(_cfg(models, out, "pipeline.train.steps=3", "pipeline.train.critic_warmup=3",
              "pipeline.train.critic_lr=0.001", "pipeline.train.hardest_fraction=1.0"))
    sft, ppo = _weights(models["sft"]), _weights(out / "ppo")
    assert all(torch.equal(sft[k], ppo[k]) for k in sft), "the actor moved during the critic's warm-up"
    st = torch.load(out / "ppo.checkpoints" / "checkpoint.pt", weights_only=False)
    rm = RewardModel.load(models["rm"]).state_dict()
    assert not torch.equal(st["critic"]["head.weight"], rm["head.weight"]), "the critic did not learn"
    vl = [r["value_loss"] for r in st["curve"]]
    assert vl[-1] < vl[0], f"value loss {vl}"


def test_killed_run_resumes_to_the_uninterrupted_weights(models, tmp_path, monkeypatch):
    from editor.llm import train_ppo
    args = ("pipeline.train.steps=6", "pipeline.train.critic_warmup=2", "pipeline.train.ckpt_every=3",
            "pipeline.train.lr=0.001", "pipeline.train.hardest_fraction=0.5", "pipeline.train.probe_samples=2",
            "pipeline.train.max_minutes=1e9")   # the schedule by steps alone: time would shift the lr a little
    whole = _run(_cfg(models, tmp_path / "a", *args))
    real = train_ppo.save_checkpoint

    class Killed(Exception):
        pass

    def kill_after_first(path, state):
        real(path, state)
        raise Killed

    monkeypatch.setattr(train_ppo, "save_checkpoint", kill_after_first)
    with pytest.raises(Killed):
        _run(_cfg(models, tmp_path / "b", *args))
    monkeypatch.setattr(train_ppo, "save_checkpoint", real)
    resumed = _run(_cfg(models, tmp_path / "b", *args, "resume=true"))
    assert resumed["steps"] == 6 and resumed["prompts"]["selected"] == whole["prompts"]["selected"]
    a, b = _weights(tmp_path / "a" / "ppo"), _weights(tmp_path / "b" / "ppo")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff < 1e-6, f"resumed weights differ by {diff}"
    assert not all(torch.equal(a[k], _weights(models["sft"])[k]) for k in a), "the actor never moved"
    # the hardest half: the 4 prompts of the lowest mean reward under the SFT policy
    probe = whole["prompts"]["probe_mean_reward"]
    assert len(whole["prompts"]["selected"]) == N_TRAIN // 2
    assert max(probe[k] for k in whole["prompts"]["selected"]) <= min(
        v for k, v in probe.items() if k not in whole["prompts"]["selected"])


def test_two_ray_train_workers_match_one(models, tmp_path, ray_local):
    """Each of 2 workers samples and scores half of every rollout batch (and of the probe) and takes half
    of every minibatch; with whitening and statistics over the global batch they train what 1 does."""
    args = ("pipeline.train.steps=3", "pipeline.train.critic_warmup=1", "pipeline.train.lr=0.001",
            "pipeline.train.min_lr=0.001", "pipeline.train.critic_lr=0.001", "pipeline.train.hardest_fraction=0.5",
            "pipeline.train.probe_samples=2", "pipeline.train.max_minutes=1e9", "pipeline.train.ckpt_every=100")
    one = _run(_cfg(models, tmp_path / "one", *args))
    two = _run(_cfg(models, tmp_path / "two", *args, "pipeline.train.workers=2"))
    assert two["workers"] == 2 and two["steps"] == 3 and one["workers"] == 1
    assert two["prompts"]["selected"] == one["prompts"]["selected"]
    c1, c2 = ([json.loads(x) for x in (tmp_path / w / "ppo" / "training_log.jsonl").read_text().splitlines()]
              for w in ("one", "two"))
    for k in ("reward", "kl", "value_loss", "pg_loss", "clip_frac", "answer_tokens", "ended"):
        assert [r[k] for r in c1] == pytest.approx([r[k] for r in c2], abs=1e-4), k
    a, b, sft = _weights(tmp_path / "one" / "ppo"), _weights(tmp_path / "two" / "ppo"), _weights(models["sft"])
    assert sum(float((a[k] - sft[k]).abs().sum()) for k in a) > 0, "the actor never moved"
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print("max |1 worker - 2 workers| over the actor's weights:", diff)
    # DDP sums gradients in another order; Adam turns a rounding difference in an almost-zero gradient
    # into up to an lr-sized step (1e-3 here)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-3), (k, diff)
        assert float(((a[k] - b[k]).abs() > 5e-5).float().mean()) < 1e-3, (k, diff)


def test_bad_input_is_named(models, tmp_path):
    base = ("pipeline.train.steps=1", "pipeline.train.critic_warmup=0", "pipeline.train.hardest_fraction=1.0")
    with pytest.raises(ValueError, match="no train-split pairs"):
        _run(_cfg(models, tmp_path, *base, f"pipeline.pairs=[{models['dir'] / 'val_only.parquet'}]"))
    with pytest.raises(ValueError, match="not a reward model directory"):
        _run(_cfg(models, tmp_path, *base, f"pipeline.reward={models['sft']}"))
    with pytest.raises(ValueError, match="reads vocab"):
        _run(_cfg(models, tmp_path, *base, f"pipeline.reward={models['rm_other']}"))
    with pytest.raises(ValueError, match="not an LLM checkpoint"):
        _run(_cfg(models, tmp_path, *base, f"pipeline.editor={models['rm'] / 'nowhere'}"))
    with pytest.raises(ValueError, match="pairs= is required"):
        _run(_cfg(models, tmp_path, *base, "pipeline.pairs=null"))
    with pytest.raises(ValueError, match="no pairs.parquet"):
        _run(_cfg(models, tmp_path, *base, f"pipeline.pairs=[{tmp_path}]"))
    with pytest.raises(ValueError, match="worker count from pipeline.train.workers"):
        _run(_cfg(models, tmp_path, *base, "editor.train.workers=2"))
    # a temperature of 0 would divide the policy's log-probabilities by zero (an actor of NaNs)
    for override, msg in (("pipeline.train.temperature=0", "temperature=0"), ("pipeline.train.minibatch=0", "minibatch=0"),
                          ("pipeline.train.probe_samples=0", "probe_samples=0")):
        with pytest.raises(ValueError, match=msg):
            _run(_cfg(models, tmp_path, *base, override))
    # pairs of another codec than the editor's
    other = tmp_path / "other_codec.parquet"
    df = pd.read_parquet(models["pairs"] / "pairs.parquet")
    df["tokenizer_version"] = "tokenizer-tiny"
    df.to_parquet(other)
    with pytest.raises(ValueError, match="vocab mismatch"):
        _run(_cfg(models, tmp_path, *base, f"pipeline.pairs=[{other}]"))


def test_ppo_artifact_loads_as_an_editor(models, tmp_path):
    from editor.llm.editor import Editor
    out = tmp_path / "o"
    _run(_cfg(models, out, "pipeline.train.steps=2", "pipeline.train.critic_warmup=1",
              "pipeline.train.hardest_fraction=1.0", "pipeline.train.save_dtype=bfloat16"))
    ed = Editor.load(out / "ppo", device="cpu")
    assert ed.vocab.version == models["vocab"].version
    tj = json.loads((out / "ppo" / "training.json").read_text())
    assert tj["steps"] == 2 and tj["tokenizer_version"] == SHIPPED_CODEC and tj["ppo"]["kl_beta"] == 0.05


def test_policy_logprobs_are_the_samplers_distribution_and_ignore_padding(models):
    """log pi of an answer action = log-softmax over the ids the grammar allows at that position, from
    the full model's logits; a row's values do not depend on the longer row padded beside it."""
    from editor.llm import ppo, train_ppo
    from editor.llm.generate import Layout, _allowed
    from editor.llm.model import load
    model, v = load(models["sft"])
    p = train_ppo.prompts_of([models["pairs"]], v, {"max_new_factor": 1.0, "max_new_tokens": 100}, 5)
    ro = [{"prompt": p[0]["ids"], "answer": v.audio_to_ids(_ids(7, 10)), "ended": True},
          {"prompt": p[1]["ids"], "answer": v.audio_to_ids(_ids(8, 15)), "ended": False}]
    layout = Layout()
    with torch.no_grad():
        both, mask = ppo.policy_logprobs(model, train_ppo.policy_rows(ro, v), v, layout, 0.7)
        alone, _ = ppo.policy_logprobs(model, train_ppo.policy_rows(ro[:1], v), v, layout, 0.7)
        row = train_ppo.policy_rows(ro[:1], v)
        logits = model(input_ids=row["input_ids"]).logits[0]
    n0 = int(alone.shape[1])
    assert torch.allclose(both[0, :n0], alone[0], atol=1e-5) and both[0, n0:].abs().sum() == 0
    assert mask[0].sum() == 11 and mask[1].sum() == 15, "10 answer ids + <|eos|>; 15 ids, no <|eos|>"
    P = len(ro[0]["prompt"])
    allowed = _allowed(layout, "cpu")
    ids = row["input_ids"][0]
    want = []
    for j in range(11):
        cand = torch.cat([logits[P - 1 + j, v.audio_offset:v.special_offset], logits[P - 1 + j, v.eos:v.eos + 1]]) / 0.7
        lp = torch.log_softmax(cand.masked_fill(~allowed[j % 5], float("-inf")), -1)
        tok = int(ids[P + j])
        want.append(lp[tok - v.audio_offset if tok != v.eos else 5120])
    assert torch.allclose(alone[0, P - 1:P + 10], torch.stack(want), atol=1e-4)


def test_gae_and_rewards_by_hand():
    from editor.llm import ppo
    mask = torch.tensor([[False, True, True, True, False]])
    logp, ref = torch.tensor([[0.0, -1.0, -2.0, -1.0, 0.0]]), torch.tensor([[0.0, -1.5, -2.0, -0.5, 0.0]])
    r, kl = ppo.token_rewards(torch.tensor([2.0]), logp, ref, mask, beta=0.1)
    assert torch.allclose(kl, torch.tensor([[0.0, 0.5, 0.0, -0.5, 0.0]]))
    assert torch.allclose(r, torch.tensor([[0.0, -0.05, 0.0, 2.05, 0.0]]))
    vals = torch.tensor([[9.0, 1.0, 1.0, 1.0, 9.0]])
    adv, ret = ppo.gae(r, vals, mask, gamma=1.0, lam=0.5)
    d = [-0.05 + 1 - 1, 0.0 + 1 - 1, 2.05 - 1]            # delta_t = r_t + V_{t+1} - V_t, V after the end 0
    want = [d[0] + 0.5 * (d[1] + 0.5 * d[2]), d[1] + 0.5 * d[2], d[2]]
    assert torch.allclose(adv[0, 1:4], torch.tensor(want)) and adv[0, 0] == 0 and adv[0, 4] == 0
    assert torch.allclose(ret[0, 1:4], adv[0, 1:4] + 1)
    # lam = 1: every action's return is the whole remaining reward
    _, ret1 = ppo.gae(r, vals, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(ret1[0, 1:4], torch.tensor([2.0, 2.05, 2.05]))
    loss, frac = ppo.policy_loss(torch.tensor([[0.0, 0.5, 0.0, 0.0, 0.0]]), torch.zeros(1, 5),
                                 torch.ones(1, 5), mask, clip=0.2)
    assert torch.isclose(frac, torch.tensor(1 / 3)) and torch.isclose(loss, -(1.2 + 1 + 1) / 3 * torch.ones(()))
