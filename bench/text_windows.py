"""How many texts of a tag each speaker has per sentence generation (texts.extra_dir, then each of
texts.later_dirs): texts_per_tag past a speaker's first window brings it new sentences. Per language and
split, the counts of the bank's speakers (the shipped LLM's data: 18 per language).

    python bench/text_windows.py --extra-dir data/tag_texts --later-dirs data/tag_texts_2 --tags happy,child"""
import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hydra import compose, initialize_config_dir  # noqa: E402

from core import splits  # noqa: E402
from tts import texts  # noqa: E402
from tts.voice_bank import make_voice_bank  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extra-dir", default="data/tag_texts")
    ap.add_argument("--later-dirs", default="data/tag_texts_2", help="comma-separated")
    ap.add_argument("--tags", default="happy,child")
    ap.add_argument("--per-language", type=int, default=18)
    a = ap.parse_args(argv)
    with initialize_config_dir(str(Path(__file__).resolve().parent.parent / "configs"), version_base=None):
        cfg = compose("config", [f"voice_bank.per_language={a.per_language}"])
    bank = make_voice_bank(cfg.voice_bank, ["en", "zh"], cfg.sample_rate, cfg.seed)
    for tag in a.tags.split(","):
        for lang in ("en", "zh"):
            gens = texts.sentence_generations(lang, tag, a.extra_dir, True, a.later_dirs.split(","))
            same = [s for s in bank.speakers if s.language == lang]
            counts = Counter((splits.speaker_split(s.id, cfg.splits, s.base_voice),
                              tuple(len(splits.texts_of_split(g, s, same, cfg.splits)) for g in gens)) for s in same)
            for (split, per_gen), n in sorted(counts.items()):
                print(f"{tag} {lang} {split}: {n} speakers, texts per generation {list(per_gen)}")


if __name__ == "__main__":
    main()
