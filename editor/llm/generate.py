"""Batched autoregressive decoding of audio ids: our own loop, not `model.generate`.

Why our own: the answer must stay inside the audio block (+ <|eos|>), each request has its own
length limit and its own seed, and the repetition guard needs the generated history. A plain loop
over a transformers causal LM with a KV cache does all of that in one place.

Layout of a batch: prompts are left-padded to one length P, so every row's next token sits in the
same cache slot (P + t) and one [B, 1] step serves the whole batch. Each row gets its own
position_ids (counting from its first real token, as in training) and a 4-D boolean mask that hides
its padding. A pad query attends to itself only, so no row of the mask is empty (SDPA gives NaN for
an empty row, and NaN values would leak through the zero attention weights of other rows).

Sampling (upstream's: temperature 0.7; temperature 0 is argmax exactly):
- logits are restricted to the audio block and <|eos|>; with `layout` they are further restricted
  to the codec's interleaving grammar (n_ling linguistic ids, then n_sem semantic ids per block;
  <|eos|> only at a block boundary), so every output deinterleaves and decodes.
- repetition-aware sampling (VALL-E 2): if the sampled token already occurs `repeat_max` times in
  the row's last `repeat_window` generated tokens, it is resampled from the untempered distribution
  (temperature 1, no top-p) over the same allowed ids. That breaks loops without banning the token.
- every row draws counter-based noise (`uniform_noise`: a function of its seed, the step and the
  index), the same whatever else is in the batch: a request gives the same result alone or batched (up to float rounding).
"""
from dataclasses import dataclass

import numpy as np
import torch

from editor.llm.vocab import AUDIO_SIZE, Vocab


@dataclass
class SampleConfig:
    temperature: float = 0.7
    top_p: float = 1.0               # 1.0 = off; nucleus on the tempered distribution
    repeat_window: int = 10
    repeat_max: int = 3              # resample when the token already occurs this often in the window; 0 = off


@dataclass(frozen=True)
class Layout:
    """The codec's interleaving: per block n_ling ids in [0, ling_size), then n_sem ids in [ling_size, 5120)."""
    n_ling: int = 2
    n_sem: int = 3
    ling_size: int = 1024

    @property
    def block(self) -> int:
        return self.n_ling + self.n_sem

    @classmethod
    def of(cls, tokenizer) -> "Layout":
        return cls(tokenizer.n_ling, tokenizer.n_sem, tokenizer.cfg["linguistic"]["codebook"])


def _allowed(layout: Layout | None, device) -> torch.Tensor:
    """[block or 1, 5121] bool: which of (audio ids, eos) may come at each position in a block."""
    if layout is None:
        return torch.ones(1, AUDIO_SIZE + 1, dtype=torch.bool, device=device)
    m = torch.zeros(layout.block, AUDIO_SIZE + 1, dtype=torch.bool, device=device)
    m[:layout.n_ling, :layout.ling_size] = True
    m[layout.n_ling:, layout.ling_size:AUDIO_SIZE] = True
    m[0, AUDIO_SIZE] = True       # stop only between blocks
    return m


