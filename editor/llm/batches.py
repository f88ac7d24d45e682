"""Fixed-shape packed batches from the mixture stream: [rows, max_len] every step.

Examples are drawn in stream order and placed best-fit (the fullest row that still takes it) into `rows`
rows of `max_len` tokens. One that fits nowhere waits for the next step, and drawing goes on until
`lookahead` examples wait: the shorter ones drawn after a miss fill the rows' ends, where stopping at the
first miss leaves them padded (every padded token is computed and learns nothing). The waiting examples
open the next step, before any new one, so with lookahead <= rows each is placed there (each fits an
empty row): no example waits twice. They are part of the stream's state. lookahead=1 is plain first-miss
packing. Fixed shapes keep torch.compile from recompiling and CUDA graphs valid."""
import numpy as np

from editor.llm import chat, packing


class Batches:
    def __init__(self, mixture, vocab, rows: int, max_len: int, lookahead: int = 1):
        if not 1 <= lookahead <= rows:
            raise ValueError(f"pipeline.train.pack_lookahead={lookahead}: must be between 1 and rows={rows} "
                             "(more could leave a waiting example out of the next step too)")
        self.mixture, self.vocab, self.rows, self.max_len = mixture, vocab, rows, max_len
        self.lookahead = lookahead
        self.pending = []            # (task, index) of the examples that did not fit the last batch, in order
        self._seq = {}               # (task, index) -> built sequence (examples are few and reused)

    def _build(self, ref):
        if ref not in self._seq:
            task, i = ref
            self._seq[ref] = chat.build_example(self.mixture.examples[task][i], self.vocab)
        return self._seq[ref]

    def next(self) -> tuple[dict, dict]:
        """(model inputs of one step, stats: examples, tokens, target tokens per task)."""
        placed = [[] for _ in range(self.rows)]
        free = [self.max_len] * self.rows
        stats = {"examples": 0, "tokens": 0, "sq_tokens": 0, "loss_tokens": 0, "tasks": {}}
        waiting, self.pending = self.pending, []
        while len(self.pending) < self.lookahead:
            ref = waiting.pop(0) if waiting else self.mixture.next_ref()
            seq = self._build(ref)
            n = len(seq["input_ids"])
            fits = [r for r in range(self.rows) if free[r] >= n]
            if not fits:
                self.pending.append(ref)
                continue
            row = min(fits, key=lambda r: free[r])   # best fit; the first such row on ties
            placed[row].append(seq)
            free[row] -= n
            stats["examples"] += 1
            stats["tokens"] += n
            stats["sq_tokens"] += n * n      # attention cost: each example attends within itself
            stats["loss_tokens"] += int((seq["labels"] != chat.IGNORE).sum())
            stats["tasks"][ref[0]] = stats["tasks"].get(ref[0], 0) + 1
        return packing.collate(placed, self.max_len, self.vocab.pad, mask=False), stats  # mask: on the device

    def state(self) -> dict:
        return {"mixture": self.mixture.state(), "pending": [list(r) for r in self.pending]}

    def load_state(self, st: dict) -> None:
        self.mixture.load_state(st["mixture"])
        pending = st["pending"] or []
        # a checkpoint of the single-waiting-example packer held one (task, index) pair, not a list of them
        if pending and not isinstance(pending[0], (list, tuple)):
            pending = [pending]
        self.pending = [tuple(r) for r in pending]


def eval_batches(examples: list[dict], vocab, rows: int, max_len: int, n_batches: int, seed: int = 0) -> list[dict]:
    """The validation examples packed once, in at most n_batches batches. When they need more rows than
    that, a random subset (fixed by `seed`) is packed: packing places the longest first, so cutting the
    packed rows would score only the longest examples."""
    seqs = [chat.build_example(e, vocab) for e in examples]
    seqs = [s for s in seqs if len(s["input_ids"]) <= max_len]
    if not seqs:
        return []
    order = np.random.default_rng(seed).permutation(len(seqs))
    lens = [len(s["input_ids"]) for s in seqs]
    fits = lambda k: len(packing.pack([lens[i] for i in order[:k]], max_len)) <= rows * n_batches
    lo, hi = 1, len(seqs)              # the longest prefix of the shuffled order that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    seqs = [seqs[i] for i in sorted(order[:lo])]
    packed = packing.pack([len(s["input_ids"]) for s in seqs], max_len)
    out = []
    for b in range(0, len(packed), rows):
        group = [[seqs[i] for i in r] for r in packed[b:b + rows]]
        group += [[] for _ in range(rows - len(group))]
        out.append(packing.collate(group, max_len, vocab.pad, mask=False))
    return out


def too_long(examples: dict[str, list[dict]], vocab, max_len: int) -> dict[str, list[dict]]:
    """Drop examples whose sequence exceeds max_len (counted, never cut: cutting loses the source
    audio or <|eos|>). Returns the kept examples per task and prints nothing: callers report."""
    kept = {}
    for task, exs in examples.items():
        kept[task] = [e for e in exs if len(chat.build_example(e, vocab)["input_ids"]) <= max_len]
    return kept


def lengths(examples: list[dict], vocab) -> np.ndarray:
    return np.array([len(chat.build_example(e, vocab)["input_ids"]) for e in examples])
