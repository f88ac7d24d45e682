"""PPO's arithmetic over rollouts of the audio LLM: the policy's log-probabilities, the critic's
values, per-token rewards with the KL penalty, GAE and the clipped losses. The loop is train_ppo.py.

The policy is the distribution the rollouts were really sampled from: generate.py restricts each
answer position to the audio block + <|eos|> and, with a layout, to the codec's interleaving grammar
(linguistic ids, then semantic ids; <|eos|> only between blocks). So log pi(a_t) here is the log-softmax
of the logits / temperature over the ids allowed at that answer position, not over the whole vocab;
the reference (SFT) policy is restricted the same way, so the KL is between the two constrained
policies. Rollouts sample with the repetition guard off (the guard's resampling is not a softmax of
the model's logits, so its probabilities could not be computed here).

Alignment: in a right-padded row (logprobs.pad_rows), position i's output predicts token i+1; the
action at label position i+1 is taken in the state whose last token is i. Every tensor of actions
here is [B, L-1] over i (as logprobs.token_logprobs), with `mask` marking the answer's actions."""
import torch

from editor.llm.chat import IGNORE
from editor.llm.generate import Layout, _allowed
from editor.llm.vocab import AUDIO_SIZE, Vocab


def candidates(labels: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """[B, L] LLM ids -> candidate index (audio id, or AUDIO_SIZE for <|eos|>); -1 elsewhere."""
    audio = (labels >= vocab.audio_offset) & (labels < vocab.special_offset)
    return torch.where(audio, labels - vocab.audio_offset,
                       torch.where(labels == vocab.eos, torch.full_like(labels, AUDIO_SIZE), torch.full_like(labels, -1)))


def answer_start(labels: torch.Tensor) -> torch.Tensor:
    """[B] index of each row's first labelled position (the first answer token)."""
    lab = labels != IGNORE
    if not bool(lab.any(-1).all()):
        raise ValueError("a rollout row has no answer positions")
    return lab.float().argmax(-1)


def policy_logprobs(model, batch: dict, vocab: Vocab, layout: Layout | None, temperature: float
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log pi of each answer action [B, L-1] in fp32, mask [B, L-1]) under the sampler's constrained
    distribution (module doc). Masked positions hold 0."""
    labels = batch["labels"]
    start = answer_start(labels)
    # the LM head only from the earliest answer on: prompts are most of a row, and a [B, L, vocab]
    # logits tensor (and its gradient) would be most of the step's memory and time
    s0 = int(start.min()) - 1
    h = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            position_ids=batch["position_ids"], use_cache=False).last_hidden_state
    head = model.get_output_embeddings().weight
    ans = slice(vocab.audio_offset, vocab.special_offset)
    cand = torch.cat([h[:, s0:-1] @ head[ans].T, h[:, s0:-1] @ head[vocab.eos:vocab.eos + 1].T], -1).float()
    tgt = candidates(labels[:, s0 + 1:], vocab)
    mask = labels[:, s0 + 1:] != IGNORE
    if bool((mask & (tgt < 0)).any()):
        raise ValueError("an answer holds a token that is neither audio nor <|eos|>")
    allowed = _allowed(layout, cand.device)
    # answer position of each action (label position i+1 minus the answer's start), mod the block
    j = torch.arange(s0 + 1, labels.shape[1], device=cand.device)[None, :] - start[:, None]
    ok = allowed[j.clamp_min(0) % allowed.shape[0]]                      # [B, L-1-s0, 5121]
    logp = torch.log_softmax((cand / temperature).masked_fill(~ok, float("-inf")), dim=-1)
    picked = logp.gather(-1, tgt.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    picked = torch.where(mask, picked, torch.zeros_like(picked))
    pad = lambda x: torch.nn.functional.pad(x, (s0, 0))     # back to [B, L-1]: prompt actions hold 0
    return pad(picked), pad(mask)


def values(critic, batch: dict) -> torch.Tensor:
    """[B, L-1] the critic's value of each action's state (position i, before the action at i+1).
    critic: a reward.RewardModel (backbone + scalar head) applied at every position."""
    h = critic.lm.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                position_ids=batch["position_ids"], use_cache=False).last_hidden_state
    return critic.head(h[:, :-1].to(critic.head.weight.dtype)).squeeze(-1).float()


def token_rewards(score: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                  beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-action rewards [B, L-1], per-action KL estimate [B, L-1]).

    Every action pays beta * (log pi - log pi_ref) (the sampled, per-token KL estimate, as InstructGPT
    and TRL); the reward model's score of the whole answer is added at its last action. Summed over
    a row, the return is score - beta * KL(pi || pi_ref) of the sequence."""
    kl = (logp - ref_logp) * mask
    r = -beta * kl
    last = (mask.shape[1] - 1) - mask.flip(-1).float().argmax(-1)
    r[torch.arange(r.shape[0], device=r.device), last] += score.to(r.dtype)
    return r, kl


def gae(rewards: torch.Tensor, vals: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) [B, L-1] by generalized advantage estimation over each row's answer
    actions (contiguous in the row); the value after the last action is 0 (the episode ends)."""
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    run = torch.zeros(B, device=rewards.device)
    next_v = torch.zeros(B, device=rewards.device)
    for t in range(T - 1, -1, -1):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_v - vals[:, t]
        run = torch.where(m, delta + gamma * lam * run, torch.zeros_like(run))
        adv[:, t] = run
        next_v = torch.where(m, vals[:, t], torch.zeros_like(next_v))
    return adv, (adv + vals) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor, denom=None) -> torch.Tensor:
    """Mean of x over the masked actions; denom: divide by this count instead of the mask's (a worker's
    share of a minibatch divides its sum by the whole minibatch's actions, train_ppo.py)."""
    return (x * mask).sum() / (mask.sum().clamp_min(1) if denom is None else denom)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Advantages normalised over the batch's answer actions (mean 0, std 1): one step size for
    every reward scale."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip: float,
                denom=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(clipped surrogate loss, fraction of actions whose ratio left [1 - clip, 1 + clip]), both
    means over the answer actions (or sums over them / denom, masked_mean)."""
    ratio = torch.exp(logp - old_logp)
    loss = -torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    return masked_mean(loss, mask, denom), masked_mean(((ratio - 1).abs() > clip).float(), mask, denom)


def value_loss(v: torch.Tensor, old_v: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float | None, denom=None) -> torch.Tensor:
    """0.5 * squared error to the returns, mean over the answer actions; with `clip`, PPO's clipped
    form (the worse of the new value and the old value moved at most clip)."""
    err = (v - returns) ** 2
    if clip is not None:
        err = torch.maximum(err, (old_v + (v - old_v).clamp(-clip, clip) - returns) ** 2)
    return 0.5 * masked_mean(err, mask, denom)
