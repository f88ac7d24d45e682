"""Speed, denoise and silence-trim triplets: one clean source, the other side made by a
replayable augmentation (core/augment.py), on the shared output contract.

speed:   <text, source, faster/slower source>          (SoX tempo or speed)
denoise: <text, source + reverb + noise, source>       (audiomentations; target loudness-matched)
trim:    <text, source with silences, VAD-trimmed>     (Silero VAD)"""
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from core import augment, noise_assets, splits
from core.keys import config_hash, make_key
from core.sample import SAMPLE_VERSION, Sample, prompt_info
from core.tables import clip_transcript, folder_language, read_table
from core.tags import LANGUAGES, check_languages, instruction, speed_tag
from core.text_hygiene import script_problem, strip_control
from pipelines.runner import check_output_dir, execute, quality_stages
from pipelines.triplets import build_voice_bank
from stages.augment_pair import AugmentPair
from stages.base import new_row
from stages.basic_filter import BasicFilter
from stages.loudness import Loudness
from stages.measure_pair import MeasurePair
from stages.source_speech import SourceSpeech
from stages.vad_trim import VadTrim
from tts import texts
from tts.backends import audio_identity, make_backend
from tts.voice_bank import make_voice_bank

EDIT_TYPE = {"speed": "speed", "denoise": "denoise", "trim": "vad"}
TASK = {"speed": "speed_edit", "denoise": "denoise", "trim": "silence_trim"}
# the member holding the clean source, a clone of the text by the voice-bank prompt (generated sources)
CLEAN = {"speed": "src.flac", "denoise": "tgt.flac", "trim": "tgt.flac"}
log = logging.getLogger("lms")


def _h(*parts) -> int:
    return int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def generated_sources(cfg, bank) -> list[dict]:
    """Neutral clones of corpus sentences, texts_per_speaker per voice-bank speaker."""
    out = []
    pools = {lang: texts.pooled_sentence_lists(lang, cfg.texts.extra_dir) for lang in {s.language for s in bank.speakers}}
    for spk in bank.speakers:
        same_lang = [s for s in bank.speakers if s.language == spk.language]
        block = splits.texts_of_split(pools[spk.language], spk, same_lang, cfg.splits)
        start = _h("src", spk.id, cfg.seed) % len(block)
        problem = _prompt_problem(bank, spk.id)
        for k in range(cfg.source.texts_per_speaker):
            src = {"text": block[(start + k) % len(block)], "language": spk.language, "speaker": spk.id,
                   "base_voice": spk.base_voice}
            if problem:
                src["problem"] = problem
            else:
                src["prompt"] = bank.clip(spk.id, "neutral")
            out.append(src)
    return out


def _prompt_problem(bank, speaker_id: str) -> tuple[str, str] | None:
    if not bank.has(speaker_id, "neutral"):
        return "no_prompt", f"speaker {speaker_id} has no neutral prompt clip"
    return bank.problem(speaker_id, "neutral")


def folder_sources(cfg, languages) -> list[dict]:
    """ROOT/<speaker>/<name>.wav|flac with <name>.txt, and ROOT/<speaker>/speaker.json {language}.

    A folder whose speaker.json is unusable keeps its clips as sources with a `problem` (they
    become rejects naming the file), so one bad folder does not stop the others."""
    root = Path(cfg.source.root)
    if not root.is_dir():
        raise ValueError(f"source.root={cfg.source.root}: not a directory")
    if cfg.source.language not in LANGUAGES:
        raise ValueError(f"source.language={cfg.source.language!r}: use one of {', '.join(LANGUAGES)}")
    out, orphans, ignored = [], [], []
    # ROOT/<speaker>/ only: hidden folders (.git, .ipynb_checkpoints) are no speakers
    ignored += [p for p in root.iterdir() if p.is_file() and p.suffix.lower() != ".json"]
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        lang, problem = folder_language(d, cfg.source.language)
        if problem is None and lang not in languages:
            continue
        clips = sorted(p for p in d.iterdir() if p.suffix.lower() in noise_assets.AUDIO_EXT and p.is_file())
        stems = {f.with_suffix("") for f in clips}
        orphans += [t for t in sorted(d.glob("*.txt")) if t.with_suffix("") not in stems]
        ignored += [p for p in d.iterdir() if p.is_dir() or (p.suffix.lower() not in (*noise_assets.AUDIO_EXT, ".txt")
                                                             and p.name != "speaker.json")]
        for f in clips:
            name = str(f)
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:      # bytes that are no UTF-8 name: named as they are, then rejected
                src = {"text": "", "language": lang, "speaker": d.name,
                       "audio_path": os.fsencode(f).decode("utf-8", "backslashreplace"),
                       "problem": ("bad_input", f"{os.fsencode(f)!r}: the file name is not valid UTF-8; rename it")}
                out.append(src)
                continue
            text, bad_text = (None, None) if problem else clip_transcript(f)
            src = {"text": text or "", "language": lang, "speaker": d.name, "audio_path": name}
            if problem or bad_text:
                src["problem"] = problem or bad_text
            out.append(src)
    for what, files in (("transcript(s) without audio beside them", orphans),
                        (f"file(s) or folder(s) that are not ROOT/<speaker>/<name>{{{','.join(noise_assets.AUDIO_EXT)}}} "
                         "(audio elsewhere, other formats, nested folders)", ignored)):
        if files:
            log.warning("source.root=%s: %d %s, ignored: %s%s", root, len(files), what,
                        ", ".join(os.fsencode(t.relative_to(root)).decode("utf-8", "backslashreplace") for t in files[:5]),
                        " ..." if len(files) > 5 else "")
    return out


