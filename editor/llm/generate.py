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
- guidance (classifier-free guidance with a negative prompt, as Sanchez et al. 2023 apply it to text
  LMs without any training for it): a row may have a partner row that decodes a negative prompt (the
  same source under another instruction). Its next-token log-probabilities become
  neg + w·(cond − neg): with w > 1 the answer moves further in the direction the instruction adds.
  The partner is fed the leader's tokens, so both read the same answer so far.
- every row draws counter-based noise (`uniform_noise`: a function of its seed, the step and the
  index), the same whatever else is in the batch: a request gives the same result alone or batched (up to float rounding).

One step = the model's one-token forward on the KV cache + sampling + the rows' bookkeeping, written
with tensors only (the step counter lives on the device too), so that on CUDA the whole step is
captured once as a CUDA graph and replayed: the host enqueues one graph per token and looks at the
device only every 8 steps (have all rows stopped?). At batch 1 a small model's step is ~250 tiny
kernels; launching them one by one costs more than running them. With `cuda_graphs`, torch.compile
first fuses the step's kernels (transformers' eager forward does not capture as it is; the compiled
one does), then the graph is captured. A step that cannot be captured runs eagerly and says so once
(`graph_mode` in stats). CPU steps run eagerly: the same code, one path.
"""
import logging
import threading
from collections import OrderedDict
from dataclasses import astuple, dataclass

import numpy as np
import torch

from editor import graph_capture
from editor.llm import decode_attention
from editor.llm.vocab import AUDIO_SIZE, Vocab

log = logging.getLogger(__name__)


@dataclass
class SampleConfig:
    """How every row samples; each row's temperature is its own (generate's `temperature`)."""
    top_p: float = 1.0               # 1.0 = off; nucleus on the tempered distribution
    repeat_window: int = 10
    repeat_max: int = 3              # resample when the token already occurs this often in the window; 0 = off
    ignore_eos: bool = False         # never stop before the limit (fixed-length benchmarks)


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


def pick(logits: torch.Tensor, history: torch.Tensor, n_hist, temperature: torch.Tensor,
         cfg: SampleConfig, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One sampling step over the candidate logits [B, C] (disallowed ids already -inf).

    history: [B, >= n_hist] generated candidate indices, n_hist how many are real (an int, a 0-d
    tensor, or a [B] tensor of one count per row: the same ops either way, so a captured step never
    depends on a host value);
    temperature: [B] (0 = greedy); noise: [2, B, C] uniform draws (main sample, guard resample).
    Returns (indices [B], guard fired [B])."""
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
    if cfg.repeat_max > 0 and cfg.repeat_window > 0:
        # the last repeat_window positions before n_hist; those before 0 do not count
        at = torch.as_tensor(n_hist, device=history.device).reshape(-1, 1) - cfg.repeat_window + torch.arange(
            cfg.repeat_window, device=history.device)              # [1 or B, window]
        window = history.gather(1, at.clamp_min(0).expand(history.shape[0], -1))
        hits = ((window == tok[:, None]) & (at >= 0)).sum(-1)
        fired = (hits >= cfg.repeat_max) & ~greedy
        # both draws always: asking whether the guard fired would stall the GPU every step
        tok = torch.where(fired, _gumbel_pick(torch.log_softmax(logits, -1), noise[1]), tok)
    return tok, fired


GRAPH_LEN = 256          # CUDA cache lengths: the next power of two from this up (few shapes, few compiles)
_DECODERS: OrderedDict = OrderedDict()   # (model, batch, cache length, ...) -> idle _Decoders, least recent first
_DECODERS_LOCK = threading.Lock()
_MAX_DECODERS = 16                       # each holds a KV cache and a graph: bounded


