"""More sentences for the factory: subjects, actions, places and times recombined, so an audio LLM hears
many distinct texts rather than the shipped corpus's few hundred (8 per emotion or style tag) again
and again. Deterministic; writes the layout `texts.extra_dir` reads.

    python -m tts.sentence_maker --out data/extra_texts --per-language 1500      # <lang>/neutral.txt
    python -m tts.sentence_maker --out data/tag_texts --skip 1500 --per-tag 60 \
        --tags happy,angry,sad,fear,surprised                                    # <lang>/<tag>.txt

Tag files hold the sentences that follow the first `--skip` of the same stream, a slice per tag, so
with --skip equal to the neutral file's length no sentence is in two files: a text of an emotion
pair's test split is never a speed pair's training text. Their content is neutral; the emotion or style
is the rendering's, which is what an editor meets: any text, any requested edit.
"""
import argparse
from pathlib import Path

import numpy as np

EN = {
    "subject": ["The old man", "My sister", "Our teacher", "A young doctor", "The farmer", "Her brother",
                "The driver", "Two students", "The baker", "My neighbour", "A tall woman", "The captain",
                "His father", "The new nurse", "Our guide", "The little girl", "A quiet boy", "The manager",
                "Their cousin", "The painter", "The postman", "My uncle", "The singer", "A kind stranger"],
    "action": ["carried a heavy box", "opened the window", "walked along the river", "bought fresh bread",
               "painted the front door", "fixed the broken chair", "read a long letter", "planted three small trees",
               "cleaned the kitchen floor", "wrote a short story", "cooked a simple dinner", "found a silver coin",
               "washed the blue car", "watched the evening news", "climbed the steep hill", "sold some old books",
               "counted the red apples", "called the post office", "moved the piano upstairs", "picked up the children",
               "lost a green umbrella", "mended the fishing net", "packed two suitcases", "fed the hungry ducks"],
    "place": ["near the station", "behind the school", "in the village", "by the harbour", "at the market",
              "on the third floor", "outside the museum", "across the bridge", "in the garden", "beside the lake",
              "at the corner shop", "under the old oak", "in the city centre", "at the bus stop", "next to the church"],
    "time": ["this morning", "last Tuesday", "before lunch", "after the storm", "on Sunday evening",
             "at half past seven", "yesterday afternoon", "every other week", "during the holiday", "just before midnight",
             "in early spring", "at the weekend"],
}
ZH = {
    "subject": ["老师", "我的妹妹", "那位医生", "他的爸爸", "邻居家的孩子", "一个年轻人", "司机", "我们的经理",
                "小王", "奶奶", "两个学生", "她的哥哥", "公司的同事", "楼下的老人家", "那个孩子", "我的朋友",
                "爷爷", "新来的护士", "小张", "隔壁的老人"],
    "action": ["买了一些水果", "看了一本新书", "写了一封信", "整理了房间", "种了几棵树", "等了很久的车",
               "喝了一杯热茶", "修好了自行车", "做了一顿晚饭", "找到了一把钥匙", "洗了那辆蓝色的车", "拿走了两个箱子",
               "听了一首老歌", "画了一张小画", "打了一个电话", "送来了一封信", "开了一个会", "学会了做饭",
               "搬走了那张桌子", "准备了明天的午饭"],
    "place": ["在公园里", "在学校门口", "在火车站", "在超市", "在图书馆", "在河边", "在办公室", "在厨房里",
              "在医院旁边", "在小区楼下", "在路口", "在家里", "在书店门口", "在山上"],
    "time": ["今天早上", "昨天下午", "上个月", "明天晚上", "周末", "每天中午", "下班以后", "吃完饭以后",
             "前天晚上", "早上八点", "下雨的时候", "春节前"],
}


def sentences(language: str, n: int, seed: int = 0) -> list[str]:
    """n distinct sentences of `language` ("en" or "zh"), in a fixed order for a seed."""
    parts = {"en": EN, "zh": ZH}[language]
    rng = np.random.default_rng(seed)
    pick = lambda k: parts[k][rng.integers(len(parts[k]))]
    out, seen = [], set()
    room = np.prod([len(v) for v in parts.values()])
    if n > room // 2:
        raise ValueError(f"{n} sentences asked of {language}: the templates give about {room // 2} distinct ones")
    while len(out) < n:
        s, a, p, t = pick("subject"), pick("action"), pick("place"), pick("time")
        if language == "en":
            form = rng.integers(3)
            line = (f"{s} {a} {p} {t}." if form == 0 else f"{t[0].upper() + t[1:]}, {s[0].lower() + s[1:]} {a} {p}."
                    if form == 1 else f"{s} {a} {p}.")
        else:
            form = rng.integers(3)
            line = f"{t}，{s}{p}{a}。" if form == 0 else f"{s}{t}{p}{a}。" if form == 1 else f"{s}{p}{a}。"
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def tag_sentences(language: str, tags: list[str], per_tag: int, skip: int, seed: int = 0) -> dict[str, list[str]]:
    """per_tag sentences for each tag: consecutive slices of the stream after its first `skip`."""
    if per_tag < 1 or skip < 0:
        raise ValueError(f"per_tag={per_tag}, skip={skip}: need per_tag >= 1 and skip >= 0")
    if len(set(tags)) != len(tags) or "neutral" in tags:
        raise ValueError(f"tags {tags}: each once, and not neutral (--per-language writes that one)")
    from core.tags import EMOTIONS, STYLES
    if unknown := [t for t in tags if t not in EMOTIONS + STYLES]:
        raise ValueError(f"tags {unknown}: not emotion or style tags (core/tags.py)")
    stream = sentences(language, skip + per_tag * len(tags), seed)[skip:]
    return {t: stream[k * per_tag:(k + 1) * per_tag] for k, t in enumerate(tags)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-language", type=int, default=1500, help="neutral.txt's sentences (without --tags)")
    ap.add_argument("--tags", default=None, help="comma-separated tags: write <tag>.txt files instead")
    ap.add_argument("--per-tag", type=int, default=60)
    ap.add_argument("--skip", type=int, default=None, help="with --tags: sentences of the stream left out first "
                    "(the neutral file's length)")
    a = ap.parse_args(argv)
    if a.tags and a.skip is None:
        raise SystemExit("--tags needs --skip: the neutral file's length (1500 for data/extra_texts), so no "
                         "sentence is in two files")
    for lang in ("en", "zh"):
        d = Path(a.out) / lang
        d.mkdir(parents=True, exist_ok=True)
        files = (tag_sentences(lang, a.tags.split(","), a.per_tag, a.skip) if a.tags
                 else {"neutral": sentences(lang, a.per_language)})
        for tag, lines in files.items():
            (d / f"{tag}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
