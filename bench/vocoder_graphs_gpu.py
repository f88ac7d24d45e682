"""The default vocoder replayed as CUDA graphs (editor/vocoder_graphs.py) against eager, on one GPU.

    python bench/vocoder_graphs_gpu.py CLIPS_DIR OUT_JSON [llm_dir]     # after `source bench/gpu_codec_env.sh`

1. Same waveforms: batches of random frames (1, 5, 16 and 64 clips of 100-900 frames) rendered eagerly
   (VOCODERS["harmonic_gl"]) and by the captured graphs, once right after the capture and once more after
   other eager work on the device (memory freed and reused meanwhile); the largest absolute difference
   per batch and the waveforms' peak.
2. One vocoder call, eager and replayed: wall seconds (median of 5, synchronised) for 1, 16 and 64 clips
   of 350 frames, and the first call of a bucket (its capture).
3. The served editor (bench/serving_gpu.py's served_editor, continuous decoding with 128 rows, guided as
   shipped): `closed_loop` for 16 and 64 clients with the vocoder eager, captured, eager again (the
   machine's drift), all in this one process.
SERVING_SMOKE=1: a short CPU run of the script itself (no graphs there: both ways eager).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import serving_gpu as sg  # noqa: E402
from editor.artifacts import SHIPPED_LLM, in_repo  # noqa: E402
from editor import features  # noqa: E402
from editor.vocoder import DEFAULT_VOCODER, VOCODERS  # noqa: E402
from editor.vocoder_graphs import CapturedVocoder  # noqa: E402

DEV = "cuda" if sg.CUDA else "cpu"


def random_frames(rng, lengths):
    out = []
    for n in lengths:
        f0 = np.where(np.arange(n) % 40 < 30, 110.0 + 40 * rng.random() + 20 * np.sin(np.arange(n) / 9), 0.0)
        mel = np.log(0.05) + rng.normal(0, 0.5, (n, features.N_MELS))
        out.append(features.Frames(f0=f0.astype(np.float32), mel=mel.astype(np.float32)))
    return out


def timed(fn, reps=5):
    ts = []
    for _ in range(reps):
        sg.sync(); t = time.perf_counter(); fn(); sg.sync(); ts.append(time.perf_counter() - t)
    return round(float(np.median(ts)), 5)


def main():
    clips_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    llm = sys.argv[3] if len(sys.argv) > 3 else in_repo(SHIPPED_LLM)
    rng = np.random.default_rng(0)
    import importlib.util
    res = {"gpu": torch.cuda.get_device_name(0) if sg.CUDA else "cpu",
           "vad": "silero" if importlib.util.find_spec("silero_vad") else "energy"}
    save = lambda: out.write_text(json.dumps(res, indent=1))  # noqa: E731
    eager = lambda fr: VOCODERS[DEFAULT_VOCODER](fr, DEV)  # noqa: E731
    cv = CapturedVocoder(DEV)
    res["same"] = []
    for n in (1, 5, 16) if sg.SMOKE else (1, 5, 16, 64):
        fr = random_frames(rng, rng.integers(100, 900, n))
        a, b = eager(fr), cv(fr)
        for m in (3, 40, 7):      # other work on the device between the capture and a replay: memory freed and reused
            eager(random_frames(rng, rng.integers(100, 900, m)))
        c = cv(fr)
        res["same"].append({"clips": n, "max_abs_diff": float(max(np.abs(x - y).max() for x, y in zip(a, b))),
                            "max_abs_diff_replayed_after_other_work": float(max(np.abs(x - y).max() for x, y in zip(a, c))),
                            "peak": float(max(np.abs(x).max() for x in a)), "lengths_equal": all(len(x) == len(y) for x, y in zip(a, b))})
        print("same", res["same"][-1], flush=True)
    save()
    res["call"] = []
    for n in (1, 4) if sg.SMOKE else (1, 16, 64):
        fr = random_frames(rng, [350] * n)
        cv2 = CapturedVocoder(DEV)
        sg.sync(); t = time.perf_counter(); cv2(fr); sg.sync()
        first = round(time.perf_counter() - t, 4)
        eager(fr)
        res["call"].append({"clips": n, "eager_s": timed(lambda: eager(fr)), "graph_s": timed(lambda: cv2(fr)),
                            "first_call_with_capture_s": first, "audio_s": round(n * 350 * features.HOP / features.SAMPLE_RATE, 1)})
        print("call", res["call"][-1], flush=True)
    save()
    clips = sg.load_clips(clips_dir)
    ed = sg.served_editor(llm, res)
    if sg.CUDA:
        ed.use_continuous(128, 1024)
    sg.warm_up(ed, clips)
    res["served"] = {}
    for name, on in (("eager", False), ("graphs", True), ("eager_again", False)):
        ed.codec.capture_vocoder(on)
        sg.warm_up(ed, clips)
        r = res["served"][name] = {}
        for clients in (4,) if sg.SMOKE else (16, 64):
            r[clients] = sg.closed_loop(ed, clips, clients, rounds=2 if sg.SMOKE else 6)
            print(name, clients, {k: r[clients][k] for k in ("x_real_time", "host_s_median")}, flush=True)
            save()
    ed.close()
    sg.codec_mod.use_analysis_processes(False)


if __name__ == "__main__":
    main()
