"""Sequence packing: several examples in one row, each attending only to itself.

A row holds examples back to back; position_ids restart at 0 for each, and the attention mask is
block-diagonal causal (a 4-D boolean mask, True = may attend, which SDPA takes on CPU and GPU and
transformers passes through unchanged). Loss cannot cross an example boundary either: every
example's first label is -100 (chat.py), so the last token of one example predicts nothing.
Padding at the row's end is one more causal block with labels -100 (a block of its own, so no
query row is fully masked, which would make SDPA return NaN).

With flash-attn, transformers can instead read example boundaries from position_ids alone
(collate(..., mask=False)): no L x L mask in memory.

An example longer than the row is an error, not truncated: cutting the answer drops <|eos|> (the
model would learn never to stop) and cutting the prompt drops the source audio it must copy.
Filter or raise max_len before packing.
"""
import numpy as np
import torch

from editor.llm.chat import IGNORE


def pack(lengths, max_len: int) -> list[list[int]]:
    """Greedy first-fit over lengths in decreasing order -> rows of example indices."""
    lengths = [int(n) for n in lengths]
    too_long = [(i, n) for i, n in enumerate(lengths) if n > max_len]
    if too_long:
        i, n = too_long[0]
        raise ValueError(f"example {i} has {n} tokens > max_len={max_len} ({len(too_long)} such examples); "
                         "filter them or raise max_len (truncation would cut the source audio or <|eos|>)")
    rows, free = [], []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):  # index breaks ties: deterministic
        r = next((r for r, f in enumerate(free) if f >= lengths[i]), None)
        if r is None:
            rows.append([]), free.append(max_len)
            r = len(rows) - 1
        rows[r].append(i)
        free[r] -= lengths[i]
    return rows


def block_causal_mask(segments: torch.Tensor) -> torch.Tensor:
    """[B, L] segment ids -> [B, 1, L, L] bool: same segment and not in the future."""
    L = segments.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=segments.device).tril()
    same = segments[:, :, None] == segments[:, None, :]
    return (same & causal)[:, None]


def collate(rows: list[list[dict]], max_len: int, pad_id: int, mask: bool = True) -> dict:
    """Rows of examples ({"input_ids", "labels"} from chat.build_example) -> model inputs.

    Returns int64 input_ids, labels, position_ids [B, max_len] and, with mask=True, a bool
    attention_mask [B, 1, max_len, max_len]."""
    B = len(rows)
    ids = torch.full((B, max_len), pad_id, dtype=torch.long)
    labels = torch.full((B, max_len), IGNORE, dtype=torch.long)
    pos = torch.zeros((B, max_len), dtype=torch.long)
    seg = torch.full((B, max_len), -1, dtype=torch.long)
    for b, row in enumerate(rows):
        at = 0
        for s, ex in enumerate(row):
            x, y = np.asarray(ex["input_ids"]), np.asarray(ex["labels"])
            n = len(x)
            if at + n > max_len:
                raise ValueError(f"row {b}: examples total {at + n} tokens > max_len={max_len}")
            if len(y) != n or (n and y[0] != IGNORE):
                raise ValueError(f"row {b} example {s}: labels must match input_ids and start with {IGNORE}")
            ids[b, at:at + n] = torch.from_numpy(x.astype(np.int64))
            labels[b, at:at + n] = torch.from_numpy(y.astype(np.int64))
            pos[b, at:at + n] = torch.arange(n)
            seg[b, at:at + n] = s
            at += n
        pos[b, at:] = torch.arange(max_len - at)  # the padding block counts from 0 as well
    out = {"input_ids": ids, "labels": labels, "position_ids": pos}
    if mask:
        out["attention_mask"] = block_causal_mask(seg)
    return out
