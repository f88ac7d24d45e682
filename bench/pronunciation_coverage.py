"""How often the LLM's training answers contain what its test answers say: as text ids, and as the
pronunciation's phones and syllables (editor/llm/pronounce.py). A unit seen a handful of times in
training cannot be learned; this counts, per language, the share of the test split's units (over every
test answer) that the train split's answers hold at least N times.

    python bench/pronunciation_coverage.py --data outputs_v5/emotion_triplets_tokens,... [--out JSON]

Units: the text tokenizer's ids of each answer's text (what the LLM reads without pronunciations),
whole words (English words, Chinese characters), and the pronunciation's units (an English phone; a
Mandarin initial, final or tone digit). Answers are the examples the trainer builds (editor/llm/data.py), clone
examples included; the text is each example's target_text.
"""
import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from editor.llm import data as llm_data                  # noqa: E402
from editor.llm.pronounce import _LATIN, pronounce      # noqa: E402
from editor.llm.vocab import load_vocab                  # noqa: E402

THRESHOLDS = (1, 5, 20)
_WORDS = re.compile(rf"[\u4e00-\u9fff]|[{_LATIN}]+(?:'[{_LATIN}]+)*")


def units(text: str, vocab) -> dict[str, list]:
    spoken = [u for u in pronounce(text).split() if not u.startswith("[")]
    # the pre-tokens the model reads: an English phone; a Mandarin initial, final and tone digit
    from pypinyin import Style, lazy_pinyin
    han = "".join(re.findall(r"[\u4e00-\u9fff]", text))
    return {"text ids": vocab.encode_text(text), "words": [w.lower() for w in _WORDS.findall(text)],
            "pronunciation units": [p for u in spoken for p in re.findall(r"[^\W\d_]+|\d", u)],
            # the alternative not taken for Mandarin: whole toned syllables (empty for English)
            "toned syllables": lazy_pinyin(han, style=Style.TONE3, neutral_tone_with_five=True) if han else []}


def coverage(train: list[dict], test: list[dict], vocab) -> dict:
    out = {}
    for lang in sorted({e["language"] for e in test}):
        seen: dict[str, Counter] = {}
        for e in train:
            if e["language"] == lang:
                for kind, us in units(e["target_text"], vocab).items():
                    seen.setdefault(kind, Counter()).update(us)
        row = {"train_answers": sum(e["language"] == lang for e in train),
               "test_answers": sum(e["language"] == lang for e in test)}
        test_units_of = [units(e["target_text"], vocab) for e in test if e["language"] == lang]
        for kind in [k for k in seen if seen[k]]:
            test_units = [u for us in test_units_of for u in us[kind]]
            row[kind] = {"distinct_in_train": len(seen[kind]), "test_units": len(test_units),
                         **{f"share_seen_{n}x": round(sum(seen[kind][u] >= n for u in test_units)
                                                      / max(1, len(test_units)), 3) for n in THRESHOLDS}}
        out[lang] = row
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="token releases, comma-separated")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    rel = llm_data.token_release(a.data.split(","))
    flat = lambda exs: [e for v in exs.values() for e in v]
    train, test = flat(llm_data.load_examples(rel, "train")), flat(llm_data.load_examples(rel, "test"))
    report = {"command": " ".join(["python bench/pronunciation_coverage.py", *(argv or sys.argv[1:])]),
              "coverage": coverage(train, test, load_vocab())}
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
