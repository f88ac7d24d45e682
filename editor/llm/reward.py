"""The token-level reward model: the SFT audio LLM with a scalar head, scoring codec tokens directly.

As in the seed, the reward model starts from the SFT checkpoint and reads the same chat sequence the
editor generates (prompt + answer audio ids), so rating a rollout needs no decoding. The reward of a
sequence is the head applied to the last layer's state at the answer's <|eos|> (the last labelled
position of chat.build_example), which has attended to the prompt and the whole answer.

A reward directory is a model.save directory of the backbone (config, safetensors, tokenizer, vocab
layout) plus `reward_head.safetensors` and `reward.json`."""
import json
from pathlib import Path

import torch

from editor.llm.chat import IGNORE
from editor.llm import model as llm_model

HEAD = "reward_head.safetensors"
META = "reward.json"


def last_labelled(labels: torch.Tensor) -> torch.Tensor:
    """[B] index of each row's last labelled position (the answer's <|eos|>)."""
    lab = labels != IGNORE
    if not bool(lab.any(-1).all()):
        raise ValueError("a row has no labelled (answer) positions: nothing to score")
    L = labels.shape[1]
    return (L - 1) - lab.flip(-1).float().argmax(-1)


class RewardModel(torch.nn.Module):
    """backbone: a transformers causal LM (its base model is used); head: hidden -> 1."""

    def __init__(self, lm, vocab):
        super().__init__()
        self.lm = lm
        self.vocab = vocab
        self.head = torch.nn.Linear(lm.config.hidden_size, 1)
        torch.nn.init.normal_(self.head.weight, std=1.0 / (lm.config.hidden_size + 1) ** 0.5)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, batch: dict) -> torch.Tensor:
        """[B] rewards of right-padded rows (logprobs.pad_rows)."""
        h = self.lm.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  position_ids=batch["position_ids"], use_cache=False).last_hidden_state
        at = last_labelled(batch["labels"]).to(h.device)
        last = h[torch.arange(h.shape[0], device=h.device), at]
        return self.head(last.to(self.head.weight.dtype)).squeeze(-1)

    @classmethod
    def from_sft(cls, sft_dir, dtype: str = "float32") -> "RewardModel":
        lm, vocab = llm_model.load(sft_dir, dtype)
        rm = cls(lm, vocab)
        rm.sft_dir = str(sft_dir)
        return rm

    def save(self, out, meta: dict | None = None, max_shard_size: str | None = None) -> Path:
        from safetensors.torch import save_file
        out = Path(out)
        llm_model.save(self.lm, self.vocab, out, max_shard_size=max_shard_size)
        save_file({k: v.detach().float().cpu().contiguous() for k, v in self.head.state_dict().items()}, out / HEAD)
        (out / META).write_text(json.dumps({"kind": "reward-model", **(meta or {})}, indent=1, default=str) + "\n")
        return out

    @classmethod
    def load(cls, path, dtype: str = "float32") -> "RewardModel":
        from safetensors.torch import load_file
        path = Path(path)
        if not (path / HEAD).is_file():
            raise ValueError(f"{path}: not a reward model directory (no {HEAD}; train one with pipeline=train_reward)")
        lm, vocab = llm_model.load(path, dtype)
        rm = cls(lm, vocab)
        rm.head.load_state_dict(load_file(path / HEAD))
        rm.meta = json.loads((path / META).read_text()) if (path / META).is_file() else {}
        return rm


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """[B] -log sigmoid(r_chosen - r_rejected): the chosen answer should score higher."""
    return -torch.nn.functional.logsigmoid(r_chosen - r_rejected)
