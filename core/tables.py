"""User-supplied tables (labels, source manifests: parquet or csv, with required columns) and the
speaker.json of speaker folders."""
import json
from pathlib import Path

import pandas as pd

from core.tags import LANGUAGES
from core.text_hygiene import read_transcript


def read_table(path, what: str, required: set[str], text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read `path` (named `what` in errors, e.g. 'labels') and check its required columns.

    `text_columns` are read as text whatever they hold (a speaker id 1034 is "1034", not a number),
    with empty cells as None."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{what}={path}: no such file")
    try:
        t = pd.read_parquet(p) if p.suffix == ".parquet" else \
            pd.read_csv(p, dtype={c: str for c in text_columns}, encoding="utf-8")
    except (ValueError, OSError) as e:  # UnicodeDecodeError and parser errors are ValueErrors
        raise ValueError(f"{what}={path}: cannot read the table ({type(e).__name__}: {e})") from e
    missing = set(required) - set(t.columns)
    if missing:
        raise ValueError(f"{what}={path}: missing columns {sorted(missing)}")
    for c in text_columns:
        if c in t.columns:
            t[c] = pd.Series([text_cell(v) for v in t[c]], index=t.index, dtype=object)
    return t


def text_cell(v) -> str | None:
    """A table cell as text: None for an empty or missing cell."""
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return None
    s = str(v)
    return s if s.strip() else None


class UnknownLanguage(ValueError):
    """speaker.json names a language this factory does not speak."""


def read_speaker_json(path: Path, default_language: str | None = None) -> dict:
    """speaker.json as a dict with a known "language" (default_language when it names none);
    ValueError naming the file when it is missing, not a JSON object or names another language."""
    if not path.is_file():
        if default_language is None:
            raise ValueError(f"{path}: missing speaker.json (language, gender)")
        return {"language": default_language}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # invalid JSON or not UTF-8
        raise ValueError(f"{path}: invalid speaker.json ({e})") from e
    if not isinstance(info, dict):
        raise ValueError(f"{path}: speaker.json must be a JSON object like {{\"language\": \"en\"}}, "
                         f"not a {type(info).__name__}")
    lang = info.get("language", default_language)
    if lang not in LANGUAGES:
        raise UnknownLanguage(f"{path}: unknown language {lang!r} (use one of {', '.join(LANGUAGES)})")
    return {**info, "language": lang}


def folder_language(folder: Path, default_language: str) -> tuple[str | None, tuple[str, str] | None]:
    """A speaker folder's language, or the (reason, detail) reject of all its clips: one folder's
    unusable speaker.json makes its clips rejects, not the end of the run."""
    try:
        return read_speaker_json(folder / "speaker.json", default_language)["language"], None
    except UnknownLanguage as e:
        return None, ("unknown_language", str(e))
    except ValueError as e:
        return None, ("bad_speaker_json", str(e))


def clip_transcript(clip: Path) -> tuple[str | None, tuple[str, str] | None]:
    """The transcript beside a clip (None when there is none), or the (reason, detail) reject."""
    txt = clip.with_suffix(".txt")
    if not txt.is_file():
        return None, None
    try:
        return read_transcript(txt), None
    except ValueError as e:
        return None, ("bad_transcript", str(e))
