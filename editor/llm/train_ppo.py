"""PPO of the SFT audio LLM against the token-level reward model (the seed's last stage), in one
process on one device (no Ray) or in N Ray Train workers (DDP: gloo on CPU, NCCL on GPU).

    actor      the SFT model, trained
    reference  the SFT model, frozen: each answer action pays beta * (log pi - log pi_ref) (ppo.py)
    critic     a backbone + scalar value head, trained; warmed up `critic_warmup` steps before the
               actor moves (the seed's 80): the first advantages come from values that fit the
               rewards, not from a random head
    reward     the reward model (reward.py) scores each rollout's token sequence at its <|eos|>; no
               decoding to audio

One step: `rollout_batch` prompts -> answers sampled by the fast decoder (generate.py: static cache,
CUDA graphs on GPU) -> log-probs of actor and reference, values, rewards -> GAE -> `ppo_epochs` passes
over minibatches of the clipped objective (actor) and the value loss (critic).

Prompts: the unique prompts of the pairs tables' train split (the seed's "same prompt seeds as the
reward model"), narrowed to the hardest: each prompt's `probe_samples` answers from the SFT policy
are scored by the reward model and the `hardest_fraction` with the lowest mean reward are kept.

Checkpoints (actor, critic, both optimizers, step, prompt order and position, rng, the selection,
the curve) are written atomically every `ckpt_every` steps; `resume` continues from the last one.
Learning rates are a pure function of the step (no scheduler state to save). Rollout seeds are a
function of (seed, step, row), so a resumed run samples what the uninterrupted one would.

N workers (`ray_worker`; pipeline.train.workers=N) train what one worker does on the same global
batch. Every worker takes the same `rollout_batch` prompts and samples and scores only its rows
[rank::N] (same seeds as one worker: they depend on the row, not the worker), with its share of the
actor, reference and critic forward passes. The rollouts and the per-row tensors (log-probs, values,
scores: [rows, length] floats) are all-gathered, so the KL-shaped rewards, GAE, the whitening of the
advantages and the logged statistics are over the global batch. The minibatches are the global ones
(one shared generator); each worker takes rows [rank::N] of each, sums its losses over its actions,
divides by the whole minibatch's action count and scales by N, so DDP's gradient mean is the
minibatch's mean gradient. Actor and critic are wrapped by DDP (ray.train.torch.prepare_model); the
frozen reference and reward models are not. The hardest-prompt probe is split the same way (its
per-prompt reward sums all-reduced). Rank 0 logs, checkpoints and publishes."""
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from editor import artifacts
from editor.llm.editor import DEFAULT_TOKENIZER, codec_digest_of, codec_version_of, write_codec_meta
from editor.llm import model as llm_model
from editor.llm import ppo
from editor.llm.chat import IGNORE, build_prompt
from editor.llm.generate import Layout, SampleConfig, generate
from editor.llm.logprobs import pad_rows
from editor.llm.pairs import digest as pairs_digest, read_pairs
from editor.llm.preference_train import pair_codec
from editor.llm.reward import RewardModel
from editor.training import check_counts, check_positive, device_name, resume_state, save_checkpoint

CKPT = "checkpoint.pt"
TRAIN, PROBE = 0, 1   # rollout seed streams: training steps and the hardest-prompt probe never share a seed


# ---- workers -------------------------------------------------------------------------------------
class Dist:
    """The collectives of N Ray Train workers (torch.distributed); with one worker every call returns
    its input and torch.distributed is not touched. Row i of a global batch is row i // N of worker
    i % N (each worker holds rows [rank::N])."""

    def __init__(self, rank: int = 0, world: int = 1, device="cpu"):
        self.rank, self.world, self.device = rank, world, torch.device(device)

    def rows(self, items: list) -> list:
        """Each worker's rows (picklable objects) -> the global rows, in order."""
        if self.world == 1:
            return items
        parts = [None] * self.world
        torch.distributed.all_gather_object(parts, items)
        return [parts[i % self.world][i // self.world] for i in range(sum(map(len, parts)))]

    def tensor_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Each worker's [rows, ...] tensor (the same shape on every worker) -> the global [N * rows, ...]."""
        if self.world == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.world)]
        torch.distributed.all_gather(parts, x.contiguous())
        return torch.stack(parts, 1).flatten(0, 1)

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(x, torch.distributed.ReduceOp.SUM)
        return x

    def max(self, v: float) -> float:
        """The largest v over the workers (the elapsed time: every worker takes the same lr and stops
        at the same step)."""
        if self.world == 1:
            return v
        t = torch.tensor([v], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, torch.distributed.ReduceOp.MAX)
        return float(t.item())


