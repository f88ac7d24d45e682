"""Continuous batching: one decode of B rows that requests join and leave between steps.

generate() decodes a batch from its first step to its longest answer's last: rows that end early
idle until then (on the served data the longest answer of 64 is 1.6x the median), and a request
that arrives meanwhile waits for the next batch. Here a background thread keeps one decode running
and a request takes free rows as soon as there are any, and gives them back as soon as it ends. Its
prompt's forward (the prefill) runs in the submitting thread, beside the decode (on CUDA on a stream
of its own); the decode thread only copies the prompt's keys and values in between two steps.

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
import heapq
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch

from editor.llm import decode_attention
from editor.llm.generate import Layout, SampleConfig, _allowed, capture_graph, pick, uniform_noise
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


@dataclass
class _Prefilled:
    """The forward of prompts submitted together: per layer (keys, values) [J, heads, P, dim], the last
    logits [J, vocab], which of the P positions are real (left padding), lengths; `ready` on CUDA."""
    kv: list
    logits: torch.Tensor
    real: torch.Tensor
    plen: torch.Tensor
    ready: "torch.cuda.Event | None"


@dataclass
class _Queued:
    request: Request
    future: Future
    prefill: _Prefilled
    rows: list[int]            # its prompts' rows in the prefill (a guided request: two)


@dataclass
class _Snapshot:
    done: torch.Tensor
    n_out: torch.Tensor
    hist: torch.Tensor
    ready: "torch.cuda.Event | None"
    id: int = 0


@functools.cache
def _ring_layer():
    """transformers' static cache layer, writing each step's token at the ring slot instead of after
    the tokens it has seen (the class is made on first use: transformers is imported late)."""
    from transformers.cache_utils import StaticLayer

    class RingLayer(StaticLayer):
        slot: torch.Tensor

        def update(self, key_states, value_states, *args, **kwargs):
            n = key_states.shape[0]           # a step over the first n rows (ContinuousDecoder.sizes)
            keys, values = self.keys[:n], self.values[:n]
            keys.index_copy_(2, self.slot, key_states)
            values.index_copy_(2, self.slot, value_states)
            return keys, values
    return RingLayer


class ContinuousDecoder:
    """B decode rows over a ring cache of L slots, driven by one thread (see the module doc).

    `submit` queues a request and returns a Future of its answer (codec ids, cut to whole blocks, as
    generate() returns it); `close` stops the thread (queued requests fail).

    A step runs over the first n rows only, n the smallest of `sizes` (8, 16, ... B) that holds every
    busy row, and requests take the lowest free rows: a lone request costs a step of 8 rows, not of B.
    With `cuda_graphs` on CUDA each size's step is compiled and captured once, when the decoder is made
    (a few seconds each), so that no request ever waits for a compile."""

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
        self.tb, self.n_out, self.lim, self.min_out = z(B), z(B), z(B), z(B)
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
        self.sizes = sorted({min(B, 8 << k) for k in range(max(1, B.bit_length()))} | {B})
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.mode = "eager"
        self.free = list(range(B))                  # a heap: the lowest rows first
        # leader row -> (its future, its rows, the snapshots taken before it joined)
        self.busy: dict[int, tuple[Future, list[int], int]] = {}
        self.pending: list[_Queued] = []
        self.snapshots = 0
        pin = dev.type == "cuda"
        self._snaps = [_Snapshot(torch.zeros(B, dtype=torch.bool, pin_memory=pin), torch.zeros(B, dtype=torch.long, pin_memory=pin),
                                 torch.zeros(B, L + 1, dtype=torch.long, pin_memory=pin),
                                 torch.cuda.Event() if pin else None) for _ in range(2)]
        self.error: BaseException | None = None
        self._prefill_streams = threading.local()   # CUDA: one stream per submitting thread, made once
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
    def _step(self, n: int) -> None:
        """The first n rows' next tokens from self.logits, then their forward at the ring slot. Tensor
        ops only (on views of the first n rows); rows that are done (or free) run along and change
        nothing that is read back."""
        v, tb, done, logits = self.vocab, self.tb[:n], self.done[:n], self.logits[:n]
        hist, valid, n_out = self.hist[:n], self.valid[:n], self.n_out[:n]
        active = ~done
        cand = torch.cat([logits[:, v.audio_offset:v.special_offset], logits[:, v.eos:v.eos + 1]], -1)
        cand = cand.masked_fill(~self.allowed.index_select(0, tb % self.allowed.shape[0]), float("-inf"))
        cand[:, AUDIO_SIZE] = torch.where(tb < self.min_out[:n], float("-inf"), cand[:, AUDIO_SIZE])
        ls = torch.log_softmax(cand, -1)
        neg = ls.index_select(0, self.partner[:n])
        g = (neg + self.weight[:n, None] * (ls - neg)).masked_fill(~torch.isfinite(ls), float("-inf"))
        cand = torch.where(self.guided_row[:n, None], g, cand)
        noise = torch.stack([uniform_noise(self.seeds[:n], (2 * tb + k)[:, None], AUDIO_SIZE + 1) for k in range(2)])
        tok, _ = pick(cand, hist, tb, self.temps[:n], self.cfg, noise)
        tok = tok.index_select(0, self.leader[:n])
        hist.scatter_(1, tb[:, None], tok[:, None])
        eos = tok == AUDIO_SIZE
        n_out.copy_(torch.where(active & eos, tb, n_out))
        done.logical_or_(eos | (tb + 1 >= self.lim[:n]))
        valid.index_copy_(1, self.slot, active[:, None])     # the slot's older token is no row's now
        m = (valid | (self.slots == self.slot))[:, None, None, :]   # a free row attends to its own slot
        with self._autocast():
            out = self.model(input_ids=self.cand_ids[tok][:, None], attention_mask=m,
                             position_ids=(self.plen[:n] + tb)[:, None], past_key_values=self.cache,
                             cache_position=self.slot, use_cache=True).logits[:, -1, :]
        logits.copy_(out.float())
        tb.add_(active.long())
        self.slot.copy_((self.slot + 1) % self.L)

    @torch.no_grad()
    def _capture(self) -> None:
        """Compile each size's step and capture it as a CUDA graph, on rows that hold nothing; then every
        row free again and the ring at slot 0."""
        import torch._dynamo
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        try:
            for n in self.sizes:
                # one compiled step per size, each with its shapes fixed (dynamic=False: no shape-generic
                # kernels, which would be slower and could not be captured as they are)
                self.graphs[n] = capture_graph(torch.compile(functools.partial(self._step, n), dynamic=False), self.dev)
            self.mode = "compiled"
        except Exception as e:      # a torch or driver that cannot compile or capture this step: eager
            log.warning("continuous decode step not captured as a CUDA graph, decoding eagerly: %s", str(e)[:300])
            self.graphs.clear()
            torch.cuda.synchronize()
        self.done.fill_(True), self.valid.zero_(), self.slot.zero_(), self.tb.zero_()
        self.g = 0

    def _steps(self) -> int:
        """`every` steps over the fewest rows that hold every busy one; that row count."""
        top = max(max(rows) for _, rows, _ in self.busy.values()) + 1
        n = next(k for k in self.sizes if k >= top)
        for _ in range(self.every):
            self._one_step(n)
        return n

    def _one_step(self, n: int) -> None:
        if n in self.graphs:
            self.graphs[n].replay()
        else:
            self._step(n)
        self.g += 1
        self.steps += 1

    # ---- joining and leaving (host, between steps) -----------------------------------------------
    def fits(self, r: Request) -> bool:
        """Whether the request's rows fit the ring: prompt and answer limit in L slots."""
        return max(len(p) for p in r.prompts()) + r.max_new <= self.L and len(r.prompts()) <= self.B

    @torch.no_grad()
    def _prefill(self, prompts: list[np.ndarray]) -> "_Prefilled":
        """The prompts' forward, left-padded to one length, in the caller's thread (on CUDA on a stream
        of its own, beside the running decode): the decode thread then only copies keys and values."""
        J, P, dev = len(prompts), max(len(p) for p in prompts), self.dev
        ids = torch.full((J, P), self.vocab.pad, dtype=torch.long)
        real = torch.zeros(J, P, dtype=torch.bool)
        for j, p in enumerate(prompts):
            ids[j, P - len(p):] = torch.from_numpy(np.asarray(p, np.int64))
            real[j, P - len(p):] = True
        from transformers import DynamicCache
        stream = getattr(self._prefill_streams, "stream", None)
        if stream is None and dev.type == "cuda":
            # made once per thread, not per call (every new torch.cuda.Stream is the next of torch's small
            # pool). It may still be the codec's stream, which only queues one behind the other; captures
            # use a pool of their own (editor/graph_capture.py)
            stream = self._prefill_streams.stream = torch.cuda.Stream(dev)
        with torch.cuda.stream(stream):       # None (CPU): no stream
            ids, real = ids.to(dev), real.to(dev)
            plen = real.sum(1)
            pos = (torch.arange(P, device=dev)[None, :] - (P - plen)[:, None]).clamp_min(0)
            q = torch.arange(P, device=dev)
            m = (real[:, None, :] & (q[None, None, :] <= q[None, :, None])) | (q[None, None, :] == q[None, :, None])
            tmp = DynamicCache(config=self.model.config)
            with self._autocast():
                out = self.model(input_ids=ids, attention_mask=m[:, None], position_ids=pos, past_key_values=tmp,
                                 use_cache=True, logits_to_keep=1)
            kv = [(layer.keys, layer.values) for layer in tmp.layers]
            logits = out.logits[:, -1, :].float()
            ready = torch.cuda.Event() if stream is not None else None
            if ready is not None:
                ready.record(stream)
        return _Prefilled(kv, logits, real, plen, ready)

    @torch.no_grad()
    def _join(self, batch: list["_Queued"]) -> None:
        """Queued requests into free rows: their prefilled keys and values written to the ring slots just
        before the next step's, and their per-row arguments set."""
        rows, leaders, groups = [], [], {}
        for q in batch:
            mine = [heapq.heappop(self.free) for _ in q.request.prompts()]
            rows += mine
            leaders.append(mine)
            self.busy[mine[0]] = (q.future, mine, self.snapshots)
            group = groups.setdefault(id(q.prefill), (q.prefill, [], []))   # submitted together: one prefill
            group[1].extend(mine), group[2].extend(q.rows)
        dev = self.dev
        for pre, mine, js in groups.values():
            at, jt = torch.tensor(mine, device=dev), torch.tensor(js, device=dev)
            if pre.ready is not None:
                torch.cuda.current_stream().wait_event(pre.ready)
            P = pre.real.shape[1]
            slots = (self.g - P + torch.arange(P, device=dev)) % self.L
            for ring, (keys, values) in zip(self.cache.layers, pre.kv):
                for mine, theirs in ((ring.keys, keys), (ring.values, values)):
                    mine.transpose(1, 2)[at[:, None], slots[None, :]] = theirs.index_select(0, jt).transpose(1, 2).to(mine.dtype)
            self.valid[at] = False
            self.valid[at[:, None], slots[None, :]] = pre.real.index_select(0, jt)
            self.logits.index_copy_(0, at, pre.logits.index_select(0, jt))
            self.plen.index_copy_(0, at, pre.plen.index_select(0, jt))
            if dev.type == "cuda":            # made on the prefill's stream, read on this one
                for t in (*[x for kv in pre.kv for x in kv], pre.real, pre.logits, pre.plen):
                    t.record_stream(torch.cuda.current_stream())
        # per-row arguments, each prompt's row in `rows` order (a guided request: its row, then its partner's)
        lim, mins, seeds, temps, weight, partner, leader = [], [], [], [], [], [], []
        for q, mine in zip(batch, leaders):
            r = q.request
            for k, row in enumerate(mine):
                lim.append(r.max_new), mins.append(r.min_new), seeds.append(int(r.seed)), temps.append(r.temperature)
                weight.append(float(r.guidance) if k == 0 and len(mine) == 2 else 1.0)
                partner.append(mine[1] if k == 0 and len(mine) == 2 else row)
                leader.append(mine[0])
        at = torch.tensor(rows, device=dev)
        put = lambda t, vals, dtype=torch.long: t.index_copy_(0, at, torch.tensor(vals, dtype=dtype, device=dev))
        put(self.lim, lim), put(self.n_out, lim), put(self.min_out, mins), put(self.seeds, seeds)
        put(self.temps, temps, torch.float32), put(self.weight, weight, torch.float32)
        put(self.partner, partner), put(self.leader, leader)
        self.guided_row.index_copy_(0, at, torch.tensor([p != r for p, r in zip(partner, rows)], device=dev))
        self.tb.index_fill_(0, at, 0), self.hist.index_fill_(0, at, 0)
        self.done.index_fill_(0, at, False)

    def _snapshot(self, n: int) -> "_Snapshot":
        """What the harvest reads (every row's done flag and answer length, the answers of the first n
        rows, which hold every busy one), copied to the host behind the steps just queued, so that the
        GPU runs the next steps while the host reads these."""
        buf = self._snaps[self.snapshots % 2]
        self.snapshots += 1
        buf.done.copy_(self.done, non_blocking=True)
        buf.n_out.copy_(self.n_out, non_blocking=True)
        buf.hist[:n].copy_(self.hist[:n], non_blocking=True)
        if buf.ready is not None:
            buf.ready.record()
        buf.id = self.snapshots
        return buf

    def _harvest(self, snap: "_Snapshot") -> None:
        """Requests the snapshot shows finished (joined before it was taken) to their futures; their rows
        free again, each its own partner and leader (a step over them then reads no other row)."""
        if snap.ready is not None:
            snap.ready.synchronize()
        done = snap.done.numpy()
        ended = [row for row, (_, _, joined) in self.busy.items() if joined < snap.id and done[row]]
        if not ended:
            return
        freed = []
        for row in ended:
            fut, mine, _ = self.busy.pop(row)
            n = int(snap.n_out[row])
            answer = snap.hist[row, :n - n % self.block].numpy().astype(np.int32)
            freed += mine
            fut.set_result(answer)
        for k in freed:
            heapq.heappush(self.free, k)
        at = torch.tensor(freed, device=self.dev)
        self.partner.index_copy_(0, at, at), self.leader.index_copy_(0, at, at)
        self.guided_row.index_fill_(0, at, False)

    # ---- the thread ------------------------------------------------------------------------------
    def submit(self, r: Request) -> Future:
        return self.submit_many([r])[0]

    def submit_many(self, reqs: list[Request]) -> list[Future]:
        """Queue requests together (they join in one prefill when rows allow); all are checked first."""
        for r in reqs:
            if r.max_new < 1:
                raise ValueError(f"max_new must be >= 1, got {r.max_new}")
            if not self.fits(r):
                raise ValueError(f"request of {max(len(p) for p in r.prompts())} prompt tokens and {r.max_new} new "
                                 f"ones does not fit the decoder's {self.L} cache slots")
        if self.error is not None or self._closed:
            raise RuntimeError(f"continuous decoder stopped: {self.error!r}")
        if not reqs:
            return []
        pre = self._prefill([p for r in reqs for p in r.prompts()])
        queued, j = [], 0
        for r in reqs:
            k = len(r.prompts())
            queued.append(_Queued(r, Future(), pre, list(range(j, j + k))))
            j += k
        with self._cv:
            if self.error is not None or self._closed:
                raise RuntimeError(f"continuous decoder stopped: {self.error!r}")
            self.pending += queued
            self._cv.notify()
        return [q.future for q in queued]

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()

    def _take(self) -> list:
        """Queued requests that the free rows hold, first come first served."""
        take, free = [], len(self.free)
        while self.pending and len(self.pending[0].request.prompts()) <= free:
            free -= len(self.pending[0].request.prompts())
            take.append(self.pending.pop(0))
        return take

    @torch.no_grad()
    def _loop(self) -> None:
        prev = None
        try:
            while True:
                with self._cv:
                    while not (self.pending or self.busy or self._closed):
                        self._cv.wait()
                    if self._closed:
                        break
                    take = self._take()
                if take:
                    self._join(take)
                snap = None
                if self.busy:
                    snap = self._snapshot(self._steps())
                # the snapshot before this one: its copy is done, while the GPU runs the steps just queued
                if prev is not None:
                    self._harvest(prev)
                prev = snap
        except BaseException as e:        # every waiting caller gets the error, none hangs
            log.exception("continuous decoder failed")
            self.error = e
        with self._cv:
            failed = [f for f, _, _ in self.busy.values()] + [q.future for q in self.pending]
            self.busy.clear(), self.pending.clear()
        for f in failed:
            f.set_exception(self.error or RuntimeError("continuous decoder closed"))