def file_digest(path) -> str:
    """Which clip a file is, by its size and modification time (read from the file system, not the
    bytes, so planning a large folder reads nothing): a key that holds it is not reused for other audio
    under the same name (a folder edited again after its files were replaced, another folder's names)."""
    try:
        st = os.stat(path)
    except OSError:
        return "unreadable"        # the stage that reads it rejects it, naming why
    return f"{st.st_size}-{st.st_mtime_ns}"


def recording_rows(cfg, key_of=None) -> tuple[list[dict], list[dict]]:
    """A folder of recordings (source=folder): one `recording` row per clip (its JSON, `audio_path` in
    the meta), split by speaker, and the plan rejects of the clips that cannot be used. key_of(src):
    the row's key (default: the recording's own, by path and text; pipeline=edit adds its edit)."""
    # the splits settings too, as every factory key holds them: a refresh after a change of splits.*
    # makes the samples again with their new split instead of copying them with the old one
    key_of = key_of or (lambda src: make_key(["rec", src["speaker"]], {"path": src["audio_path"], "text": src["text"],
                                                                      "content": file_digest(src["audio_path"]),
                                                                      "splits": splits.identity(cfg.splits)}))
    rows, rejects = [], []
    for src in folder_sources(cfg, list(cfg.languages)):
        key = key_of(src)
        if src.get("problem"):
            reason, detail = src["problem"]
            rejects.append({"key": key, "stage": "plan", "reason": reason, "detail": detail, "value": None,
                            "meta": json.dumps(src, ensure_ascii=False)})
            continue
        sample_json = {"task": "recording", "sample_version": SAMPLE_VERSION, "text": src["text"],
                       "language": src["language"], "speaker": src["speaker"],
                       "split": splits.speaker_split(src["speaker"], cfg.splits), "sample_rate": 16000,
                       "durations": {}, "provenance": {"source": "folder"}, "prompt": None,
                       "source": src["audio_path"]}
        rows.append(new_row(key, {"json": sample_json, "audio_path": src["audio_path"]}))
    return rows, rejects


def manifest_sources(cfg, languages) -> list[dict]:
    """A csv/parquet with columns audio_path, text, speaker, language (read as text; empty cells None)."""
    columns = ("audio_path", "text", "speaker", "language")
    t = read_table(cfg.source.path, "source.path", set(columns), text_columns=columns)
    # unknown languages stay in: they become rejects with the reason, like any other bad request
    rows = [{**r, "text": strip_control(r["text"]) if r["text"] else r["text"]}
            for r in ({c: rec[c] for c in columns} for rec in t.to_dict("records"))]
    return [r for r in rows if r["language"] in languages or r["language"] not in LANGUAGES]


def _check_source(src: dict) -> tuple[str, str] | None:
    """(reason, detail) for a source that cannot be used, decided before any audio work."""
    if src.get("problem"):
        return tuple(src["problem"])
    name = src.get("audio_path") or f"speaker {src.get('speaker')}"
    if src.get("language") not in LANGUAGES:
        return "unknown_language", f"{name}: language {src.get('language')!r} is not one of {', '.join(LANGUAGES)}"
    if "audio_path" in src and not src["audio_path"]:
        return "missing_audio_path", f"speaker {src.get('speaker')}, text {src.get('text')!r}: no audio_path"
    if not src.get("speaker"):
        return "missing_speaker", f"{name}: no speaker"
    if not isinstance(src.get("text"), str) or not src["text"].strip():
        return "empty_text", f"{name}: no transcript"
    if bad_script := script_problem(src["text"], src["language"]):
        return "wrong_script", f"{name}: {bad_script}"
    return None


