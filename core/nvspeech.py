"""NVSpeech-style text with inline paralinguistic tags, and a reader of such corpora.

Text: tags are written inline in square brackets, e.g.
    "I can't believe it, [Laughter] we actually won."      "[Uhm]我想一想，明天再说吧。"
The ten known tags are core.tags.PARALINGUISTIC_TAGS, spelled exactly as there.

Corpora (`pipeline.corpus=PATH`), two layouts:

1. A manifest file: `.jsonl` (one JSON object per line), `.json` (a list of objects), `.csv`,
   `.tsv` or `.parquet`, with columns
       audio_path  audio file (wav, flac, ogg, mp3); relative paths are relative to the manifest
       text        transcript with inline tags
       speaker     speaker id
       language    en, zh or yue (optional: `pipeline.corpus_language` when missing or empty)
2. A folder:
       ROOT/<speaker>/<name>.wav|flac|ogg|mp3  +  ROOT/<speaker>/<name>.txt  (transcript with tags)
       ROOT/<speaker>/speaker.json             optional, {"language": "zh"}
   Files directly under ROOT belong to a speaker named after ROOT (ROOT/speaker.json applies).

Rows are read as they are; problems with one utterance (no transcript, unknown tag, no tag,
unknown language, no audio_path, a transcript that is not UTF-8, an unusable speaker.json) become
rejects with the reason, decided by `check_utterance`. Control characters in transcripts are stripped.
"""
import json
import re
from pathlib import Path

from core.tables import clip_transcript, folder_language, text_cell
from core.tags import LANGUAGES, PARALINGUISTIC_TAGS
from core.text_hygiene import strip_control

AUDIO_EXT = (".wav", ".flac", ".ogg", ".mp3")
TAG_RE = re.compile(r"\[([^\[\]]+)\]")
_PUNCT = r"[,.!?;:，。！？；：、]"
_CLAUSE = re.compile(r"[,，;；]")

# The seed's substitution baseline: each tag spoken as a word. Breathing has no word: it is dropped.
SUBSTITUTIONS = {
    "Breathing": ("", ""), "Laughter": ("haha", "哈哈"), "Surprise-oh": ("oh", "哦"),
    "Confirmation-en": ("mm-hmm", "嗯"), "Uhm": ("uhm", "嗯"), "Surprise-ah": ("ah", "啊"),
    "Surprise-wa": ("wow", "哇"), "Sigh": ("ah", "唉"), "Question-ei": ("eh", "诶"),
    "Dissatisfaction-hnn": ("hmph", "哼"),
}


def is_chinese(language: str) -> bool:
    return language in ("zh", "yue")


def tags_in(text: str) -> list[str]:
    return TAG_RE.findall(text)


def split_tags(text: str) -> list[tuple[str, str]]:
    """[("text", "The weather,"), ("tag", "Uhm"), ("text", "today ...")]; blank text pieces dropped."""
    out, pos = [], 0
    for m in TAG_RE.finditer(text):
        if text[pos:m.start()].strip():
            out.append(("text", text[pos:m.start()].strip()))
        out.append(("tag", m.group(1)))
        pos = m.end()
    if text[pos:].strip():
        out.append(("text", text[pos:].strip()))
    return out


_CJK = "\u3000-\u303f\u3400-\u9fff\uff00-\uffef"  # CJK characters and full-width punctuation


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(rf"\s+(?=[{_CJK}])|(?<=[{_CJK}])\s+", "", text)  # Chinese has no spaces
    text = re.sub(r"\s+(" + _PUNCT + ")", r"\1", text)  # no space before punctuation
    return re.sub(r"^(" + _PUNCT + r")\s*", "", text)     # nor punctuation left at the start


def strip_tags(text: str) -> str:
    """The tag-free transcript."""
    return _tidy(TAG_RE.sub(" ", text))


def substitute(text: str, language: str) -> str:
    """Tags replaced by words (the substitution baseline), with a phrase break after each word."""
    zh = is_chinese(language)

    def word(m):
        w = SUBSTITUTIONS[m.group(1)][1 if zh else 0]
        rest = text[m.end():].strip()
        if not w or not rest or re.match(_PUNCT, rest):
            return f" {w} "
        return f" {w}{'，' if zh else ','} "
    return _tidy(TAG_RE.sub(word, text))


