"""The benchmark's judge per engine: Piper voices it never trained on, and whole engines it never heard.

    python bench/judge_by_engine.py [--judge scorers/artifacts/judge-v2] [--speakers 6]
        [--cache .bench_data/judge_by_engine] [--out bench/results/judge_by_engine.json]

Prompt clips of `voice_bank=generated_engines` (English), rendered directly (base voice + timbre +
the tag's prosody, as the voice bank makes them; no clone) for every emotion and style class of the
judge, the first --speakers speakers of each engine: Piper's joe (the factory's written voices and drawn ones;
the judge's own pool draws on joe with other timbres), flite and festival (no judge voice comes from
either). Accuracy per engine and task, computed
as docs/judge.md does (mean over speakers, then classes).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
REPO = Path(__file__).resolve().parent.parent

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge", default="scorers/artifacts/judge-v2")
    ap.add_argument("--speakers", type=int, default=6, help="per engine")
    ap.add_argument("--cache", default=".bench_data/judge_by_engine")
    ap.add_argument("--out", default="bench/results/judge_by_engine.json")
    a = ap.parse_args()
    from hydra import compose, initialize_config_dir

    from scorers.judge import LocalJudge
    from scorers.judge.fit import evaluate
    from pipelines.triplets import build_voice_bank
    from tts.voice_bank import make_voice_bank
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        # no prompt analyses: the clips are only judged, never cloned from
        cfg = compose("config", overrides=["voice_bank=generated_engines", "languages=[en]", "ray.progress=false",
                                           f"voice_bank.cache_dir={a.cache}", "tts.cache_dir=null"])
    bank = make_voice_bank(cfg.voice_bank, ["en"], cfg.sample_rate, cfg.seed)
    judge = LocalJudge.load(a.judge)
    tags = sorted({c for classes in (judge.tasks["emotion"], judge.tasks["style"]) for c in classes})
    groups: dict[str, list] = {}
    for s in bank.speakers:   # the judge trained on a pool of its own: none of these voices
        g = groups.setdefault(s.base_voice.split(":")[0], [])
        if len(g) < a.speakers:
            g.append(s)
    bank.speakers = [s for g in groups.values() for s in g]
    build_voice_bank(cfg, bank, tags)   # the factory's rendering (on Ray where installed), cached in --cache
    report = {"command": "python " + " ".join(sys.argv), "judge": a.judge, "groups": {}}
    for engine, speakers in groups.items():
        report["groups"][engine] = {"speakers": [s.id for s in speakers],
                                    "base_voices": sorted({s.base_voice for s in speakers})}
        for task in ("emotion", "style"):
            classes = judge.tasks[task]
            probs, labels, who = [], [], []
            for s in speakers:
                for i, c in enumerate(classes):
                    p = judge.classify(bank.root / s.id / f"{c}.flac", task)
                    probs.append([p[k] for k in classes])
                    labels.append(i)
                    who.append(s.id)
            ev = evaluate(np.array(probs), labels, who, classes)
            report["groups"][engine][task] = {"n": ev["n"], "accuracy": round(ev["accuracy"], 4),
                                              "tagged_accuracy": round(ev["tagged_accuracy_mean_over_classes"], 4)}
        print(engine, json.dumps(report["groups"][engine]), flush=True)
    Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