def _gumbel_pick(logp: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Sample from softmax(logp) with pre-drawn uniform noise (Gumbel-max): per-row reproducible."""
    return torch.argmax(logp - torch.log(-torch.log(noise.clamp_min(1e-20))), dim=-1)


_MIX = [c - 2**64 if c >= 2**63 else c for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)]


def uniform_noise(seeds: torch.Tensor, step: int, n: int) -> torch.Tensor:
    """[B, n] uniforms in (0, 1), a pure function of (row seed, step, index): a counter-based
    generator (splitmix64's finalizer over int64, which wraps), so a row draws the same noise alone
    or in any batch, with a few kernels per step for the whole batch instead of one per row."""
    c = torch.tensor(_MIX, dtype=torch.long, device=seeds.device)  # tensors: int64 products wrap
    idx = torch.arange(n, device=seeds.device, dtype=torch.long)
    x = (seeds[:, None] * c[1] + step) * c[0] + idx[None, :] * c[2]
    for shift, mul in ((30, c[1]), (27, c[2])):  # torch's >> is arithmetic: mask the sign bits
        x = (x ^ ((x >> shift) & ((1 << (64 - shift)) - 1))) * mul
    x = x ^ ((x >> 31) & ((1 << 33) - 1))
    u = (((x >> 11) & ((1 << 53) - 1)).double().add_(0.5) / float(1 << 53)).float()
    return u.clamp_(max=1.0 - 2.0 ** -24)  # float32 would round the top values to 1.0 (log 0 in Gumbel-max)


def pick(logits: torch.Tensor, history: torch.Tensor, n_hist: int, temperature: torch.Tensor,
         cfg: SampleConfig, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One sampling step over the candidate logits [B, C] (disallowed ids already -inf).

    history: [B, >= n_hist] generated candidate indices; temperature: [B] (0 = greedy);
    noise: [2, B, C] uniform draws (main sample, guard resample). Returns (indices [B], guard fired [B])."""
    logits = logits.float()
    greedy = temperature <= 0
    t = torch.where(greedy, torch.ones_like(temperature), temperature)[:, None]
    logp = torch.log_softmax(logits / t, dim=-1)
    if cfg.top_p < 1.0:
        sp, order = logp.exp().sort(dim=-1, descending=True)
        drop = sp.cumsum(-1) - sp > cfg.top_p          # keep the smallest prefix reaching top_p
        logp = logp.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    tok = torch.where(greedy, logits.argmax(-1), _gumbel_pick(logp, noise[0]))
    fired = torch.zeros_like(greedy)
    if cfg.repeat_max > 0 and n_hist > 0:
        window = history[:, max(0, n_hist - cfg.repeat_window):n_hist]
        fired = ((window == tok[:, None]).sum(-1) >= cfg.repeat_max) & ~greedy
        # both draws always: asking whether the guard fired would stall the GPU every step
        tok = torch.where(fired, _gumbel_pick(torch.log_softmax(logits, -1), noise[1]), tok)
    return tok, fired


GRAPH_LEN = 256          # cache lengths are rounded up to this with CUDA graphs: few shapes, few captures
_GRAPHS: dict = {}       # (model, batch, cache length) -> (static cache, compiled one-token step)


def _graph_step(model, B: int, L: int):
    """A static cache and the compiled one-token step over it, kept per (model, batch, length): the
    captured graph replays on the same cache tensors (reset, not reallocated, between calls)."""
    key = (id(model), B, L)
    if key not in _GRAPHS:
        import torch._dynamo
        from transformers import StaticCache
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        cache = StaticCache(config=model.config, max_cache_len=L)

        def step(tok_ids, attn, position, cache_pos):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model(input_ids=tok_ids, attention_mask=attn, position_ids=position, past_key_values=cache,
                             cache_position=cache_pos, use_cache=True).logits[:, -1, :].float()
        _GRAPHS[key] = (cache, torch.compile(step, mode="reduce-overhead", dynamic=False))
    cache, step = _GRAPHS[key]
    cache.reset()
    return cache, step


def _make_cache(model, max_len: int, static: bool):
    from transformers import DynamicCache
    if static:
        try:
            from transformers import StaticCache
            return StaticCache(config=model.config, max_cache_len=max_len), True
        except Exception:   # older/newer signature: the dynamic cache always works
            pass
    return DynamicCache(config=model.config), False


@torch.no_grad()
def generate(model, vocab: Vocab, prompts: list, max_new_tokens, seeds=None, temperature=0.7,
             cfg: SampleConfig | None = None, layout: Layout | None = None, static_cache: bool = True,
             stats: dict | None = None, cuda_graphs: bool = False) -> list[np.ndarray]:
    """Prompts (LLM id arrays ending in <|assistant|>) -> codec audio ids [0, 5120) per prompt.

    max_new_tokens, seeds, temperature: one value for all rows or one per row. A row stops at
    <|eos|> (stripped) or at its limit; its output is cut to whole blocks (layout.block, default 5).
    `stats`, if given, gets "guard_fired" (per-row counts) and "steps".
    cuda_graphs: on CUDA with the static cache, each one-token step runs as a captured CUDA graph
    (torch.compile "reduce-overhead"): the launch overhead of a small model's ~100 kernels goes away."""
    cfg = cfg or SampleConfig()
    B = len(prompts)
    if B == 0:
        return []
    def per_row(v, name):
        if np.ndim(v) == 0:
            return [v] * B
        if len(v) != B:
            raise ValueError(f"{name}: {len(v)} values for {B} prompts")
        return list(v)
    limits = [int(n) for n in per_row(max_new_tokens, "max_new_tokens")]
    seeds = per_row(0 if seeds is None else seeds, "seeds")
    temps = per_row(temperature, "temperature")
    if min(limits) < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {min(limits)}")
    prompts = [np.asarray(p, dtype=np.int64).reshape(-1) for p in prompts]
    if min(len(p) for p in prompts) == 0:
        raise ValueError("empty prompt")

    dev = next(model.parameters()).device
    P, T = max(len(p) for p in prompts), max(limits)
    graphs = cuda_graphs and static_cache and dev.type == "cuda"
    L = -(-(P + T) // GRAPH_LEN) * GRAPH_LEN if graphs else P + T  # graphs: a few cache lengths, reused
    ids = torch.full((B, P), vocab.pad, dtype=torch.long)
    valid = torch.zeros(B, L, dtype=torch.bool)               # which cache slots hold real tokens
    for b, p in enumerate(prompts):
        ids[b, P - len(p):] = torch.from_numpy(p)
        valid[b, P - len(p):P] = True
    ids, valid = ids.to(dev), valid.to(dev)
    plen = torch.tensor([len(p) for p in prompts], device=dev)
    temps_t = torch.tensor(temps, dtype=torch.float32, device=dev)
    seeds_t = torch.tensor([int(x) for x in seeds], dtype=torch.long, device=dev)
    allowed = _allowed(layout, dev)
    block = layout.block if layout else 5
    cand_ids = torch.cat([torch.arange(AUDIO_SIZE, device=dev) + vocab.audio_offset,
                          torch.tensor([vocab.eos], device=dev)])   # candidate index -> LLM id
    graph_step = _graph_step(model, B, L) if graphs else None
    cache, is_static = (graph_step[0], True) if graphs else _make_cache(model, L, static_cache)
    slots = torch.arange(L, device=dev)

    def mask(q_slots):   # [B, 1, q, kv]: real keys up to the query's slot, plus the query itself
        kv = L if is_static else int(q_slots[-1]) + 1
        m = valid[:, None, :kv] & (slots[None, None, :kv] <= q_slots[None, :, None])
        return (m | (slots[None, None, :kv] == q_slots[None, :, None]))[:, None]

    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")

    def eager_step(tok_ids, attn, position, cache_pos):
        with autocast:
            return model(input_ids=tok_ids, attention_mask=attn, position_ids=position, past_key_values=cache,
                         cache_position=cache_pos, use_cache=True).logits[:, -1, :]
    one_step = graph_step[1] if graphs else eager_step
    pos = (torch.arange(P, device=dev)[None, :] - (P - plen)[:, None]).clamp_min(0)
    with autocast:
        out = model(input_ids=ids, attention_mask=mask(slots[:P]), position_ids=pos,
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
    hist = torch.zeros(B, T, dtype=torch.long, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    n_out = torch.tensor(limits, device=dev)                  # tokens kept per row (before block cut)
    lim = n_out.clone()
    fired_n = torch.zeros(B, dtype=torch.long, device=dev)
    t = 0
    for t in range(T):
        logits = out.logits[:, -1, :] if t == 0 else out
        cand = torch.cat([logits[:, vocab.audio_offset:vocab.special_offset], logits[:, vocab.eos:vocab.eos + 1]], -1)
        cand = cand.float().masked_fill(~allowed[t % allowed.shape[0]], float("-inf"))
        noise = torch.stack([uniform_noise(seeds_t, 2 * t + k, AUDIO_SIZE + 1) for k in range(2)])
        tok, fired = pick(cand, hist, t, temps_t, cfg, noise)
        fired_n += (fired & ~done).long()
        hist[:, t] = tok
        stop = ~done & ((tok == AUDIO_SIZE) | (t + 1 >= lim))
        n_out = torch.where(~done & (tok == AUDIO_SIZE), torch.full_like(n_out, t), n_out)
        done |= stop
        if t % 8 == 7 and bool(done.all()):  # a device sync: not every step
            break
        slot = P + t
        valid[:, slot] = True
        out = one_step(cand_ids[tok][:, None], mask(slots[slot:slot + 1]), (plen + t)[:, None], slots[slot:slot + 1])
    if stats is not None:
        stats.update(guard_fired=fired_n.tolist(), steps=t + 1)
    hist, n_out = hist.cpu().numpy(), n_out.cpu().numpy()
    return [hist[b, :n - n % block].astype(np.int32) for b, n in enumerate(n_out)]