def _plan_variants(cfg, kind: str, src: dict, i: int, assets: dict) -> list[dict]:
    p, seed = cfg.pipeline, _h(kind, src["speaker"], src["text"], cfg.seed)
    if kind == "speed":
        factors = list(p.factors)
        out = []
        for j in range(min(p.factors_per_source, len(factors))):
            f = float(factors[(seed + j) % len(factors)])
            out.append({"edit_info": speed_tag(f, p.more_above), "factor": f,
                        "recipe": [augment.to_dict(augment.SoxTempo(f, p.effect))]})
        return out
    if kind == "denoise":
        rng = np.random.default_rng(seed)
        recipe = []
        if assets["rirs"] and rng.uniform() < p.p_reverb:
            recipe.append(augment.Reverb(assets["rirs"][int(rng.integers(len(assets["rirs"])))]))
        source = assets["noise_sources"][int(rng.integers(len(assets["noise_sources"])))]
        snr = round(float(rng.uniform(*p.snr_db)), 2)
        if source == "color":
            noise = augment.AddNoise("color", snr, seed, f_decay=round(float(rng.uniform(*p.f_decay)), 2))
        else:
            files = assets[source]
            noise = augment.AddNoise(source, snr, seed, noise_id=files[int(rng.integers(len(files)))])
        recipe.append(noise)
        return [{"edit_info": None, "snr_db": snr, "noise_source": source,
                 "recipe": [augment.to_dict(t) for t in recipe]}]
    if kind == "trim":
        rng = np.random.default_rng(seed)
        return [{"edit_info": None, "insert": bool(p.insert), "n_silences": int(rng.integers(p.count[0], p.count[1] + 1)),
                 "seed_int": seed, "recipe": []}]
    raise ValueError(kind)


def noise_sources(cfg, bank) -> list[str]:
    """pipeline.noise_sources, where `auto` (or null) picks those that work for this source: color
    always, babble with source=generated (it is made from the voice bank's speakers), folder when
    pipeline.noise_dir is set."""
    p = cfg.pipeline
    if p.noise_sources is None or p.noise_sources == "auto":
        return ["color", *(["babble"] if bank is not None else []), *(["folder"] if p.noise_dir else [])]
    chosen = [p.noise_sources] if isinstance(p.noise_sources, str) else list(p.noise_sources)
    unknown = set(chosen) - {"color", "babble", "folder"}
    if unknown or not chosen:
        raise ValueError(f"pipeline.noise_sources: unknown {sorted(unknown)}; use auto or a list of "
                         "color, babble, folder")
    return chosen


def _assets(cfg, kind, bank) -> dict:
    p = cfg.pipeline
    if kind != "denoise":
        return {}
    cache = cfg.cache_dir
    sources = noise_sources(cfg, bank)
    a = {"noise_sources": sources,
         "rirs": (noise_assets.folder(p.rir_dir, "pipeline.rir_dir") if p.rir_dir else
                  noise_assets.generated_rirs(cache, cfg.sample_rate, p.n_generated_rirs, cfg.seed))}
    if "folder" in sources:
        if not p.noise_dir:
            raise ValueError("pipeline.noise_sources has 'folder': set pipeline.noise_dir=DIR (e.g. MUSAN noise)")
        a["folder"] = noise_assets.folder(p.noise_dir, "pipeline.noise_dir")
    if "babble" in sources:
        if bank is None:
            raise ValueError(f"babble noise is made from the voice bank's speakers: with source={cfg.source.kind} "
                             "drop babble from pipeline.noise_sources (or use pipeline.noise_sources=auto)")
        clips = [bank.clip(s.id, "neutral")["path"] for s in bank.speakers if _prompt_problem(bank, s.id) is None]
        a["babble"] = noise_assets.babble(cache, clips, cfg.sample_rate, p.n_babble, p.babble_talkers, cfg.seed)
    return a


