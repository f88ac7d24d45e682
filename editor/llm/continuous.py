"""Continuous batching: one decode of B rows that requests join and leave between steps.

generate() decodes a batch from its first step to its longest answer's last: rows that end early
idle until then (on the served data the longest answer of 64 is 1.6x the median), and a request
that arrives meanwhile waits for the next batch. Here a background thread keeps one decode running
and a request takes free rows as soon as there are any: its prompt's forward (the prefill) runs
between two steps, and its rows are given back as soon as it ends.

The KV cache is a ring of L slots per row. Step g writes every row's token to slot g mod L; a
request that joins before step g has its prompt written (left-padded) to the slots just before it,
so every row's next token goes to the same slot and one [B, 1] forward serves all rows, which is
what lets the step be one captured CUDA graph. Attention needs no order among slots (a key carries
its position in its rotary phase, and each row's mask says which slots are its own), so the ring
may wrap; a request whose prompt and answer limit do not fit L slots is refused (`fits`).

Sampling is generate()'s, per row (editor/llm/generate.py): each row counts its own steps for its
noise, its grammar position and its limits, so a request gets the answer generate() gives it alone
(up to float rounding), whatever joins or leaves beside it. A guided request takes two rows, its
own and its negative prompt's, which join and end together.
"""
import functools
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch

from editor.llm import decode_attention
from editor.llm.generate import Layout, SampleConfig, _allowed, pick, uniform_noise
from editor.llm.vocab import AUDIO_SIZE, Vocab

log = logging.getLogger(__name__)


@dataclass
class Request:
    """One answer to decode: the prompt (LLM ids ending in <|assistant|>) and generate()'s per-row
    arguments; negative, guidance: the guidance pair (None or 1.0: not guided)."""
    prompt: np.ndarray
    max_new: int
    seed: int = 0
    temperature: float = 0.7
    min_new: int = 0
    negative: np.ndarray | None = None
    guidance: float = 1.0

    def prompts(self) -> list[np.ndarray]:
        guided = self.negative is not None and self.guidance != 1.0
        return [self.prompt, self.negative] if guided else [self.prompt]


@functools.cache
def _ring_layer():
    """transformers' static cache layer, writing each step's token at the ring slot instead of after
    the tokens it has seen (the class is made on first use: transformers is imported late)."""
    from transformers.cache_utils import StaticLayer

    class RingLayer(StaticLayer):
        slot: torch.Tensor

        def update(self, key_states, value_states, *args, **kwargs):
            self.keys.index_copy_(2, self.slot, key_states)
            self.values.index_copy_(2, self.slot, value_states)
            return self.keys, self.values
    return RingLayer