class _Decoder:
    """The decode state of one batch shape (static tensors) and the one-token step over it.

    The step reads and writes only these tensors, so its CUDA graph, captured once, serves every
    later batch of the same shape: `start` refills them in place."""

    def __init__(self, model, vocab: Vocab, B: int, L: int, cfg: SampleConfig, layout: Layout | None, dev,
                 static: bool, guided: bool = False):
        self.model, self.vocab, self.cfg, self.B, self.L, self.static = model, vocab, cfg, B, L, static
        decode_attention.use(model)          # one read of the GQA cache per step, not a copy per head
        self.guided = guided     # a decoder (and its graph) of its own: unguided steps run no guidance ops
        self.dev = dev
        self.cache = None
        z = lambda *shape, dtype=torch.long: torch.zeros(*shape, dtype=dtype, device=dev)
        self.logits = z(B, vocab.size, dtype=torch.float32)   # next-token logits of the last forward
        self.hist = z(B, L)                                  # generated candidate indices (T <= L)
        self.valid = z(B, L, dtype=torch.bool)               # which cache slots hold real tokens
        self.done, self.n_out, self.lim, self.fired_n = z(B, dtype=torch.bool), z(B), z(B), z(B)
        self.min_out = z(B)                                  # <|eos|> is not allowed before this many tokens
        self.temps, self.seeds, self.plen = z(B, dtype=torch.float32), z(B), z(B)
        # guidance: partner[b] the row decoding b's negative prompt (b itself: none), weight[b] its w;
        # leader[b] the row whose sampled token row b is fed (b itself, except for partners)
        self.partner, self.leader, self.weight = z(B), z(B), z(B, dtype=torch.float32)
        self.guided_row = z(B, dtype=torch.bool)             # rows that have a partner
        self.t, self.p0 = z(()), z(())                     # step counter; prompt block length P
        self.allowed = _allowed(layout, dev)
        if cfg.ignore_eos:
            self.allowed[:, AUDIO_SIZE] = False
        self.cand_ids = torch.cat([torch.arange(AUDIO_SIZE, device=dev) + vocab.audio_offset,
                                   torch.tensor([vocab.eos], device=dev)])   # candidate index -> LLM id
        self.slots = torch.arange(L, device=dev)
        self.mode, self.graph = None, None

    def _autocast(self):
        # no cast cache: a captured graph must not hold casts made during capture
        return torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.dev.type == "cuda", cache_enabled=False)

    def _new_cache(self):
        from transformers import DynamicCache, StaticCache
        if self.static:
            return StaticCache(config=self.model.config, max_cache_len=self.L)
        return DynamicCache(config=self.model.config)

    def start(self, prompts: list[np.ndarray], limits, seeds, temps, mins, partner=None, weight=None) -> None:
        """Reset the state in place for a new batch and run the prompts' forward (prefill).
        partner, weight: the guidance pairs (see the module doc); None: no row is guided."""
        B, P = self.B, max(len(p) for p in prompts)
        ids = torch.full((B, P), self.vocab.pad, dtype=torch.long)
        valid = torch.zeros(B, self.L, dtype=torch.bool)
        for b, p in enumerate(prompts):
            ids[b, P - len(p):] = torch.from_numpy(p)
            valid[b, P - len(p):P] = True
        self.valid.copy_(valid)
        self.plen.copy_(torch.tensor([len(p) for p in prompts]))
        self.lim.copy_(torch.tensor(limits))
        self.min_out.copy_(torch.tensor(mins))
        self.n_out.copy_(self.lim)                    # tokens kept per row (before the block cut)
        self.seeds.copy_(torch.tensor([int(x) for x in seeds]))
        self.temps.copy_(torch.tensor(temps, dtype=torch.float32))
        rows = torch.arange(B)
        part = rows if partner is None else torch.as_tensor(partner, dtype=torch.long)
        guided, lead = part != rows, rows.clone()
        lead[part[guided]] = rows[guided]
        self.partner.copy_(part), self.leader.copy_(lead), self.guided_row.copy_(guided)
        self.weight.copy_(torch.ones(B) if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.done.zero_(), self.fired_n.zero_(), self.hist.zero_(), self.t.zero_()
        self.p0.fill_(P)
        if self.cache is None or not self.static:
            self.cache = self._new_cache()
        else:
            self.cache.reset()
        ids = ids.to(self.dev)
        pos = (torch.arange(P, device=self.dev)[None, :] - (P - self.plen)[:, None]).clamp_min(0)
        q = self.slots[:P]
        kv = self.L if self.static else P
        m = self.valid[:, None, :kv] & (self.slots[None, None, :kv] <= q[None, :, None])
        m = (m | (self.slots[None, None, :kv] == q[None, :, None]))[:, None]
        with self._autocast():
            out = self.model(input_ids=ids, attention_mask=m, position_ids=pos, past_key_values=self.cache,
                             use_cache=True, logits_to_keep=1)
        self.logits.copy_(out.logits[:, -1, :].float())

    def _step(self) -> None:
        """Sample every row's next token from self.logits, then run it through the model. Tensor ops
        only; the step counter self.t advances on the device."""
        v, cfg, t = self.vocab, self.cfg, self.t
        cand = torch.cat([self.logits[:, v.audio_offset:v.special_offset], self.logits[:, v.eos:v.eos + 1]], -1)
        allowed = self.allowed.index_select(0, (t % self.allowed.shape[0]).view(1))
        cand = cand.masked_fill(~allowed, float("-inf"))
        cand[:, AUDIO_SIZE] = torch.where(t < self.min_out, float("-inf"), cand[:, AUDIO_SIZE])
        if self.guided:
            ls = torch.log_softmax(cand, -1)
            neg = ls.index_select(0, self.partner)
            g = (neg + self.weight[:, None] * (ls - neg)).masked_fill(~torch.isfinite(ls), float("-inf"))
            cand = torch.where(self.guided_row[:, None], g, cand)   # unguided rows: bit for bit
        noise = torch.stack([uniform_noise(self.seeds, 2 * t + k, AUDIO_SIZE + 1) for k in range(2)])
        tok, fired = pick(cand, self.hist, t, self.temps, cfg, noise)
        if self.guided:
            tok = tok.index_select(0, self.leader)     # a partner reads its leader's answer
        self.fired_n.add_((fired & ~self.done).long())
        self.hist.index_copy_(1, t.view(1), tok[:, None])
        eos = tok == AUDIO_SIZE
        self.n_out.copy_(torch.where(~self.done & eos, t.expand(self.B), self.n_out))
        self.done.logical_or_(eos | (t + 1 >= self.lim))
        slot = (self.p0 + t).view(1)
        self.valid.index_fill_(1, slot, True)
        kv = self.L if self.static else int(slot) + 1       # dynamic cache: CPU only, a host value is free
        m = self.valid[:, None, :kv] & (self.slots[None, None, :kv] <= slot)
        m = (m | (self.slots[None, None, :kv] == slot))[:, None]
        with self._autocast():
            out = self.model(input_ids=self.cand_ids[tok][:, None], attention_mask=m,
                             position_ids=(self.plen + t)[:, None], past_key_values=self.cache,
                             cache_position=slot, use_cache=True).logits[:, -1, :]
        self.logits.copy_(out.float())
        self.t.add_(1)

    def capture(self) -> None:
        """Compile one step and capture it as a CUDA graph (state must be valid: call after `start`;
        the capture's warm-up steps change it, so `start` again before decoding)."""
        import torch._dynamo
        # one compiled step per decoder (batch shape); dims that vary between them become dynamic
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        self.graph, self.mode = capture_graph(torch.compile(self._step), self.dev), "compiled"

    def step(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()


def capture_graph(fn, device) -> "torch.cuda.CUDAGraph":
    """One call of fn captured as a CUDA graph (editor/graph_capture.py). fn changes the state it runs on."""
    return graph_capture.capture(fn, device)[0]


def batch_rows(n: int) -> int:
    """The CUDA batch for n requests: the next power of two. A server's dynamic batches come in every
    size; rounded up they share few captured steps, and a new size does not stall a request for a
    compile. The extra rows decode a copy of the first prompt for one step and are dropped."""
    return 1 << (n - 1).bit_length()


def cache_len(n: int) -> int:
    """The CUDA cache length for n positions: GRAPH_LEN, 2·GRAPH_LEN, 4·GRAPH_LEN, ... Each new
    (batch, length) compiles and captures its step once (seconds on the H200), so lengths come in few sizes."""
    L = GRAPH_LEN
    while L < n:
        L *= 2
    return L


def _take_decoder(model, vocab, B, L, cfg, layout, dev, static, guided=False) -> tuple[_Decoder, tuple | None]:
    """(a decoder of this shape that no other caller holds, its cache key). On CUDA decoders are kept
    (their captured graph is the point) and lent to one caller at a time: a decode runs many steps over
    its decoder's state, and a stream and a batch of the same shape in two threads would otherwise step
    one state together. Elsewhere a fresh one (a kept KV cache would only hold memory); key None."""
    if dev.type != "cuda":
        return _Decoder(model, vocab, B, L, cfg, layout, dev, static, guided), None
    key = (id(model), B, L, astuple(cfg), layout, static, str(dev), guided)
    with _DECODERS_LOCK:
        idle = _DECODERS.get(key)
        if idle:
            dec = idle.pop()
            if idle:
                _DECODERS.move_to_end(key)
            else:
                del _DECODERS[key]          # no empty lists: the eviction below takes from the first
            return dec, key
    return _Decoder(model, vocab, B, L, cfg, layout, dev, static, guided), key


def _return_decoder(dec: _Decoder, key: tuple | None) -> None:
    """A decoder back to the idle ones of its shape (after its last use has been read to the host), the
    least recently used dropped beyond _MAX_DECODERS."""
    if key is None:
        return
    with _DECODERS_LOCK:
        _DECODERS.setdefault(key, []).append(dec)
        _DECODERS.move_to_end(key)
        while sum(len(v) for v in _DECODERS.values()) > _MAX_DECODERS:
            oldest = next(iter(_DECODERS))
            _DECODERS[oldest].pop(0)
            if not _DECODERS[oldest]:
                del _DECODERS[oldest]


_GRAPH_FAILED: list = []     # set once capture failed in this process (warned once)


@torch.no_grad()
def generate(model, vocab: Vocab, prompts: list, max_new_tokens, seeds=None, temperature=0.7,
             cfg: SampleConfig | None = None, layout: Layout | None = None, static_cache: bool = True,
             stats: dict | None = None, cuda_graphs: bool = True, round_batch: bool | None = None,
             min_new_tokens=0, negatives: list | None = None, guidance=1.0) -> list[np.ndarray]:
    """Prompts (LLM id arrays ending in <|assistant|>) -> codec audio ids [0, 5120) per prompt.

    max_new_tokens, seeds, temperature, min_new_tokens: one value for all rows or one per row. A row
    stops at <|eos|> (stripped; not allowed before min_new_tokens) or at its limit; its output is cut
    to whole blocks (layout.block, default 5).
    `stats`, if given, gets "guard_fired" (per-row counts), "steps" and "graph_mode" ("compiled" or "eager").
    cuda_graphs: compile and capture the step (see the module doc); CUDA with the static cache only.
    round_batch: see generate_stream. negatives, guidance: a negative prompt per row (None: that row
    is not guided) and the guidance weight w (one, or one per row); see the module doc."""
    out: list[np.ndarray] = []
    for out in generate_stream(model, vocab, prompts, max_new_tokens, seeds, temperature, cfg, layout,
                               static_cache, stats, cuda_graphs, round_batch=round_batch,
                               min_new_tokens=min_new_tokens, negatives=negatives, guidance=guidance):
        pass
    return out


@torch.no_grad()
def generate_stream(model, vocab: Vocab, prompts: list, max_new_tokens, seeds=None, temperature=0.7,
                    cfg: SampleConfig | None = None, layout: Layout | None = None, static_cache: bool = True,
                    stats: dict | None = None, cuda_graphs: bool = True, every: int = 0,
                    round_batch: bool | None = None, min_new_tokens=0, negatives: list | None = None,
                    guidance=1.0):
    """generate() as it goes: every `every` decode steps (0: never) it yields each row's answer so far
    (whole blocks, cut at the row's end token); the last item yielded is generate()'s result. Sampling
    is the same, so the streamed answer is a prefix of the final one.
    round_batch: decode batch_rows(B) rows (None: when the step is a captured CUDA graph)."""
    cfg = cfg or SampleConfig()
    B = len(prompts)
    if B == 0:
        yield []
        return
    def per_row(v, name):
        if np.ndim(v) == 0:
            return [v] * B
        if len(v) != B:
            raise ValueError(f"{name}: {len(v)} values for {B} prompts")
        return list(v)
    limits = [int(n) for n in per_row(max_new_tokens, "max_new_tokens")]
    seeds = per_row(0 if seeds is None else seeds, "seeds")
    temps = per_row(temperature, "temperature")
    mins = [int(n) for n in per_row(min_new_tokens, "min_new_tokens")]
    if min(limits) < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {min(limits)}")
    weights = [float(w) for w in per_row(guidance, "guidance")]
    negatives = [None] * B if negatives is None else list(negatives)
    if len(negatives) != B:
        raise ValueError(f"negatives: {len(negatives)} prompts for {B} prompts")
    prompts = [np.asarray(p, dtype=np.int64).reshape(-1) for p in prompts]
    if min(len(p) for p in prompts) == 0:
        raise ValueError("empty prompt")
    # each guided row gets a partner row after the B requests: its negative prompt, fed the row's answer
    partner = list(range(B))
    for b, neg in enumerate(negatives):
        if neg is None or weights[b] == 1.0:
            continue
        neg = np.asarray(neg, dtype=np.int64).reshape(-1)
        if len(neg) == 0:
            raise ValueError(f"negatives[{b}]: empty prompt")
        partner[b] = len(prompts)
        partner.append(len(prompts))
        prompts.append(neg)
        limits.append(limits[b]), mins.append(mins[b]), seeds.append(seeds[b]), temps.append(temps[b])
        weights.append(1.0)
    guided = len(prompts) > B
    ctx = getattr(model.config, "max_position_embeddings", None)
    over = [i for i, (p, n) in enumerate(zip(prompts, limits)) if ctx and len(p) + n > ctx]
    if over:
        i = over[0]
        raise ValueError(f"row {i % B}: a prompt of {len(prompts[i])} tokens and up to {limits[i]} new ones exceed "
                         f"the model's context of {ctx} positions ({len(over)} such rows)")

    dev = next(model.parameters()).device
    P, T = max(len(p) for p in prompts), max(limits)
    graphs = bool(cuda_graphs) and static_cache and dev.type == "cuda" and not _GRAPH_FAILED
    L = cache_len(P + T) if dev.type == "cuda" else P + T
    if (graphs if round_batch is None else round_batch) and batch_rows(len(prompts)) > len(prompts):
        extra = batch_rows(len(prompts)) - len(prompts)
        partner += list(range(len(prompts), len(prompts) + extra))
        prompts, limits, mins = prompts + [prompts[0]] * extra, limits + [1] * extra, mins + [0] * extra
        seeds, temps, weights = seeds + [seeds[0]] * extra, temps + [temps[0]] * extra, weights + [1.0] * extra
    dec, key = _take_decoder(model, vocab, len(prompts), L, cfg, layout, dev, static_cache, guided)
    finished = False
    try:
        dec.start(prompts, limits, seeds, temps, mins, partner, weights)
        if dec.graph is None and graphs:
            try:
                dec.capture()
            except Exception as e:   # a torch or driver that cannot compile or capture this step: eager
                _GRAPH_FAILED.append(f"{type(e).__name__}: {e}")
                log.warning("decode step not captured as a CUDA graph, decoding eagerly: %s", _GRAPH_FAILED[0][:300])
                torch.cuda.synchronize()
            dec.start(prompts, limits, seeds, temps, mins, partner, weights)     # capture's warm-up steps moved the state
        block = layout.block if layout else 5
        t = 0
        for t in range(T):
            dec.step()
            if every and (t + 1) % every == 0 and t + 1 < T and not bool(dec.done.all()):
                yield _answers(dec, t + 1, block)[:B]
            if t % 8 == 7 and bool(dec.done.all()):    # a device sync: not every step
                break
        if stats is not None:
            stats.update(guard_fired=dec.fired_n[:B].tolist(), steps=t + 1, graph_mode=dec.mode or "eager")
        final = _answers(dec, T, block)[:B]      # read to the host: every queued step has run
        finished = True
    finally:
        if finished or dev.type != "cuda":
            _return_decoder(dec, key)
        elif not torch.cuda.is_current_stream_capturing():
            # stopped early (an error, or a stream its reader left): steps may still be queued on its state.
            # Kept only once they have run; not when this runs inside another graph's capture (a garbage
            # collection there may finish an abandoned stream), where waiting is not allowed: dropped then
            try:
                torch.cuda.synchronize(dev)
                _return_decoder(dec, key)
            except Exception:      # the device's own error: the caller sees the one that stopped the decode
                pass
    yield final


def _answers(dec: _Decoder, steps: int, block: int) -> list[np.ndarray]:
    """Each row's answer after `steps` decode steps: up to its end token or limit, whole blocks."""
    hist, n_out = dec.hist[:, :steps].cpu().numpy(), np.minimum(dec.n_out.cpu().numpy(), steps)
    return [hist[b, :n - n % block].astype(np.int32) for b, n in enumerate(n_out)]
