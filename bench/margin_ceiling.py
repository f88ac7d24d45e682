"""The margin an editor could at best reach through a codec: the data's own answer put through it.

    python bench/margin_ceiling.py --data outputs_v5/emotion_triplets,outputs_v5/style_triplets \\
        --codec editor/artifacts/tokenizer-v10:editor/artifacts/decoder-v10 \\
        --codec /tmp/editor/artifacts/tokenizer-v3:/tmp/editor/artifacts/decoder-v3 --out OUT.json

(an older codec from git history: `git archive 5b21d55 editor/artifacts | tar x -C /tmp`)

An LLM editor answers in codec ids, and its audio is those ids decoded with the source as the voice
reference. So the best answer it can give is the data's own target in ids: decode(encode(tgt)) with the
source's frames as reference. Per codec, on the same seeded picks of bench/editor_llm_eval.py (--split,
--per-task, --seed), the shipped margin scorer on (src, tgt) (the data), (src, ceiling) and (src,
roundtrip(src)) (an editor that changes nothing): median and share >= 6 per task. If a codec's ceiling
falls below 6, no LLM on that codec can meet the margin rows, however it is trained.

Which change a codec loses: per acoustic measure the factory scores pairs by (stages.measure_pair's
clip_stats: F0 median and range, level, rate, spectral tilt, aperiodicity, F0 wobble), the share of the
data's change that the ceiling keeps, (ceiling - src) / (tgt - src), median over the clips where the data
changes that measure by at least its MIN_CHANGE (1 is all of it, 0 none; a codec that also moves the
source shows in roundtrip_src's row, the same ratio for roundtrip(src)).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor_llm_eval import audio16, margin, pick_arguments, pick_samples, similarity  # noqa: E402


MIN_CHANGE = {"f0_median_st": 1.0, "f0_range_st": 0.5, "energy_db": 2.0, "rate_syl_s": 0.3, "tilt_db_oct": 1.0,
              "ap_low": 0.03, "f0_wobble_st": 0.1}


def kept(stats: list[tuple[dict, dict, dict]]) -> dict:
    """Per measure: median share of the data's change (src -> tgt) that x keeps, over (src, tgt, x) stats."""
    out = {}
    for k, least in MIN_CHANGE.items():
        r = [(x[k] - s[k]) / (t[k] - s[k]) for s, t, x in stats
             if all(np.isfinite(d.get(k, np.nan)) for d in (s, t, x)) and abs(t[k] - s[k]) >= least]
        out[k] = {"kept": round(float(np.median(r)), 3) if r else None, "clips": len(r)}
    return out


def summary(v: list[float]) -> dict:
    return {"median": round(float(np.median(v)), 3), "share_ge_6": round(float(np.mean(np.asarray(v) >= 6)), 3), "n": len(v)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--codec", action="append", required=True, help="TOKENIZER_DIR:DECODER_DIR (repeat to compare)")
    pick_arguments(ap)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    import torch
    from resemblyzer import VoiceEncoder

    from editor.codec import Codec
    from scorers.margin import MarginScorer
    from stages.measure_pair import clip_stats
    torch.set_num_threads(1)
    notes: list = []
    picked = pick_samples(a.data, a.split, a.per_task, a.seed, notes)
    scorer, enc = MarginScorer.load(), VoiceEncoder("cpu", verbose=False)
    report = {"command": " ".join(["python bench/margin_ceiling.py", *sys.argv[1:]]), "split": a.split,
              "margin_scorer": scorer.version, "notes": notes, "codecs": {}}
    for spec in a.codec:
        if spec.count(":") != 1:
            raise SystemExit(f"--codec {spec}: give TOKENIZER_DIR:DECODER_DIR")
        tok, dec = spec.split(":")
        codec = Codec.load(tok, dec)
        t0 = time.time()
        per = report["codecs"][spec] = {}
        for task, items in sorted(picked.items()):
            if task not in ("emotion_edit", "style_edit"):
                continue
            src = [audio16(s, "src.flac") for s, _ in items]
            tgt = [audio16(s, "tgt.flac") for s, _ in items]
            src_frames = [codec.analyze(x) for x in src]
            ceiling = codec.decode(codec.encode(tgt), src_frames)
            rt_src = codec.decode(codec.encode(src), src_frames)
            rows = {"data": [], "ceiling": [], "roundtrip_src": [], "ceiling_similarity": []}
            stats = {"ceiling": [], "roundtrip_src": []}
            for (s, _), x, y, c, r in zip(items, src, tgt, ceiling, rt_src):
                args = (s.json.get("text") or "", s.json["language"], s.json["edit_info"])
                rows["data"].append(margin(scorer, enc, x, y, *args))
                rows["ceiling"].append(margin(scorer, enc, x, c, *args))
                rows["roundtrip_src"].append(margin(scorer, enc, x, r, *args))
                rows["ceiling_similarity"].append(similarity(enc, x, c))
                st = {k: clip_stats(v, 16000, *args[:2]) for k, v in (("src", x), ("tgt", y), ("ceiling", c), ("rt", r))}
                stats["ceiling"].append((st["src"], st["tgt"], st["ceiling"]))
                stats["roundtrip_src"].append((st["src"], st["tgt"], st["rt"]))
            per[task] = {k: summary(v) if k != "ceiling_similarity" else round(float(np.median(v)), 4) for k, v in rows.items()}
            per[task]["change_kept"] = {k: kept(v) for k, v in stats.items()}
            per[task]["per_clip"] = rows
            print(spec, task, {k: v for k, v in per[task].items() if k not in ("per_clip", "change_kept")}, flush=True)
            print("  change kept by the ceiling:", {k: v["kept"] for k, v in per[task]["change_kept"]["ceiling"].items()}, flush=True)
        per["seconds"] = round(time.time() - t0, 1)
        Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
