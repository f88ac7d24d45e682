"""Packing: a packed row's loss is the sum of its examples' losses alone, and only with the mask."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from editor.llm import chat, packing
from editor.llm.model import build_model, load_preset
from editor.llm.vocab import load_vocab

V = load_vocab()


def _examples(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ex = {"system": "edit", "text": "t", "target_text": "t",
              "instruction": f"Make the following audio more {['happy', 'sad', 'angry'][i % 3]}. "
                             f"The text corresponding to the audio is: sentence {i}",
              "source_tokens": rng.integers(0, 5120, 10 + 7 * i), "target_tokens": rng.integers(0, 5120, 8 + 5 * i)}
        out.append(chat.build_example(ex, V))
    return out


def _token_losses(model, **inputs):
    """Per-position loss of predicting the next label (0 where the label is -100), flattened."""
    labels = inputs.pop("labels")
    logits = model(**inputs).logits.float()
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=-100, reduction="none")


def _loss_sum(model, **inputs):
    return _token_losses(model, **inputs).sum()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = load_preset("tiny")
    cfg.initializer_range = 0.2   # sharper attention than the default init, so a leak shows clearly
    return build_model(cfg, V).eval()


def test_pack_first_fit_decreasing():
    assert packing.pack([5, 9, 3, 4, 6], 10) == [[1], [4, 3], [0, 2]]
    with pytest.raises(ValueError, match="example 1 has 11 tokens > max_len=10"):
        packing.pack([3, 11], 10)


def test_collate_positions_restart_and_mask_is_block_diagonal():
    exs = _examples()
    n = [len(e["input_ids"]) for e in exs]
    L = sum(n) + 5
    batch = packing.collate([exs], L, V.pad)
    pos = batch["position_ids"][0].tolist()
    assert pos == list(range(n[0])) + list(range(n[1])) + list(range(n[2])) + list(range(5))
    m = batch["attention_mask"][0, 0]
    assert m.shape == (L, L) and m.dtype == torch.bool
    assert m[n[0], n[0] - 1].item() is False and m[n[0] + 1, n[0]].item() is True   # no look back into example 0
    assert not m.triu(1).any() and m.diagonal().all()
    assert (batch["labels"][0, sum(n):] == -100).all() and (batch["input_ids"][0, sum(n):] == V.pad).all()


def test_packed_loss_equals_sum_of_separate_losses_and_needs_the_mask(model):
    exs = _examples()
    L = sum(len(e["input_ids"]) for e in exs) + 4
    with torch.no_grad():
        each = [_loss_sum(model, input_ids=torch.from_numpy(e["input_ids"]).long()[None],
                          labels=torch.from_numpy(e["labels"]).long()[None]) for e in exs]
        alone = sum(each)
        batch = packing.collate([exs], L, V.pad)
        per_token = _token_losses(model, **batch)
        packed = per_token.sum()
        leaky = _loss_sum(model, **{k: v for k, v in batch.items() if k != "attention_mask"})
    assert torch.allclose(packed, alone, rtol=1e-5, atol=1e-5), (packed, alone)
    # and example by example: position i predicts label i + 1, so example k's losses sit at [start - 1, end - 1)
    ends = np.cumsum([len(e["input_ids"]) for e in exs])
    for k, (start, end) in enumerate(zip([0, *ends[:-1]], ends)):
        assert torch.allclose(per_token[max(start - 1, 0):end - 1].sum(), each[k], rtol=1e-5, atol=1e-5)
    assert abs(leaky - alone) > 1e-2, "without the mask the examples attend to each other"


def test_collate_rejects_overfull_rows_and_unmasked_first_labels():
    exs = _examples()
    with pytest.raises(ValueError, match="max_len=10"):
        packing.collate([exs], 10, V.pad)
    bad = {**exs[0], "labels": exs[0]["input_ids"].copy()}
    with pytest.raises(ValueError, match="start with -100"):
        packing.collate([[bad]], 200, V.pad)


@pytest.mark.parametrize("impl", ["flex_attention", "sdpa"])
def test_trainer_loss_without_a_mask_reads_the_packing_from_position_ids(model, impl):
    """attention=flex trains without a mask in the batch: transformers must then find the examples'
    boundaries in the position ids (a block mask for flex), which it does only without a KV cache."""
    from editor.llm.train import token_loss_sum
    exs = _examples()
    L = sum(len(e["input_ids"]) for e in exs) + 4
    batch = {k: v for k, v in packing.collate([exs], L, V.pad).items() if k != "attention_mask"}
    model.set_attn_implementation(impl)
    try:
        with torch.no_grad():   # FlexAttention has no CPU backward; its forward is what is checked
            alone = sum(_loss_sum(model, input_ids=torch.from_numpy(e["input_ids"]).long()[None],
                                  labels=torch.from_numpy(e["labels"]).long()[None]) for e in exs)
            packed = token_loss_sum(model, batch)
    finally:
        model.set_attn_implementation("sdpa")
    assert torch.allclose(packed, alone, rtol=1e-5, atol=1e-5), (packed, alone)
