"""Print the round-trip and speed tables of docs/editor.md from the JSON results in bench/results/editor/.

    python bench/editor_tables.py
"""
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "editor"


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def by_speaker(report: dict, row: str, metric: str) -> str:
    """'en_f2 x / zh_m2 y' means over the clips of each speaker (None values skipped)."""
    parts = []
    for sp in report["speakers"]:
        v = [c[f"{row}_{metric}"] for c in report["per_clip"] if c["speaker"] == sp and c.get(f"{row}_{metric}") is not None]
        parts.append(f"{np.mean(v):.2f}")
    return " / ".join(parts)


def roundtrip_table(runs: list[tuple[str, str, str]], speakers: str = "en_f2 / zh_m2") -> str:
    for _, name, _ in runs:
        found = load(name)["speakers"]
        if " / ".join(found) != speakers:
            raise ValueError(f"{name}.json: speakers {found}, the table's columns are {speakers}")
    lines = [f"| system | file | speaker sim ({speakers}) | F0 corr ({speakers}) | MCD dB | WER (original) | WER − original |",
             "|---|---|---|---|---|---|---|"]
    for label, name, row in runs:
        r = load(name)
        s = r[row]
        lines.append(f"| {label} | `{name}.json` | {s['speaker_sim']:.3f} ({by_speaker(r, row, 'speaker_sim')}) | "
                     f"{s['f0_corr']:.3f} ({by_speaker(r, row, 'f0_corr')}) | {s['mcd_db']:.2f} | "
                     f"{s['wer']:.3f} ({r['wer_original']:.3f}) | {s['wer_delta']:+.3f} |")
    return "\n".join(lines)


def speed_table(names: list[tuple[str, str]]) -> str:
    lines = ["| machine, vocoder | file | audio s | tokenize, 1 clip | tokenize, batched | decode, 1 clip | decode, batched |",
             "|---|---|---|---|---|---|---|"]
    for label, name in names:
        r = load(name)
        s, b = r["single"], r["batched"]
        lines.append(f"| {label} | `{name}.json` | {r['audio_s']} | {s['tokenize_x_realtime']:.0f}× | {b['tokenize_x_realtime']:.0f}× | "
                     f"{s['decode_x_realtime']:.0f}× | {b['decode_x_realtime']:.0f}× |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(roundtrip_table([
        ("vocoder only (true frames, harmonic_gl): the ceiling", "roundtrip_v3", "vocoder"),
        ("**v3 codec, harmonic_gl (default)**", "roundtrip_v3", "self"),
        ("v3 codec, another clip as reference", "roundtrip_v3", "other"),
        ("v3 codec, griffin_lim", "roundtrip_v3_griffin_lim", "self"),
        ("experiment, not shipped: phone head on the transformer (`phone_head=context`)", "roundtrip_v3_phone_context", "self"),
        ("experiment, not shipped: no phone loss in the decoder stage", "roundtrip_v3_decoder_without_phones", "self"),
        ("v2 codec (no phone labels), harmonic_gl", "roundtrip_v2", "self"),
        ("v2 codec, griffin_lim", "roundtrip_v2_griffin_lim", "self"),
        ("v2 codec, source_filter", "roundtrip_v2_source_filter", "self"),
        ("experiment on v2, not shipped: 6 warp factors (harmonic_gl)", "roundtrip_v3_vtlp6", "self"),
    ]))
    print()
    print(roundtrip_table([
        ("v2 codec on two training speakers (harmonic_gl)", "roundtrip_v2_training_speakers", "self"),
    ], speakers="en_f1 / en_m1"))
    print()
    print(roundtrip_table([
        ("flow decoder, griffin_lim (earlier clip set)", "roundtrip_v2_flow", "self"),
        ("3000-step budgets, griffin_lim (earlier clip set)", "roundtrip_v2_3000steps", "self"),
        ("v1: k-means tokenizer (earlier clip set)", "roundtrip_v1", "self"),
    ]))
    print()
    print(speed_table([
        ("H200, harmonic_gl", "speed_h200"), ("H200, griffin_lim", "speed_h200_griffin_lim"),
        ("H100, griffin_lim (v2, earlier bench code)", "speed_h100"),
        ("2-core CPU, harmonic_gl", "speed_cpu"), ("2-core CPU, griffin_lim", "speed_cpu_griffin_lim"),
    ]))
