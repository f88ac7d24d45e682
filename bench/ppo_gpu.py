"""PPO on the GPU with the shipped editor LLM, where no preference data or reward model exists yet:
a pairs table of synthetic prompts (random source ids of the shipped data's lengths) and a reward model
made from the SFT model with an untrained head. It checks that the pipeline runs at the real size
(fast decoder with CUDA graphs, bf16 autocast, checkpoints, publish) and times a step; the rewards mean
nothing. Also checks that the captured decode graphs follow the actor's in-place weight updates (a
rollout after an optimizer step equals an eager one).

    run(command="OUT=$OUT bash bench/ppo_gpu.sh pipeline.train.steps=30 ...")   # no wheels needed"""
import importlib.machinery
import importlib.util
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# The GPU image has no soundfile/soxr, and their wheels do not fit the transfer limit beside the tracked
# artifacts; PPO reads and writes no audio (core.audio is only imported on the way to the editor module).
for name in ("soundfile", "soxr"):
    if importlib.util.find_spec(name) is None:
        stub = types.ModuleType(name)
        stub.__spec__ = importlib.machinery.ModuleSpec(name, None)   # transformers find_spec()s it
        sys.modules[name] = stub
from editor.llm import train_ppo  # noqa: E402
from editor.llm.editor import DEFAULT_TOKENIZER  # noqa: E402
from editor.llm.model import load  # noqa: E402
from editor.llm.pairs import example_json, write_pairs  # noqa: E402
from editor.llm.reward import RewardModel  # noqa: E402

SFT = Path("editor/artifacts/editor-llm-v3")
work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ppo")
extra = sys.argv[2:]
work.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)


def ids(n):   # grammatical: 2 linguistic then 3 semantic ids per block
    b = n // 5
    return np.concatenate([rng.integers(0, 1024, (b, 2)), rng.integers(1024, 5120, (b, 3))], 1).reshape(-1)


rows = []
for i in range(64):
    n = int(rng.integers(100, 250)) // 5 * 5          # 2.4-6 s of codec ids
    ex = {"system": "edit", "instruction": "Make the voice sound happy.", "text": "x", "target_text": "x",
          "language": "en", "source_tokens": ids(n).tolist()}
    rows.append({"pair_id": f"p{i}", "prompt_key": f"k{i}", "task": "emotion_edit", "split": "train",
                 "example": example_json(ex), "chosen": ids(n).tolist(), "rejected": ids(n).tolist(),
                 "chosen_score": 9.0, "rejected_score": 1.0, "margin": 8.0, "rater": "machine:synthetic"})
(work / "pairs").mkdir(exist_ok=True)
write_pairs(rows, work / "pairs")
if not (work / "rm" / "reward_head.safetensors").is_file():
    RewardModel.from_sft(SFT).save(work / "rm")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"     # CPU: the same run, slowly, without the graph check
model, vocab = load(SFT)
layout = train_ppo.layout_of(DEFAULT_TOKENIZER)
prompts = train_ppo.prompts_of([work / "pairs"], vocab, {"max_new_factor": 1.0, "max_new_tokens": 1500}, 5)[:8]
if DEVICE == "cuda":   # captured decode graphs see the actor's in-place weight updates
    model.cuda()
    pc = {"temperature": 1.0, "cuda_graphs": True}
    train_ppo.rollout(model, vocab, prompts, list(range(8)), pc, layout)          # captures
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)                                      # in place, as AdamW
    a = train_ppo.rollout(model, vocab, prompts, list(range(8)), pc, layout)
    b = train_ppo.rollout(model, vocab, prompts, list(range(8)), {**pc, "cuda_graphs": False}, layout)
    same = np.mean([np.array_equal(x["answer"][:50], y["answer"][:50]) for x, y in zip(a, b)])
    print(f"graph vs eager after an in-place update: first 50 ids equal in {same:.0%} of rows")
    torch.cuda.empty_cache()
del model

t = time.time()
# what `python run.py pipeline=train_ppo editor=... reward=... pairs=[...]` runs, without Hydra (the GPU
# image has neither hydra-core nor omegaconf, and the tracked tree leaves little room for wheels):
# the pipeline's settings from its yaml, overrides as pipeline.train.KEY=VALUE
import yaml  # noqa: E402
pc = yaml.safe_load((REPO / "configs" / "pipeline" / "train_ppo.yaml").read_text())["train"]
for a in extra:
    key, _, value = a.partition("=")
    if not key.startswith("pipeline.train.") or key[15:] not in pc:
        raise SystemExit(f"unknown override {a!r}: give pipeline.train.KEY=VALUE")
    pc[key[15:]] = yaml.safe_load(value)
(work / "ppo.checkpoints").mkdir(exist_ok=True)
print(json.dumps(pc), flush=True)
train_ppo.train_loop(pc, SFT, work / "rm", [work / "pairs"], work / "ppo", work / "ppo.checkpoints", DEVICE, False,
                     run_info={"command": " ".join(sys.argv), "pairs": [str(work / "pairs")]})
tj = json.loads((work / "ppo" / "training.json").read_text())
print(json.dumps({k: tj[k] for k in ("device", "steps", "actor_steps", "seconds", "final")}, indent=1))
print(f"wall {time.time() - t:.0f} s")
