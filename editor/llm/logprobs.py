"""Per-sequence log-probabilities of the assistant's answer, for the preference trainers.

A batch holds one chat example per row, right-padded (`pad_rows`). log p(answer | prompt) is the sum
over the labelled positions only (the assistant's audio tokens and <|eos|>, chat.build_example): the
prompt and the padding add nothing, so the value of a sequence does not depend on its row's padding
or on the batch it is in. (Averaging over all positions, or over the masked ones, would make a long
prompt or a long padded row change a DPO margin.)"""
import numpy as np
import torch
import torch.nn.functional as F

from editor.llm.chat import IGNORE


def pad_rows(examples: list[dict], pad_id: int, max_len: int | None = None) -> dict:
    """chat.build_example outputs -> int64 input_ids, labels, position_ids and a 2-D attention_mask
    [B, L], right-padded to the longest row (or max_len)."""
    if not examples:
        raise ValueError("pad_rows: no examples")
    L = max(len(e["input_ids"]) for e in examples) if max_len is None else int(max_len)
    B = len(examples)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    labels = torch.full((B, L), IGNORE, dtype=torch.long)
    att = torch.zeros((B, L), dtype=torch.long)
    for b, e in enumerate(examples):
        x, y = np.asarray(e["input_ids"]), np.asarray(e["labels"])
        n = len(x)
        if n > L:
            raise ValueError(f"row {b}: {n} tokens > max_len={L}")
        if len(y) != n:
            raise ValueError(f"row {b}: labels and input_ids differ in length")
        ids[b, :n] = torch.from_numpy(x.astype(np.int64))
        labels[b, :n] = torch.from_numpy(y.astype(np.int64))
        att[b, :n] = 1
    pos = torch.arange(L).expand(B, L).clone()
    return {"input_ids": ids, "labels": labels, "attention_mask": att, "position_ids": pos}


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of each next label [B, L-1] in fp32, mask [B, L-1] of the labelled positions).
    Masked positions hold 0, whatever their logits."""
    tgt = labels[:, 1:]
    mask = tgt != IGNORE
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def answer_logprobs(model, batch: dict) -> torch.Tensor:
    """[B] sum of log p(answer token) over each row's labelled positions."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], use_cache=False).logits
    lp, _ = token_logprobs(logits, batch["labels"])
    return lp.sum(-1)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float) -> torch.Tensor:
    """[B] DPO's loss -log sigmoid(beta * ((pc - rc) - (pr - rr))) over summed answer log-probs."""
    return -F.logsigmoid(beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)))