def run(cfg, kind: str):
    check_output_dir(cfg.output_dir)
    languages = check_languages(cfg.languages)
    if kind == "speed":
        augment.require_sox()
        if any(float(f) <= 0 or float(f) == 1.0 for f in cfg.pipeline.factors):
            raise ValueError(f"pipeline.factors must be positive and not 1.0: {list(cfg.pipeline.factors)}")
    if kind == "trim" and float(cfg.pipeline.get("align_s") or 0.0) < 0:
        raise ValueError(f"pipeline.align_s={cfg.pipeline.align_s}: 0 (gaps of exactly padding_s) or a block "
                         "length in seconds (0.12, the codec's token block)")
    bank = None
    if cfg.source.kind == "generated":
        if cfg.tts.kind == "http":  # bad request settings: one error line now, not a failure in every worker
            make_backend(cfg.tts, cfg.sample_rate)
        bank = make_voice_bank(cfg.voice_bank, languages, cfg.sample_rate, cfg.seed)
        build_voice_bank(cfg, bank, [])
        sources = generated_sources(cfg, bank)
    elif cfg.source.kind == "folder":
        sources = folder_sources(cfg, languages)
    elif cfg.source.kind == "manifest":
        sources = manifest_sources(cfg, languages)
    else:
        raise ValueError(f"unknown source.kind {cfg.source.kind!r}; use generated, folder or manifest")
    if not sources:
        raise ValueError(f"no source speech for languages {languages}")
    assets = _assets(cfg, kind, bank)
    pipe_cfg = OmegaConf.to_container(cfg.pipeline, resolve=True)
    if kind == "denoise":  # the resolved list: `auto` with generated sources keys as [color, babble] did
        pipe_cfg["noise_sources"] = assets["noise_sources"]
    tts_cfg = OmegaConf.to_container(cfg.tts, resolve=True)
    identity = {"pipeline": {k: v for k, v in pipe_cfg.items() if k != "name"}, "sr": cfg.sample_rate,
                "quality": OmegaConf.to_container(cfg.quality), "splits": splits.identity(cfg.splits),
                "loudness": OmegaConf.to_container(cfg.loudness), "bank": bank.id if bank else None,
                "tts": audio_identity(tts_cfg)}
    chash = config_hash(OmegaConf.to_container(cfg, resolve=True))
    rows, pre_rejects, seen = [], [], set()

    def plan_reject(key, reason, detail, meta):
        pre_rejects.append({"key": key, "stage": "plan", "reason": reason, "detail": detail, "value": None,
                            "meta": json.dumps(meta, ensure_ascii=False, default=str)})

    for i, src in enumerate(sources):
        problem = _check_source(src)
        if problem:  # at scale a bad request is a reject, not the end of the run
            plan_reject(make_key([kind, src.get("speaker") or "unknown"], {"source": src, "seed": cfg.seed}),
                        *problem, src)
            continue
        # planned sources already respect the splits; given recordings are checked by text hash
        split, ok = splits.assign(src["speaker"], src["text"], cfg.splits) if "audio_path" in src else \
            (splits.speaker_split(src["speaker"], cfg.splits, src.get("base_voice")), True)
        for v in _plan_variants(cfg, kind, src, i, assets):
            key = make_key([kind, src["speaker"]], {"text": src["text"], "speaker": src["speaker"],
                                                    "source": src.get("audio_path"), "variant": v,
                                                    "stages": identity, "seed": cfg.seed})
            meta = {**src, **v, "edit_type": EDIT_TYPE[kind], "seed": cfg.seed, "config_hash": chash,
                    "split": split, "instruction": instruction(EDIT_TYPE[kind], v["edit_info"], src["text"])}
            if not ok:
                plan_reject(key, "split_conflict",
                            f"text belongs to another split than speaker {src['speaker']} ({split})", meta)
                continue
            if key in seen:  # a manifest listing one recording with the same text twice
                plan_reject(key, "duplicate", f"{src.get('audio_path')}: listed again with the same text", meta)
                continue
            seen.add(key)
            rows.append(new_row(key, meta))
    stages = [(SourceSpeech, {"sample_rate": cfg.sample_rate, "max_duration_s": cfg.filters.max_duration_s,
                              "tts": tts_cfg if cfg.source.kind == "generated" else None}),
              (AugmentPair, pipe_cfg)]
    if kind == "trim":
        stages.append((VadTrim, pipe_cfg))
    stages += [(Loudness, {**OmegaConf.to_container(cfg.loudness), "mode": "independent"}), (MeasurePair, {}),
               (BasicFilter, OmegaConf.to_container(cfg.filters)), *quality_stages(cfg)]
    extra_keys = {"speed": ("factor",), "denoise": ("snr_db", "noise_source"),
                  "trim": ("inserted_silences_s", "vad_segments_s")}[kind]

    def to_sample(row):
        m = row["meta"]
        members = {k: v for k, v in row["members"].items() if k in ("src.flac", "tgt.flac", "prompt.flac")}
        sample = {"task": TASK[kind], "sample_version": SAMPLE_VERSION, "edit_type": EDIT_TYPE[kind],
                  "edit_info": m["edit_info"], "text": m["text"], "split": m["split"], "quality": m.get("quality", {}),
                  "instruction": m["instruction"], "speaker": m["speaker"], "language": m["language"],
                  "durations": m["durations"], "sample_rate": cfg.sample_rate, "recipe": m["recipe"],
                  "loudness": m["loudness"], "acoustics": m["acoustics"],
                  "source": m.get("audio_path") or {"prompt": m["prompt"]},
                  # a user's recording has no prompt
                  "prompt": prompt_info(members, (m.get("prompt") or {}).get("text"), CLEAN[kind]),
                  **{k: m.get(k) for k in extra_keys},
                  "provenance": {"config_hash": m["config_hash"], "seed": m["seed"], "source": cfg.source.kind,
                                 "voice_bank": bank.id if bank else None}}
        return Sample(row["key"], sample, members)

    return execute(cfg, cfg.pipeline.name, rows, stages, to_sample, pre_rejects, {"sources": len(sources)})
