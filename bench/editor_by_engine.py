"""The editor's quality per engine of the source voice: an editor_llm_eval.py report regrouped.

    python bench/editor_by_engine.py EVAL.json [--out bench/results/editor_llm/by_engine.json]

EVAL.json: `bench/editor_llm_eval.py --out` over releases of `voice_bank=generated_engines` (its
per-clip rows name each clip's speaker). Each speaker's base voice comes from that bank; rows are
grouped by the base voice's engine, and the written speakers the LLM trained on (the report's own
speaker list) form their own group. Drawn speakers (ids like en_fd3) are other voices in this bank than
in the default bank the LLM trained on, whatever their id, so only written speakers (en_f1, zh_m2, ...)
can be training speakers here.
Each group is summarised with editor_llm_eval.summarize_task, task by task.
"""
import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from codec_by_engine import _config  # noqa: E402
from editor_llm_eval import summarize_task  # noqa: E402


DRAWN = re.compile(r"_[fm]d\d+$")     # a drawn speaker's id: en_fd3, zh_md12


def base_voices(languages: list[str]) -> dict[str, str]:
    """speaker -> base voice in the generated_engines bank (all languages of the report)."""
    from tts.voice_bank import make_voice_bank
    cfg = _config(f"languages=[{','.join(languages)}]")
    return {s.id: s.base_voice for s in make_voice_bank(cfg.voice_bank, languages, cfg.sample_rate, cfg.seed).speakers}


def group_rows(report: dict, voices: dict[str, str]) -> dict[str, dict[str, list]]:
    """group -> task -> rows; group = engine of the speaker's base voice, or 'LLM training speakers'."""
    trained = {s for s in report["speakers"].get("llm_speakers", []) if not DRAWN.search(s)}
    out: dict = {}
    for task, rows in report["per_clip"].items():
        for r in rows:
            g = "LLM training speakers" if r["speaker"] in trained else voices[r["speaker"]].split(":")[0]
            out.setdefault(g, {}).setdefault(task, []).append(r)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report")
    ap.add_argument("--out", default="bench/results/editor_llm/by_engine.json")
    a = ap.parse_args()
    report = json.loads(Path(a.report).read_text())
    languages = sorted({r["language"] for rows in report["per_clip"].values() for r in rows})
    voices = base_voices(languages)
    groups = group_rows(report, voices)
    out = {"command": "python " + " ".join(sys.argv), "eval_command": report["command"], "llm": report["llm"],
           "groups": {g: {"speakers": sorted({r["speaker"] for rows in tasks.values() for r in rows}),
                          "base_voices": sorted({voices[r["speaker"]] for rows in tasks.values() for r in rows}),
                          "tasks": {t: summarize_task(t, rows) for t, rows in sorted(tasks.items())}}
                      for g, tasks in sorted(groups.items())}}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    for g, v in out["groups"].items():
        for t, s in v["tasks"].items():
            extra = {k: s[k]["median"] for k in ("speed_error", "silence_removed") if k in s}
            print(g, t, s["n"], "sim", s["speaker_sim"]["median"], "wer", s["wer_en"], "rt", s["wer_en_roundtrip"], extra)


if __name__ == "__main__":
    main()
