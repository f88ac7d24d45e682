"""A planted pairs table at real edit length (for bench/preference_gpu.sh until real pairs exist):
edit prompts with 240-id sources (about 6 s), chosen answers 240 low codec ids [0, 512), rejected 240
high ids [4608, 5120). usage: python bench/planted_pairs.py OUT_DIR [N_TRAIN] [N_VAL]"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.llm.pairs import example_json, write_pairs  # noqa: E402


def rows(n, split, seed):
    rng = np.random.default_rng(seed)
    return [{"pair_id": f"{split}-{i}", "prompt_key": f"{split}-{i}", "task": "emotion_edit", "split": split,
             "example": example_json({"system": "edit", "instruction": "Make the speech sound happy.",
                                      "text": f"Sentence {i}.", "target_text": f"Sentence {i}.", "language": "en",
                                      "source_tokens": rng.integers(0, 5120, 240)}),
             "chosen": rng.integers(0, 512, 240), "rejected": rng.integers(4608, 5120, 240),
             "chosen_score": 9.0, "rejected_score": 1.0, "margin": 8.0, "rater": "machine:planted"} for i in range(n)]


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    n_val = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    print(write_pairs(rows(n_train, "train", 0) + rows(n_val, "validation", 1), out))
