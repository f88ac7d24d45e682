"""SDPA attention that reads a grouped-query KV cache once per decode step.

With grouped-query attention (fewer key/value heads than query heads) and an explicit mask,
transformers' SDPA path repeats every key/value head over its query heads before the kernel
(`repeat_kv`) whenever the step is compiled: at each layer of each decoded token the whole static
cache is copied twice. In our captured decode step at batch 64 those copies took half of the step's
GPU time, twice the attention itself (bench/results/serving/analysis_once/decode_step_profile.txt).

A decode step has one query token, so the query heads that share a key/value head can stand in for
that head's query positions instead: (B, H, 1, D) -> (B, H_kv, H/H_kv, D), one SDPA call over the
cache as stored, and the result reshaped back. The mask (one row per sequence, shared by the heads)
broadcasts over those positions. Same math as SDPA; every other call (prefill, training, no GQA) is
transformers' own SDPA.

Packed, a step has batch x key/value heads blocks of work, each reading the whole cache in turn; the
per-head copy instead hands cuDNN a shape it splits along the cache. With few rows the split wins,
with many rows the copy costs more than anything it buys. A step of the shipped LLM, packed on an H100
against copied on the same H100 (batch 1, 512 slots) or on the H200 of an earlier run (the rest):
batch 1, 512 slots 0.36 against 0.34 ms; batch 1, 4096 slots 0.79 against 0.40 ms; batch 64, 512
slots 0.46 against 0.76 ms; batch 64, 4096 slots 0.86 against 3.2 ms (bench/results/serving/
decode_attention/, analysis_once/). So steps of at least PACK_MIN_BLOCKS blocks are packed; smaller
ones are left to transformers.
"""
import torch

NAME = "editor_decode_sdpa"
PACK_MIN_BLOCKS = 16        # batch x key/value heads


def decode_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                is_causal=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    groups = getattr(module, "num_key_value_groups", 1)
    mask_shared = attention_mask is None or attention_mask.shape[1] == 1
    if (query.shape[2] != 1 or groups == 1 or not mask_shared or kwargs.get("position_bias") is not None
            or query.shape[0] * key.shape[1] < PACK_MIN_BLOCKS):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    B, H, _, D = query.shape
    q = query.reshape(B, H // groups, groups, D)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling)
    return out.reshape(B, 1, H, D), None     # (B, H_kv, groups, D) is (B, H, D) in head order


def use(model) -> None:
    """Decode `model` with this attention where it is a transformers model on SDPA (identical results;
    any other implementation, e.g. flex attention set by a trainer, and other modules are left alone)."""
    from transformers import AttentionInterface
    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, decode_sdpa)
    if getattr(model.config, "_attn_implementation", None) == "sdpa" and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(NAME)
