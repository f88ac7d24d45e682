"""The host work of one serving wave that runs on the interpreter beside the LLM's decode loop, on the CPU.

    python bench/analysis_host_cpu.py CLIPS_DIR [LLM_DIR]

For the 64 requests of bench/serving_gpu.py's wave: the tokenizer's encoder inputs of their clips (made
clip by clip in numpy; now made in the analysis workers), the prompts of their first decode (prompt and
guidance's negative prompt of each request, as Editor._edit_rows makes them), and one text tokenization
without the Vocab's cache. Least of 5 runs each, milliseconds. The editor's code is whichever `editor`
package comes first on the path: to compare two trees, run this script from each (`cd TREE &&
PYTHONPATH=TREE python ...`); a tree without the text cache tokenizes every text every time.
"""
import json
import sys
import time
from pathlib import Path

import soundfile as sf

from editor.artifacts import SHIPPED_LLM, in_repo
from editor import tokenizer as tok_mod
from editor.llm.editor import Editor

EDITS = [("emotion", "happy"), ("emotion", "sad"), ("style", "whisper"), ("speed", "faster")]


def least_ms(fn, reps=5, before=lambda: None):
    best = float("inf")
    for _ in range(reps):
        before()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1e3, 2)


def main():
    files = sorted(Path(sys.argv[1]).glob("*.flac"))
    llm = sys.argv[2] if len(sys.argv) > 2 else in_repo(SHIPPED_LLM)
    clips = [(sf.read(f, dtype="float32")[0], json.loads(f.with_suffix(".json").read_text())["text"]) for f in files]
    ed = Editor.load(llm, device="cpu")
    reqs = [dict(wav=clips[i % len(clips)][0], text=clips[i % len(clips)][1], edit_type=EDITS[i % 4][0],
                 edit_info=EDITS[i % 4][1]) for i in range(64)]
    frames = ed.codec.analyze_many([r["wav"] for r in reqs])
    ids = ed._encode(frames)
    cfg = ed.codec.tokenizer.cfg

    def prompts():
        for r, src in zip(reqs, ids):
            ed._edit_prompt(r["edit_type"], r["edit_info"], r["text"], src)
            ed._guide(r["edit_type"], r["text"], src)
    cache = getattr(ed.vocab, "_text_ids", None)
    text = "Make the following audio more happy. The text corresponding to the audio is: " + clips[0][1]
    print(json.dumps({
        "editor": str(Path(tok_mod.__file__).parent), "requests": 64,
        "encoder_inputs_ms": least_ms(lambda: [tok_mod.INPUTS[s](f, cfg) for f in frames for s in tok_mod.STREAMS]),
        "prompts_ms": least_ms(prompts),                       # a cache, where the tree has one, kept warm
        "one_text_uncached_ms": least_ms(lambda: ed.vocab.text.encode(text, add_special_tokens=False), reps=50),
        "text_cache": cache is not None}))


if __name__ == "__main__":
    main()
