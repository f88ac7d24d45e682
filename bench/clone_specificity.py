"""Clone specificity per engine: is a clone closer to its own prompt than to other speakers' prompts?

    python bench/clone_specificity.py [--prompts 3] [--out bench/results/clone_specificity.json]

Prompt clips stand in for users' recordings: each engine's voices (Piper, flite, festival, espeak-ng
Mandarin) with a timbre of their own (F0 shift, formant warp, tilt), so that no prompt is a plain base
voice. Each prompt is cloned with no base voice given (the engine chooses) onto two new sentences.
Per engine: median resemblyzer similarity of a clone to its own prompt and to the other prompts of its
language, their difference (specificity), median pocketsphinx WER (English), and the prompts whose voicing
was re-estimated or rejected, with the reasons.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path
from statistics import median

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tts.engine import LocalEngine  # noqa: E402
from tts.voicing import Voicing  # noqa: E402

EN_PROMPT = "On Monday morning the library opens at nine, and the reading room stays quiet."
EN_TEXTS = ("The new bakery on the corner sells fresh bread every morning.",
            "Please call me back when you get home tonight.")
ZH_PROMPT = "今天早上图书馆九点开门，阅览室一直很安静。"
ZH_TEXTS = ("街角的新面包店每天早上卖新鲜的面包。", "你今天晚上到家以后请给我回电话。")
# engine -> (language, [(voice, timbre)]): timbres a few semitones and a few per cent of warp off the voice
TIMBRES = [Voicing(f0_shift_st=2.5, warp=1.06, tilt_db_oct=-1.0), Voicing(f0_shift_st=-2.0, warp=0.94, tempo=0.95),
           Voicing(f0_shift_st=4.0, warp=1.1, breath=0.1)]
ENGINES = {
    "piper": ("en", ["piper:joe"] * 3),
    "flite": ("en", ["flite:rms", "flite:awb", "flite:slt"]),
    "festival": ("en", ["festival:ked_diphone", "festival:kal_diphone", "festival:cmu_us_slt_arctic_hts"]),
    "espeak-zh": ("zh", ["espeak:cmn-latn-pinyin+f3", "espeak:cmn-latn-pinyin+m2", "espeak:cmn-latn-pinyin+f5"]),
}
# Prompts far from every base voice, where the estimate's checks should act (run with --engines stress):
# a child-like tract, a very high voice over a female one, a very high Mandarin voice.
STRESS = ("stress", [("en", "piper:joe", Voicing(warp=1.6)), ("en", "flite:slt", Voicing(f0_shift_st=12)),
                     ("zh", "espeak:cmn-latn-pinyin+f3", Voicing(f0_shift_st=12, warp=1.3))])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--out", default="bench/results/clone_specificity.json")
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=[*ENGINES, STRESS[0]])
    args = ap.parse_args()
    from resemblyzer import VoiceEncoder, preprocess_wav
    from scorers.asr import wer_of
    enc = VoiceEncoder("cpu", verbose=False)
    engine = LocalEngine(16000)

    def embed(x):
        return enc.embed_utterance(preprocess_wav(x, 16000))

    jobs = [(eng, lang, voice, TIMBRES[i % len(TIMBRES)]) for eng, (lang, voices) in ENGINES.items()
            if eng in args.engines for i, voice in enumerate(voices[: args.prompts])]
    if STRESS[0] in args.engines:
        jobs += [(STRESS[0], lang, voice, timbre) for lang, voice, timbre in STRESS[1]]
    prompts = []
    for eng, lang, voice, timbre in jobs:
        text = EN_PROMPT if lang == "en" else ZH_PROMPT
        x = engine.render(text, lang, timbre, voice)
        prompts.append({"engine": eng, "language": lang, "voice": voice, "timbre": timbre.to_dict(),
                        "text": text, "x": x, "emb": embed(x)})
    for p in prompts:
        p["clones"] = []
        try:
            for text in (EN_TEXTS if p["language"] == "en" else ZH_TEXTS):
                out = engine.clone(p["x"], p["text"], text, p["language"])
                y, info = out[0], (out[2] if len(out) > 2 else {})
                e = embed(y)
                others = [float(np.dot(e, q["emb"])) for q in prompts if q is not p and q["language"] == p["language"]]
                p["clones"].append({"own": float(np.dot(e, p["emb"])), "other": median(others) if others else None,
                                    "wer": wer_of(y, 16000, text) if p["language"] == "en" else None})
            p["base_voice"] = info.get("base_voice")
            p["re_estimated"] = [", ".join(t["failed"]) for t in info.get("tries", [])
                                 if t["failed"] and t["base_voice"] == p["base_voice"]]
        except ValueError as e:
            p["rejected"] = str(e)
        print(p["engine"], p["voice"], p.get("base_voice"), p.get("rejected") or
              [round(c["own"], 3) for c in p["clones"]], file=sys.stderr, flush=True)

    summary = {}
    for eng in args.engines:
        ps = [p for p in prompts if p["engine"] == eng]
        cs = [c for p in ps for c in p["clones"]]
        others = [c["other"] for c in cs if c["other"] is not None]
        own, other = median(c["own"] for c in cs) if cs else None, median(others) if others else None
        wers = [c["wer"] for c in cs if c["wer"] is not None]
        summary[eng] = {
            "prompts": len(ps), "clones": len(cs),
            "sim_own_prompt": round(own, 3) if cs else None, "sim_other_prompts": round(other, 3) if others else None,
            "specificity": round(own - other, 3) if others else None,
            "wer": round(median(wers), 3) if wers else None,
            "base_voices": [p.get("base_voice") for p in ps],
            "re_estimated": {p["voice"]: p["re_estimated"] for p in ps if p.get("re_estimated")},
            "rejected": {p["voice"]: p["rejected"] for p in ps if p.get("rejected")},
        }
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"command": "python " + " ".join(sys.argv), "code": rev, "per_engine": summary}
    print(f"{'engine':10} {'own':>6} {'other':>6} {'diff':>6} {'WER':>6}  re-est/rejected")
    for eng, s in summary.items():
        f = lambda v: f"{v:6.3f}" if v is not None else f"{'-':>6}"
        print(f"{eng:10} {f(s['sim_own_prompt'])} {f(s['sim_other_prompts'])} {f(s['specificity'])} {f(s['wer'])}  "
              f"{len(s['re_estimated'])}/{len(s['rejected'])}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
