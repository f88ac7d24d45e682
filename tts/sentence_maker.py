"""More neutral sentences for the factory's source clips (speed, denoise, trim): subjects, actions,
places and times recombined, so an audio LLM hears many distinct texts rather than the shipped
corpus's few hundred again and again. Deterministic; writes `<out>/<language>/neutral.txt`, the
layout `texts.extra_dir` reads.

    python -m tts.sentence_maker --out data/extra_texts --per-language 1500
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-language", type=int, default=1500)
    a = ap.parse_args()
    for lang in ("en", "zh"):
        d = Path(a.out) / lang
        d.mkdir(parents=True, exist_ok=True)
        (d / "neutral.txt").write_text("\n".join(sentences(lang, a.per_language)) + "\n")


if __name__ == "__main__":
    main()
