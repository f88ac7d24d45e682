"""Text hygiene for user transcripts and sentences: control characters, and whether a text's
script fits the language a voice speaks.

Control characters are stripped, not rejected: a BEL, ESC or vertical tab carries no speech, the
words around it are still the transcript, and rejecting would lose a good recording over an
invisible byte. They are replaced by a space, so that words they separated stay apart."""
import re
from pathlib import Path

# C0 and C1 controls except tab and newline, DEL, and the Unicode line/paragraph separators
# (str.splitlines breaks lines at several of these: a sentence file must not).
_CONTROL = re.compile(r"[ \t]*[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]+[ \t]*")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_NAMES = {"en": "English", "zh": "Mandarin", "yue": "Cantonese"}


def strip_control(text: str) -> str:
    """`text` with each run of control characters (and the blanks around it) replaced by one space."""
    return _CONTROL.sub(" ", text)


def script_problem(text: str, language: str) -> str | None:
    """Why `text` cannot be spoken as `language` (en: Latin letters and no CJK; zh, yue: Chinese
    characters, Latin words allowed beside them), or None when it fits."""
    if language == "en":
        if _CJK.search(text):
            return f"text is not English (it has CJK characters), an en speaker cannot say it: {text[:60]!r}"
        if not _LATIN.search(text):
            return f"text is not English (no Latin letters), an en speaker cannot say it: {text[:60]!r}"
    elif language in ("zh", "yue") and not _HAN.search(text):
        return f"text has no Chinese characters, a {_NAMES[language]} ({language}) speaker cannot say it: {text[:60]!r}"
    return None


def read_transcript(path: Path) -> str:
    """A clip's transcript, stripped of control characters; ValueError naming the file if not UTF-8."""
    try:
        return strip_control(path.read_text(encoding="utf-8")).strip()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: transcript is not UTF-8 text ({e})") from e
