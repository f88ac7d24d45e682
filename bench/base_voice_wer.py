"""Pocketsphinx WER of each English base voice, spoken plain through the engine (no timbre, no emotion).

    python bench/base_voice_wer.py [--voices flite:slt festival:kal_diphone ...]

The numbers in docs/voices.md come from this; tests/test_base_voices.py holds each voice to a bound
with margin over them, on the same sentences.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scorers.asr import wer_of
from tts.base_voices import ENGLISH_ONLY
from tts.engine import LocalEngine
from tts.voicing import Voicing

SENTENCES = ("The new bakery on the corner sells fresh bread every morning.",
             "Please call me back when you get home tonight.",
             "We walked along the river until the sun went down.")
ENGLISH_VOICES = ("piper:joe", *ENGLISH_ONLY, "espeak:en-us", "espeak:en-us+f3")


def voice_wer(engine: LocalEngine, voice: str, sentences=SENTENCES) -> float:
    """Mean WER over the sentences, each spoken plain by the base voice through the engine's renderer."""
    wers = [wer_of(engine.render(s, "en", Voicing(), voice), engine.sr, s) for s in sentences]
    return round(sum(wers) / len(wers), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voices", nargs="+", default=list(ENGLISH_VOICES))
    args = ap.parse_args()
    engine = LocalEngine(16000)
    print(json.dumps({v: voice_wer(engine, v) for v in args.voices}, indent=1))


if __name__ == "__main__":
    main()