class ContinuousDecoder:
    """B decode rows over a ring cache of L slots, driven by one thread (see the module doc).

    `submit` queues a request and returns a Future of its answer (codec ids, cut to whole blocks, as
    generate() returns it); `close` stops the thread (queued requests fail). With `cuda_graphs` on
    CUDA the step is compiled and captured once, when the decoder is made."""

    def __init__(self, model, vocab: Vocab, rows: int, cache_len: int, cfg: SampleConfig | None = None,
                 layout: Layout | None = None, cuda_graphs: bool = True, steps_per_check: int = 8):
        self.model, self.vocab, self.cfg = model, vocab, cfg or SampleConfig()
        self.B, self.L, self.every = rows, cache_len, steps_per_check
        self.block = layout.block if layout else 5
        self.dev = dev = next(model.parameters()).device
        decode_attention.use(model)
        z = lambda *shape, dtype=torch.long: torch.zeros(*shape, dtype=dtype, device=dev)
        B, L = rows, cache_len
        self.logits = z(B, vocab.size, dtype=torch.float32)
        self.hist = z(B, L + 1)                     # a row's answer: at most L tokens, then one slot to spare
        self.valid = z(B, L, dtype=torch.bool)      # which ring slots hold a row's own tokens
        self.done = torch.ones(B, dtype=torch.bool, device=dev)     # free rows are done
        self.tb, self.n_out, self.lim, self.min_out, self.fired_n = z(B), z(B), z(B), z(B), z(B)
        self.temps, self.seeds, self.plen = z(B, dtype=torch.float32), z(B), z(B)
        rows_ = torch.arange(B, device=dev)
        self.partner, self.leader = rows_.clone(), rows_.clone()
        self.weight, self.guided_row = torch.ones(B, device=dev), z(B, dtype=torch.bool)
        self.slot = z(1)                            # the ring slot of the next step's token (device)
        self.g = 0                                  # steps taken (host): the slot is g mod L
        self.slots = torch.arange(L, device=dev)
        self.allowed = _allowed(layout, dev)
        if self.cfg.ignore_eos:
            self.allowed[:, AUDIO_SIZE] = False
        self.cand_ids = torch.cat([torch.arange(AUDIO_SIZE, device=dev) + vocab.audio_offset,
                                   torch.tensor([vocab.eos], device=dev)])
        self.cache = self._ring_cache()
        self.graph, self.mode = None, "eager"
        self.free = list(range(B))
        self.busy: dict[int, tuple[Future, list[int]]] = {}     # leader row -> (its future, its rows)
        self.pending: list[tuple[Request, Future]] = []
        self.error: BaseException | None = None
        self.steps = 0
        self._cv = threading.Condition()
        self._closed = False
        if cuda_graphs and dev.type == "cuda":
            self._capture()
        self._thread = threading.Thread(target=self._loop, name="continuous-decode", daemon=True)
        self._thread.start()

    # ---- the cache -------------------------------------------------------------------------------
    def _ring_cache(self):
        from transformers import StaticCache
        cache = StaticCache(config=self.model.config, max_cache_len=self.L)
        c = self.model.config
        kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        dtype = next(self.model.parameters()).dtype
        for layer in cache.layers:
            layer.__class__ = _ring_layer()
            layer.slot = self.slot
            layer.keys = torch.zeros(self.B, kv_heads, self.L, head_dim, dtype=dtype, device=self.dev)
            layer.values = torch.zeros_like(layer.keys)
            layer.is_initialized = True
            torch._dynamo.mark_static_address(layer.keys)
            torch._dynamo.mark_static_address(layer.values)
        return cache

    def _autocast(self):
        return torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.dev.type == "cuda", cache_enabled=False)

    # ---- the step (captured) ---------------------------------------------------------------------
    def _step(self) -> None:
        """Every row's next token from self.logits, then its forward at the ring slot. Tensor ops only;
        rows that are done (or free) run along and change nothing that is read back."""
        v, tb, active = self.vocab, self.tb, ~self.done
        cand = torch.cat([self.logits[:, v.audio_offset:v.special_offset], self.logits[:, v.eos:v.eos + 1]], -1)
        cand = cand.masked_fill(~self.allowed.index_select(0, tb % self.allowed.shape[0]), float("-inf"))
        cand[:, AUDIO_SIZE] = torch.where(tb < self.min_out, float("-inf"), cand[:, AUDIO_SIZE])
        ls = torch.log_softmax(cand, -1)
        neg = ls.index_select(0, self.partner)
        g = (neg + self.weight[:, None] * (ls - neg)).masked_fill(~torch.isfinite(ls), float("-inf"))
        cand = torch.where(self.guided_row[:, None], g, cand)
        noise = torch.stack([uniform_noise(self.seeds, (2 * tb + k)[:, None], AUDIO_SIZE + 1) for k in range(2)])
        tok, fired = pick(cand, self.hist, tb, self.temps, self.cfg, noise)
        tok = tok.index_select(0, self.leader)
        self.fired_n.add_((fired & active).long())
        self.hist.scatter_(1, tb[:, None], tok[:, None])
        eos = tok == AUDIO_SIZE
        self.n_out.copy_(torch.where(active & eos, tb, self.n_out))
        self.done.logical_or_(eos | (tb + 1 >= self.lim))
        self.valid.index_copy_(1, self.slot, active[:, None])     # the slot's older token is no row's now
        m = (self.valid | (self.slots == self.slot))[:, None, None, :]   # a free row attends to its own slot
        with self._autocast():
            out = self.model(input_ids=self.cand_ids[tok][:, None], attention_mask=m,
                             position_ids=(self.plen + tb)[:, None], past_key_values=self.cache,
                             cache_position=self.slot, use_cache=True).logits[:, -1, :]
        self.logits.copy_(out.float())
        self.tb.add_(active.long())
        self.slot.copy_((self.slot + 1) % self.L)

    def _capture(self) -> None:
        """Compile the step and capture it as a CUDA graph, on rows that hold nothing; then every row
        free again and the ring at slot 0."""
        import torch._dynamo
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        fn = torch.compile(self._step)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    fn()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                fn()
            self.graph, self.mode = graph, "compiled"
        except Exception as e:      # a torch or driver that cannot compile or capture this step: eager
            log.warning("continuous decode step not captured as a CUDA graph, decoding eagerly: %s", str(e)[:300])
            torch.cuda.synchronize()
        self.done.fill_(True), self.valid.zero_(), self.slot.zero_(), self.tb.zero_()
        self.g = 0

    def _steps(self) -> None:
        for _ in range(self.every):
            self._one_step()

    def _one_step(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()
        self.g += 1
        self.steps += 1

    # ---- joining and leaving (host, between steps) -----------------------------------------------
    def fits(self, r: Request) -> bool:
        """Whether the request's rows fit the ring: prompt and answer limit in L slots."""
        return max(len(p) for p in r.prompts()) + r.max_new <= self.L and len(r.prompts()) <= self.B

    @torch.no_grad()
    def _join(self, batch: list[tuple[Request, Future]]) -> None:
        """The requests' prompts run through the model at once and are written to free rows."""
        prompts, rows, leaders = [], [], []
        for r, fut in batch:
            mine = [self.free.pop() for _ in r.prompts()]
            prompts += r.prompts()
            rows += mine
            leaders.append(mine)
            self.busy[mine[0]] = (fut, mine)
        J, P, dev = len(prompts), max(len(p) for p in prompts), self.dev
        ids = torch.full((J, P), self.vocab.pad, dtype=torch.long)
        real = torch.zeros(J, P, dtype=torch.bool)
        for j, p in enumerate(prompts):
            ids[j, P - len(p):] = torch.from_numpy(np.asarray(p, np.int64))
            real[j, P - len(p):] = True
        ids, real = ids.to(dev), real.to(dev)
        plen = real.sum(1)
        pos = (torch.arange(P, device=dev)[None, :] - (P - plen)[:, None]).clamp_min(0)
        q = torch.arange(P, device=dev)
        m = (real[:, None, :] & (q[None, None, :] <= q[None, :, None])) | (q[None, None, :] == q[None, :, None])
        from transformers import DynamicCache
        tmp = DynamicCache(config=self.model.config)
        with self._autocast():
            out = self.model(input_ids=ids, attention_mask=m[:, None], position_ids=pos, past_key_values=tmp,
                             use_cache=True, logits_to_keep=1)
        at = torch.tensor(rows, device=dev)
        slots = (self.g - P + torch.arange(P, device=dev)) % self.L
        for ring, new in zip(self.cache.layers, tmp.layers):
            for mine, theirs in ((ring.keys, new.keys), (ring.values, new.values)):
                mine.transpose(1, 2)[at[:, None], slots[None, :]] = theirs.transpose(1, 2).to(mine.dtype)
        self.valid[at] = False
        self.valid[at[:, None], slots[None, :]] = real
        self.logits.index_copy_(0, at, out.logits[:, -1, :].float())
        # per-row arguments, each prompt's row in `rows` order (a guided request: its row, then its partner's)
        lim, mins, seeds, temps, weight, partner, leader = [], [], [], [], [], [], []
        for (r, _), mine in zip(batch, leaders):
            for k, row in enumerate(mine):
                lim.append(r.max_new), mins.append(r.min_new), seeds.append(int(r.seed)), temps.append(r.temperature)
                weight.append(float(r.guidance) if k == 0 and len(mine) == 2 else 1.0)
                partner.append(mine[1] if k == 0 and len(mine) == 2 else row)
                leader.append(mine[0])
        put = lambda t, vals, dtype=torch.long: t.index_copy_(0, at, torch.tensor(vals, dtype=dtype, device=dev))
        put(self.lim, lim), put(self.n_out, lim), put(self.min_out, mins), put(self.seeds, seeds)
        put(self.temps, temps, torch.float32), put(self.weight, weight, torch.float32)
        put(self.partner, partner), put(self.leader, leader), put(self.plen, plen.tolist())
        self.guided_row.index_copy_(0, at, torch.tensor([p != r for p, r in zip(partner, rows)], device=dev))
        self.tb.index_fill_(0, at, 0), self.fired_n.index_fill_(0, at, 0), self.hist.index_fill_(0, at, 0)
        self.done.index_fill_(0, at, False)

    def _harvest(self) -> None:
        """Finished requests' answers to their futures; their rows free again."""
        done = self.done.cpu().numpy()
        ended = [row for row in self.busy if done[row]]
        if not ended:
            return
        at = torch.tensor(ended, device=self.dev)
        n_out, hist = self.n_out[at].cpu().numpy(), self.hist[at].cpu().numpy()
        for row, n, h in zip(ended, n_out, hist):
            fut, mine = self.busy.pop(row)
            self.free += mine
            fut.set_result(h[:n - n % self.block].astype(np.int32))

    # ---- the thread ------------------------------------------------------------------------------
    def submit(self, r: Request) -> Future:
        if not self.fits(r):
            raise ValueError(f"request of {max(len(p) for p in r.prompts())} prompt tokens and {r.max_new} new "
                             f"ones does not fit the decoder's {self.L} cache slots")
        if r.max_new < 1:
            raise ValueError(f"max_new must be >= 1, got {r.max_new}")
        fut = Future()
        with self._cv:
            if self.error is not None or self._closed:
                raise RuntimeError(f"continuous decoder stopped: {self.error!r}")
            self.pending.append((r, fut))
            self._cv.notify()
        return fut

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()

    def _take(self) -> list:
        """Queued requests that the free rows hold, first come first served."""
        take, free = [], len(self.free)
        while self.pending and len(self.pending[0][0].prompts()) <= free:
            free -= len(self.pending[0][0].prompts())
            take.append(self.pending.pop(0))
        return take

    @torch.no_grad()
    def _loop(self) -> None:
        try:
            while True:
                with self._cv:
                    while not (self.pending or self.busy or self._closed):
                        self._cv.wait()
                    if self._closed:
                        break
                    take = self._take()
                # steps first when rows are decoding: the host builds the joiners' prefill while the GPU
                # runs those steps, and the harvest's read waits for both
                stepped = bool(self.busy)
                if stepped:
                    self._steps()
                if take:
                    self._join(take)
                if not stepped:
                    self._steps()
                self._harvest()
        except BaseException as e:        # every waiting caller gets the error, none hangs
            log.exception("continuous decoder failed")
            self.error = e
        with self._cv:
            failed = [f for f, _ in self.busy.values()] + [f for _, f in self.pending]
            self.busy.clear(), self.pending.clear()
        for f in failed:
            f.set_exception(self.error or RuntimeError("continuous decoder closed"))