def insert_tag(sentence: str, tag: str, place: str, language: str) -> str:
    """Put `[tag]` at the start, after the clause boundary nearest the middle, or at the end."""
    sep = "" if is_chinese(language) else " "
    if place == "start":
        return f"[{tag}]{sep}{sentence}"
    if place == "end":
        return f"{sentence}{sep}[{tag}]"
    if place == "clause":
        cuts = [m.end() for m in _CLAUSE.finditer(sentence) if sentence[m.end():].strip()]
        if not cuts:
            raise ValueError(f"no clause boundary in {sentence!r}")
        i = min(cuts, key=lambda c: abs(c - len(sentence) / 2))
        return f"{sentence[:i]}{sep}[{tag}]{sep}{sentence[i:].lstrip()}"
    raise ValueError(f"unknown tag place {place!r}")


def has_clause(sentence: str) -> bool:
    return any(sentence[m.end():].strip() for m in _CLAUSE.finditer(sentence))


def check_utterance(u: dict) -> tuple[str, str] | None:
    """None if the utterance is usable, else (reason, detail)."""
    if u.get("problem"):
        return tuple(u["problem"])
    if not u.get("audio_path"):
        return "missing_audio_path", f"speaker {u.get('speaker')}, text {u.get('text')!r}: no audio_path"
    if u.get("text") is None:
        return "no_transcript", f"{u['audio_path']}: no transcript"
    if u["language"] not in LANGUAGES:
        return "unknown_language", f"{u['audio_path']}: unknown language {u['language']!r}"
    tags = tags_in(u["text"])
    unknown = sorted({t for t in tags if t not in PARALINGUISTIC_TAGS})
    if unknown:
        return "unknown_tag", (f"{u['audio_path']}: unknown tag(s) {', '.join(f'[{t}]' for t in unknown)}; "
                               f"known: {', '.join(PARALINGUISTIC_TAGS)}")
    if not tags:
        return "no_tags", f"{u['audio_path']}: transcript has no paralinguistic tag"
    if not strip_tags(u["text"]):
        return "no_text", f"{u['audio_path']}: transcript has only tags"
    return None


def read_corpus(path: str, default_language: str) -> list[dict]:
    """Utterances {audio_path, text (None if missing), speaker, language} of a manifest or folder."""
    p = Path(path)
    if p.is_dir():
        return _read_folder(p, default_language)
    if p.is_file():
        return _read_manifest(p, default_language)
    raise ValueError(f"pipeline.corpus={path}: no such file or directory")


def _read_manifest(p: Path, default_language: str) -> list[dict]:
    import pandas as pd
    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet":
            t = pd.read_parquet(p)
        elif suffix in (".csv", ".tsv"):
            t = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        elif suffix == ".jsonl":
            t = pd.read_json(p, lines=True, dtype=False)
        elif suffix == ".json":
            t = pd.DataFrame(json.loads(p.read_text(encoding="utf-8")))
        else:
            raise ValueError(f"pipeline.corpus={p}: use a .jsonl, .json, .csv, .tsv or .parquet manifest, "
                             "or a folder")
    except ValueError as e:
        raise ValueError(f"pipeline.corpus={p}: cannot read manifest ({e})") from e
    missing = {"audio_path", "text", "speaker"} - set(t.columns)
    if missing:
        raise ValueError(f"pipeline.corpus={p}: missing columns {sorted(missing)} "
                         "(needs audio_path, text, speaker; language optional)")
    out = []
    for r in t.to_dict("records"):
        audio, text, lang = text_cell(r["audio_path"]), text_cell(r["text"]), text_cell(r.get("language"))
        out.append({"audio_path": audio and str(Path(audio) if Path(audio).is_absolute() else p.parent / audio),
                    "text": None if text is None else strip_control(text).strip(),
                    "speaker": text_cell(r["speaker"]) or "unknown",
                    "language": lang or default_language})
    return out


def _read_folder(root: Path, default_language: str) -> list[dict]:
    out = []
    for d in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        lang, problem = folder_language(d, default_language)
        for f in sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXT):
            text, bad_text = (None, None) if problem else clip_transcript(f)
            u = {"audio_path": str(f), "speaker": d.name, "language": lang, "text": text}
            if problem or bad_text:
                u["problem"] = problem or bad_text
            out.append(u)
    if not out:
        raise ValueError(f"pipeline.corpus={root}: no audio files ({', '.join(AUDIO_EXT)})")
    return out
