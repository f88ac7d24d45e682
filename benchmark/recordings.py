"""The user's recordings as a generalisation source: a folder of `<name>.wav|.flac` with `<name>.txt`
(the transcript). Each recording gets every emotion and style edit of the run in its language
(Mandarin when its transcript has CJK characters, else English). A recording that cannot be used
is a reject with its reason, never the end of the run."""
import re
from pathlib import Path

from core import audio

_CJK = re.compile(r"[\u3400-\u9fff]")
MAX_S = 30.0


def read(folder, languages) -> tuple[list[dict], list[dict]]:
    """(recordings [{name, wav, text, language}], rejects [{name, reason}])."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"pipeline.recordings={folder}: not a directory")
    recs, rejects = [], []
    for p in sorted(q for q in root.iterdir() if q.suffix.lower() in (".wav", ".flac")):
        txt = p.with_suffix(".txt")
        try:
            if not txt.is_file():
                raise ValueError(f"no transcript {txt.name}")
            text = txt.read_text(encoding="utf-8").strip()
            if not text:
                raise ValueError(f"{txt.name} is empty")
            lang = "zh" if _CJK.search(text) else "en"
            if lang not in languages:
                raise ValueError(f"language {lang} is not among the run's {list(languages)}")
            recs.append({"name": p.stem, "wav": audio.load(p, 16000, MAX_S, "recordings max clip length"), "text": text,
                         "language": lang})
        except (ValueError, UnicodeDecodeError) as e:
            rejects.append({"name": p.name, "reason": str(e)})
    if not recs:
        raise ValueError(f"pipeline.recordings={folder}: no usable recording (wav or flac with a .txt transcript)"
                         + (f"; first problem: {rejects[0]['name']}: {rejects[0]['reason']}" if rejects else ""))
    return recs, rejects


def prompts(recs: list[dict], labels: dict[str, list[str]]) -> list[dict]:
    return [{"id": f"rec-{r['language']}-{cat}-{label}-{r['name']}", "language": r["language"], "category": cat,
             "label": label, "speaker": f"rec:{r['name']}", "text": r["text"]}
            for r in recs for cat in ("emotion", "style") for label in labels.get(cat, [])]