class PolicyNet(torch.nn.Module):
    """The actor's constrained log-probs (ppo.policy_logprobs) as a module's forward: what DDP wraps,
    so that its gradient hooks run (DDP synchronises gradients of what its forward computed)."""

    def __init__(self, actor, vocab, layout, temperature: float):
        super().__init__()
        self.actor = actor
        self.vocab, self.layout, self.temperature = vocab, layout, temperature

    def forward(self, batch: dict):
        return ppo.policy_logprobs(self.actor, batch, self.vocab, self.layout, self.temperature)


class ValueNet(torch.nn.Module):
    """The critic's per-action values (ppo.values) as a module's forward, for DDP."""

    def __init__(self, critic):
        super().__init__()
        self.critic = critic

    def forward(self, batch: dict):
        return ppo.values(self.critic, batch)


# ---- prompts -------------------------------------------------------------------------------------
def prompts_of(pairs, vocab, pc: dict, block: int) -> list[dict]:
    """The unique train-split prompts of the pairs tables, by prompt_key: {key, task, ids, limit}.
    A prompt's answer limit is `max_new_factor` x its longest rated answer (whole blocks, at most
    `max_new_tokens`): room for a better answer than the rated ones, still a bound on run-away output."""
    rows = read_pairs(pairs, split="train")
    if not rows:
        raise ValueError(f"pairs={pairs}: no train-split pairs, so no prompts for PPO")
    by_key = {}
    for r in rows:
        longest = max(len(r["chosen"]), len(r["rejected"]))
        if r["prompt_key"] in by_key:
            by_key[r["prompt_key"]]["longest"] = max(by_key[r["prompt_key"]]["longest"], longest)
        else:
            by_key[r["prompt_key"]] = {"key": r["prompt_key"], "task": r["task"], "example": r["example"], "longest": longest}
    out = []
    for k in sorted(by_key):
        p = by_key[k]
        limit = math.ceil(p["longest"] * pc["max_new_factor"] / block) * block
        out.append({"key": k, "task": p["task"], "ids": build_prompt(p["example"], vocab),
                    "limit": int(max(block, min(limit, pc["max_new_tokens"] // block * block)))})
    return out


def rollout_seed(seed: int, *parts) -> int:
    return int(np.random.SeedSequence([int(seed), *map(int, parts)]).generate_state(1)[0] & 0x7FFFFFFF)


def layout_of(tokenizer_dir) -> Layout:
    """The codec's interleaving, from its config.json (the grammar the sampler follows)."""
    f = Path(tokenizer_dir) / "config.json"
    if not f.is_file():
        raise ValueError(f"tokenizer={tokenizer_dir}: not a codec tokenizer directory (no config.json)")
    cfg = json.loads(f.read_text())
    b = math.lcm(cfg["linguistic"]["hop_frames"], cfg["semantic"]["hop_frames"])   # tokenizer.block_frames
    return Layout(b // cfg["linguistic"]["hop_frames"], b // cfg["semantic"]["hop_frames"], cfg["linguistic"]["codebook"])


# ---- rollouts ------------------------------------------------------------------------------------
def rollout(actor, vocab, prompts: list[dict], seeds: list[int], pc: dict, layout: Layout) -> list[dict]:
    """Sample one answer per prompt with the fast decoder: [{prompt, answer (LLM ids), ended}]."""
    was = actor.training
    actor.eval()
    cfg = SampleConfig(top_p=1.0, repeat_max=0)   # the policy itself (ppo.py)
    outs = generate(actor, vocab, [p["ids"] for p in prompts], [p["limit"] for p in prompts], seeds,
                    pc["temperature"], cfg=cfg, layout=layout, cuda_graphs=pc["cuda_graphs"])
    actor.train(was)
    # a row shorter than its limit stopped at <|eos|> (limits are whole blocks and <|eos|> only comes
    # between blocks, so a row that reaches its limit never sampled it)
    return [{"prompt": p["ids"], "answer": vocab.audio_to_ids(a), "ended": len(a) < p["limit"]}
            for p, a in zip(prompts, outs)]


def policy_rows(ro: list[dict], vocab, with_eos: bool | None = None) -> dict:
    """Rollouts as right-padded rows. The policy's rows end with <|eos|> only where it was sampled;
    the reward model's rows (with_eos=True) always do: it scores at the answer's <|eos|>."""
    ex = []
    for r in ro:
        ans = np.append(r["answer"], vocab.eos) if (r["ended"] if with_eos is None else with_eos) else r["answer"]
        ex.append({"input_ids": np.concatenate([r["prompt"], ans]),
                   "labels": np.concatenate([np.full(len(r["prompt"]), IGNORE), ans])})
    return pad_rows(ex, vocab.pad)


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def score(reward, ro: list[dict], vocab, pc: dict, device, autocast) -> torch.Tensor:
    """[B] the reward model's score of each rollout, less `missing_eos_penalty` where the answer hit
    its limit without <|eos|> (the reward model never saw an unfinished answer)."""
    with autocast():
        s = reward(_to(policy_rows(ro, vocab, with_eos=True), device)).float()
    cut = torch.tensor([not r["ended"] for r in ro], device=device)
    return s - pc["missing_eos_penalty"] * cut


def select_hardest(actor, reward, vocab, prompts: list[dict], pc: dict, layout, device, autocast, log,
                   dist: Dist | None = None) -> tuple[list[int], dict]:
    """(indices of the hardest prompts, {key: mean reward}): each prompt's `probe_samples` SFT
    answers scored by the reward model; the `hardest_fraction` with the lowest mean are kept.
    With N workers each samples the (prompt, sample) jobs [rank::N]; the per-prompt sums are all-reduced."""
    if pc["hardest_fraction"] >= 1.0:
        return list(range(len(prompts))), {}
    dist = dist or Dist()
    k, bs = pc["probe_samples"], pc["rollout_batch"]
    jobs = [(i, s) for i in range(len(prompts)) for s in range(k)][dist.rank::dist.world]
    sums = np.zeros(len(prompts))
    for a in range(0, len(jobs), bs):
        chunk = jobs[a:a + bs]
        ro = rollout(actor, vocab, [prompts[i] for i, _ in chunk],
                     [rollout_seed(pc["seed"], PROBE, i, s) for i, s in chunk], pc, layout)
        for (i, _), v in zip(chunk, score(reward, ro, vocab, pc, device, autocast).tolist()):
            sums[i] += v
    if dist.world > 1:
        sums = dist.sum(torch.from_numpy(sums).to(dist.device)).cpu().numpy()
    mean = sums / k
    n = max(1, math.ceil(pc["hardest_fraction"] * len(prompts)))
    keep = sorted(np.argsort(mean, kind="stable")[:n].tolist())
    log(f"hardest prompts: {n} of {len(prompts)} (mean reward of {k} SFT samples {mean[keep].mean():.3f} "
        f"kept, {mean.mean():.3f} all)")
    return keep, {prompts[i]["key"]: round(float(mean[i]), 4) for i in range(len(prompts))}


# ---- schedule, checkpoints -----------------------------------------------------------------------
def actor_lr(step: int, pc: dict, progress: float) -> float:
    """0 during the critic's warm-up, then cosine from lr to min_lr over the actor's steps (or the
    time budget, whichever ends first)."""
    if step < pc["critic_warmup"]:
        return 0.0
    return pc["min_lr"] + (pc["lr"] - pc["min_lr"]) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def adamw(params, lr: float, pc: dict, device) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr, betas=tuple(pc["betas"]),
                             weight_decay=pc["weight_decay"], fused=torch.device(device).type == "cuda")


def fingerprint(pc: dict, editor_dir, reward_dir, pairs) -> str:
    """What a checkpoint must match to be resumed (budgets, logging and the worker count may change): the
    settings, what the SFT editor and the reward model are (their files' bytes) and the pairs, in order."""
    keep = {k: v for k, v in pc.items()
            if k not in ("steps", "max_minutes", "log_every", "ckpt_every", "cuda_graphs", "workers")}
    reward = artifacts.content_digest(reward_dir) if reward_dir and Path(reward_dir).is_dir() else str(reward_dir)
    blob = json.dumps([keep, artifacts.content_digest(editor_dir), reward, pairs_digest(read_pairs(pairs))],
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def check_settings(pc: dict) -> None:
    """Settings the loop divides by, samples with or batches over, checked before any model loads."""
    check_counts(pc, ("steps", "rollout_batch", "minibatch", "ppo_epochs", "log_every", "ckpt_every", "probe_samples"),
                 "pipeline.train")
    check_positive(pc, ("max_minutes", "lr", "critic_lr"), "pipeline.train")
    check_positive(pc, ("temperature",), "pipeline.train", "the policy's log-probabilities divide by it")


def codec_layout(editor_dir, tokenizer_dir) -> Layout:
    """The interleaving of the codec the SFT editor speaks: the named tokenizer must be that codec."""
    version = codec_version_of(editor_dir)
    if tokenizer_dir:
        theirs = json.loads((Path(tokenizer_dir) / "config.json").read_text()).get("version") \
            if (Path(tokenizer_dir) / "config.json").is_file() else None
        if version and theirs and theirs != version:
            raise ValueError(f"tokenizer={tokenizer_dir} is codec {theirs}; editor={editor_dir} speaks {version}")
        return layout_of(tokenizer_dir)
    found = artifacts.codec_dirs(version) if version else None
    return layout_of(found[0] if found else DEFAULT_TOKENIZER)


# ---- models --------------------------------------------------------------------------------------
def load_models(editor_dir, reward_dir, pc: dict, reward_fn=None):
    """(actor, reference, critic, reward, vocab). reward_fn: a module scoring rows as RewardModel
    does, used instead of reward_dir's model (tests plant one)."""
    editor_dir = Path(editor_dir)
    if not (editor_dir / "llm_vocab.json").is_file():
        raise ValueError(f"editor={editor_dir}: not an LLM checkpoint (no llm_vocab.json)")
    actor, vocab = llm_model.load(editor_dir)
    ref, _ = llm_model.load(editor_dir)
    ref.requires_grad_(False).eval()
    reward = reward_fn if reward_fn is not None else RewardModel.load(reward_dir)
    if (reward.vocab.version, reward.vocab.pronunciation_scheme) != (vocab.version, vocab.pronunciation_scheme):
        raise ValueError(f"reward={reward_dir} reads vocab {reward.vocab.version} (pronunciations "
                         f"{reward.vocab.pronunciation_scheme}), the editor {editor_dir} {vocab.version} (pronunciations "
                         f"{vocab.pronunciation_scheme}): train the reward model from this editor")
    if reward_fn is None:
        ours, theirs = codec_version_of(editor_dir), codec_version_of(reward_dir)
        if ours and theirs and ours != theirs:
            raise ValueError(f"reward={reward_dir} was trained on codec tokens {theirs}, the editor on {ours}")
    reward.requires_grad_(False).eval()
    if pc["critic_init"] == "reward":
        if reward_dir is None:
            raise ValueError("critic_init=reward needs a reward model directory")
        critic = RewardModel.load(reward_dir)
    elif pc["critic_init"] == "sft":
        critic = RewardModel.from_sft(editor_dir)
    else:
        raise ValueError(f"critic_init={pc['critic_init']!r}: choose reward or sft")
    return actor, ref, critic, reward, vocab


# ---- the loop ------------------------------------------------------------------------------------
def train_loop(pc: dict, editor_dir, reward_dir, pairs: list, out: Path, ckpt_dir: Path, device, resume: bool,
               run_info: dict | None = None, reward_fn=None, log=print, rank: int = 0, world: int = 1,
               wrap=None) -> dict:
    """The loop of one worker (module doc); rank 0 checkpoints and publishes. wrap(module) -> its DDP
    module (Ray Train workers); log: the caller passes a silent one to ranks > 0."""
    device = torch.device(device)
    if world > 1 and (pc["rollout_batch"] % world or pc["minibatch"] % world):
        raise ValueError(f"pipeline.train.rollout_batch={pc['rollout_batch']} and minibatch={pc['minibatch']} "
                         f"must be multiples of the {world} workers")
    check_settings(pc)
    dist = Dist(rank, world, device)
    torch.manual_seed(pc["seed"])
    if pc["critic_warmup"] >= pc["steps"]:
        log(f"note: critic_warmup={pc['critic_warmup']} >= steps={pc['steps']}: the actor never moves")
    actor, ref, critic, reward, vocab = load_models(editor_dir, reward_dir, pc, reward_fn)
    layout = codec_layout(editor_dir, pc["tokenizer"])
    pair_codec(read_pairs(pairs), codec_version_of(editor_dir), pairs)
    # On CUDA rollouts sample a bf16 copy of the actor, refreshed in place before each rollout: the
    # decoder's static cache takes the weights' dtype (fp32 weights under bf16 autocast give it keys
    # and values of two dtypes), and its captured graphs read fixed weight addresses.
    sampler = llm_model.load(editor_dir, "bfloat16")[0].to(device).eval() if device.type == "cuda" else None

    def policy():
        if sampler is None:
            return actor
        with torch.no_grad():
            for d, s in zip(sampler.parameters(), actor.parameters()):
                d.copy_(s)
        return sampler
    prompts = prompts_of(pairs, vocab, pc, layout.block)
    for m in (actor, ref, critic, reward):
        m.to(device)
    actor.train(), critic.train()
    opt_a = adamw(actor.parameters(), pc["lr"], pc, device)
    opt_c = adamw(critic.parameters(), pc["critic_lr"], pc, device)
    cuda = device.type == "cuda"
    autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    fp = fingerprint(pc, editor_dir, reward_dir, pairs)
    ckpt = ckpt_dir / CKPT
    gen = torch.Generator().manual_seed(pc["seed"])        # minibatch order
    step, elapsed, curve, selected, probe, epoch, pos = 0, 0.0, [], None, {}, 0, 0
    st = resume_state(ckpt, fp, resume, log)
    if st:
        actor.load_state_dict(st["actor"])
        critic.load_state_dict(st["critic"])
        opt_a.load_state_dict(st["opt_actor"])
        opt_c.load_state_dict(st["opt_critic"])
        step, elapsed, curve = st["step"], st["elapsed_s"], st["curve"]
        selected, probe, epoch, pos = st["selected"], st["probe"], st["epoch"], st["pos"]
        gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
    net_a, net_c = PolicyNet(actor, vocab, layout, pc["temperature"]), ValueNet(critic)
    if wrap:
        net_a, net_c = wrap(net_a), wrap(net_c)
    t_run = time.time() - elapsed
    if selected is None:
        selected, probe = select_hardest(policy(), reward, vocab, prompts, pc, layout, device, autocast, log, dist)
    pool = [prompts[i] for i in selected]
    order = lambda e: np.random.default_rng([pc["seed"], e]).permutation(len(pool))   # one shuffle per pass
    budget_s = 60.0 * pc["max_minutes"]
    actor_steps = max(1, pc["steps"] - pc["critic_warmup"])
    log(f"PPO: {len(pool)} prompts of {len(prompts)}, rollout batch {pc['rollout_batch']}, {pc['steps']} steps "
        f"(critic alone for the first {pc['critic_warmup']}); {world} worker(s) on {device}")
    # a run stopped by its time budget and resumed has no time left: it publishes what it has
    spent = st is not None and elapsed > budget_s
    while step < pc["steps"] and not spent:
        progress = max((step - pc["critic_warmup"]) / actor_steps, dist.max(time.time() - t_run) / budget_s)
        lr_a = actor_lr(step, pc, progress)
        for g in opt_a.param_groups:
            g["lr"] = lr_a
        batch_prompts = []
        perm = order(epoch)
        while len(batch_prompts) < pc["rollout_batch"]:
            if pos == len(pool):
                epoch, pos, perm = epoch + 1, 0, order(epoch + 1)
            batch_prompts.append(pool[perm[pos]])
            pos += 1
        # this worker's rows [rank::world] of the global batch, then everyone's (Dist)
        mine = range(rank, len(batch_prompts), world)
        ro = dist.rows(rollout(policy(), vocab, [batch_prompts[i] for i in mine],
                               [rollout_seed(pc["seed"], TRAIN, step, i) for i in mine], pc, layout))
        batch = _to(policy_rows(ro, vocab), device)
        part = batch if world == 1 else {k: v[rank::world] for k, v in batch.items()}
        with torch.no_grad(), autocast():
            old_logp, mask = ppo.policy_logprobs(actor, part, vocab, layout, pc["temperature"])
            ref_logp, _ = ppo.policy_logprobs(ref, part, vocab, layout, pc["temperature"])
            old_v = ppo.values(critic, part)
        s = score(reward, ro[rank::world], vocab, pc, device, autocast)
        if world > 1:
            old_logp, ref_logp, old_v, s = map(dist.tensor_rows, (old_logp, ref_logp, old_v, s))
            mask = batch["labels"][:, 1:] != IGNORE     # policy_logprobs' mask of every row
        rewards, kl = ppo.token_rewards(s, old_logp, ref_logp, mask, pc["kl_beta"])
        adv, ret = ppo.gae(rewards, old_v, mask, pc["gamma"], pc["lam"])
        adv = ppo.whiten(adv, mask)
        train_actor = step >= pc["critic_warmup"]
        stats = {"pg_loss": [], "clip_frac": [], "value_loss": []}
        B = len(ro)
        for _ in range(pc["ppo_epochs"]):
            for idx in torch.randperm(B, generator=gen).split(pc["minibatch"]):
                idx = idx.to(device)
                n_act = None         # one worker: the minibatch's own means
                if world > 1:        # this worker's rows of the global minibatch, over all of its actions
                    n_act = mask[idx].sum().clamp_min(1)
                    idx = idx[rank::world]
                mb = {k: v[idx] for k, v in batch.items()}
                with autocast():
                    v = net_c(mb)
                vl = ppo.value_loss(v, old_v[idx], ret[idx], mask[idx], pc["value_clip"], n_act)
                (vl * world).backward()     # DDP averages over the workers: the sum of their shares
                torch.nn.utils.clip_grad_norm_(critic.parameters(), pc["grad_clip"])
                opt_c.step()
                opt_c.zero_grad(set_to_none=True)
                stats["value_loss"].append(vl.detach())
                if train_actor:
                    with autocast():
                        logp, _ = net_a(mb)
                    pl, cf = ppo.policy_loss(logp, old_logp[idx], adv[idx], mask[idx], pc["clip"], n_act)
                    (pl * world).backward()
                    torch.nn.utils.clip_grad_norm_(actor.parameters(), pc["grad_clip"])
                    opt_a.step()
                    opt_a.zero_grad(set_to_none=True)
                    stats["pg_loss"].append(pl.detach())
                    stats["clip_frac"].append(cf.detach())
        # per minibatch: one worker's mean, or the sum of the workers' shares
        stats = {k: dist.sum(torch.stack(v).float()).tolist() if v else [] for k, v in stats.items()}
        step += 1
        out_of_time = dist.max(time.time() - t_run) > budget_s
        last = step == pc["steps"] or out_of_time
        seq_kl = kl.sum(-1)
        row = {"step": step, "minutes": round((time.time() - t_run) / 60, 3), "actor_lr": lr_a,
               "reward": round(s.mean().item(), 4), "kl": round(seq_kl.mean().item(), 5),
               "kl_per_token": round((kl.sum() / mask.sum()).item(), 6),
               "value_loss": round(float(np.mean(stats["value_loss"])), 5),
               "clip_frac": round(float(np.mean(stats["clip_frac"])), 4) if stats["clip_frac"] else None,
               "pg_loss": round(float(np.mean(stats["pg_loss"])), 5) if stats["pg_loss"] else None,
               "answer_tokens": round(float(np.mean([len(r["answer"]) for r in ro])), 1),
               "ended": round(float(np.mean([r["ended"] for r in ro])), 3)}
        curve.append(row)
        if step % pc["log_every"] == 0 or last:
            log(json.dumps(row))
        if rank == 0 and (step % pc["ckpt_every"] == 0 or last):
            save_checkpoint(ckpt, {"fingerprint": fp, "actor": actor.state_dict(), "critic": critic.state_dict(),
                                   "opt_actor": opt_a.state_dict(), "opt_critic": opt_c.state_dict(), "step": step,
                                   "elapsed_s": time.time() - t_run, "curve": curve, "selected": selected,
                                   "probe": probe, "epoch": epoch, "pos": pos, "gen": gen.get_state(),
                                   "torch_rng": torch.get_rng_state()})
        if out_of_time:
            log(f"stopped at the time budget ({pc['max_minutes']} min) after {step} steps")
            break
    actor.eval()
    result = {**(run_info or {}), "device": device_name(device), "workers": world, "steps": step,
              "actor_steps": max(0, step - pc["critic_warmup"]), "seconds": round(time.time() - t_run, 1),
              "prompts": {"train": len(prompts), "selected": [prompts[i]["key"] for i in selected],
                          "probe_mean_reward": probe},
              "final": curve[-1] if curve else {}, "curve": curve, "vocab": vocab.version,
              "tokenizer_version": codec_version_of(editor_dir), "sft": str(editor_dir), "reward": str(reward_dir)}
    if rank == 0:
        publish_artifact(actor, vocab, out, result, pc)
    return result


def ray_worker(config: dict) -> None:
    """Ray Train's per-worker function (pipelines/train_ppo.py): train_loop with DDP through
    ray.train.torch. find_unused_parameters: the critic's values leave its backbone's LM head unused."""
    import ray.train
    import ray.train.torch
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)     # all_gather_object's NCCL tensors go to the current device

    def wrap(m):
        return ray.train.torch.prepare_model(m, parallel_strategy_kwargs={"find_unused_parameters": True})
    result = train_loop(config["train"], config["editor"], config["reward"], config["pairs"], Path(config["out"]),
                        Path(config["ckpt_dir"]), device, config["resume"], config["run_info"],
                        config.get("reward_fn"), log=print if rank == 0 else (lambda *_: None),
                        rank=rank, world=world, wrap=wrap)
    ray.train.report({"steps": result["steps"]})


def publish_artifact(model, vocab, out: Path, result: dict, pc: dict) -> Path:
    """The actor as an editor LLM directory (Editor.load reads it like the SFT one) + the run's record."""
    tmp = artifacts.staging_dir(out)
    model = model.to(torch.bfloat16) if pc.get("save_dtype") == "bfloat16" else model
    llm_model.save(model, vocab, tmp, max_shard_size=pc.get("max_shard_size", "15MB"))
    if result.get("tokenizer_version"):
        write_codec_meta(tmp, result["tokenizer_version"], codec_digest_of(result["sft"]))
    # decoded as the SFT editor is (its guidance, piece lengths and speed ratios): only the weights differ
    result.update(artifacts.sft_settings(result["sft"], tmp))
    curve = result.pop("curve")
    (tmp / "training_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
    (tmp / "training.json").write_text(json.dumps({**result, "ppo": pc}, indent=1, default=str))
    curve_png(curve, tmp / "ppo_curve.png")
    return artifacts.publish(tmp, out)


def curve_png(curve: list[dict], path: Path) -> None:
    """Reward and KL to the SFT policy over the steps (the warm-up shaded: the actor was frozen)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    steps = [r["step"] for r in curve]
    a.plot(steps, [r["reward"] for r in curve])
    a.set_ylabel("reward (RM score)")
    b.plot(steps, [r["kl"] for r in curve])
    b.set_ylabel("KL to SFT (nats/answer)")
    b.set_xlabel("step")
    warm = [r["step"] for r in curve if r["clip_frac"] is None]
    if warm:
        for ax in (a, b):
            ax.axvspan(0, max(warm), color="0.9", label="critic warm-up (actor frozen)")
        a.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
