"""The default vocoder's time for one batch of 64 clips on the CPU (the codec decode's last step).

    python bench/vocoder_speed.py CLIPS_DIR [LLM_DIR]

CLIPS_DIR as bench/serving_gpu.py takes it (bench/serving_clips.py makes it). The 64 requests are the
serving bench's wave (4 edit kinds over the clips); their sources are tokenized and decoded to frames
once, then the vocoder renders them twice, timed. The editor's code is whichever `editor` package comes
first on the path: to compare two trees, run this script from each (`cd TREE && PYTHONPATH=TREE python ...`).
"""
import json
import sys
import time
from pathlib import Path

import soundfile as sf
import torch

from editor.artifacts import SHIPPED_LLM, in_repo
from editor import vocoder
from editor.llm.editor import Editor


def main():
    clips_dir = Path(sys.argv[1])
    llm = sys.argv[2] if len(sys.argv) > 2 else in_repo(SHIPPED_LLM)
    torch.set_num_threads(2)
    wavs = [sf.read(f, dtype="float32")[0] for f in sorted(clips_dir.glob("*.flac"))]
    ed = Editor.load(llm, device="cpu")
    frames = ed.codec.analyze_many([wavs[i % len(wavs)] for i in range(64)])
    tokens = [ed.codec.tokenizer.deinterleave(i) for i in ed._encode(frames)]
    predicted = ed.codec.decode_frames(tokens, frames, batch_size=64)
    seconds = []
    for _ in range(2):
        t0 = time.perf_counter()
        vocoder.harmonic_griffin_lim(predicted, "cpu")
        seconds.append(round(time.perf_counter() - t0, 2))
    print(json.dumps({"editor": str(Path(vocoder.__file__).parent), "clips": 64,
                      "audio_s": round(sum(len(f) for f in predicted) / 100, 1), "vocoder_seconds": seconds}))


if __name__ == "__main__":
    main()
