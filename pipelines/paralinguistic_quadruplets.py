"""Paralinguistic quadruplets (the NVSpeech recipe of Step-Audio-EditX):
<text without tags, audio without tags, text with tags, audio with tags (the 'nv_source')>.

tgt.flac is the tagged recording: an NVSpeech-style corpus file (`pipeline.corpus=PATH`, formats in
core/nvspeech.py and docs/paralinguistic.md), or by default an utterance rendered by the local
engine for a voice-bank speaker with each tag's vocalization at its place (tts/vocalizations.py).
src.flac is a zero-shot clone of the tag-free text prompted by that recording. sub.flac is the
seed's substitution baseline: the tags spoken as words ([Laughter] -> "haha"), same prompt."""
import hashlib

from omegaconf import OmegaConf

from core import nvspeech, splits
from core.keys import config_hash, make_key
from core.sample import SAMPLE_VERSION, Sample, prompt_info
from core.tags import PARALINGUISTIC_TAGS, check_languages, check_tags, instruction
from core.text_hygiene import script_problem
from pipelines.runner import check_output_dir, execute, quality_stages
from pipelines.triplets import build_voice_bank
from stages.base import new_row
from stages.basic_filter import BasicFilter
from stages.clone_tag_free import CloneTagFree
from stages.loudness import Loudness
from stages.measure_pair import MeasurePair
from stages.nv_source import NvSource
from stages.speaker_similarity import SpeakerSimilarity
from stages.substitution_level import SubstitutionLevel
from tts import texts, vocalizations
from tts.backends import audio_identity, make_backend
from tts.voice_bank import GeneratedVoiceBank, make_voice_bank

# Where each tag may go in a sentence of the embedded corpus (one is picked per utterance).
PLACES = {
    "Breathing": ("start", "clause"), "Laughter": ("end", "clause"), "Sigh": ("start", "end"),
    "Uhm": ("start", "clause"), "Confirmation-en": ("start",), "Surprise-oh": ("start",),
    "Surprise-ah": ("start",), "Surprise-wa": ("start",), "Question-ei": ("start", "end"),
    "Dissatisfaction-hnn": ("start", "end"),
}


def _h(*parts) -> int:
    return int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _utterance_meta(text_with_tags: str, language: str, speaker: str, substitution: bool) -> dict:
    return {"text": nvspeech.strip_tags(text_with_tags), "text_with_tags": text_with_tags,
            "tags": nvspeech.tags_in(text_with_tags), "language": language, "speaker": speaker,
            "substitution_text": nvspeech.substitute(text_with_tags, language) if substitution else None}


def generated_utterances(cfg, bank, tags: list[str], speakers: list) -> list[dict]:
    """texts_per_tag corpus sentences per tag and speaker, each with the tag put at a natural place."""
    per_tag = cfg.texts_per_tag or cfg.pipeline.texts_per_tag
    out = []
    pools = {lang: texts.pooled_sentence_lists(lang, cfg.texts.extra_dir) for lang in {s.language for s in speakers}}
    for spk in speakers:
        # the speaker speaks only its split's blocks of texts, so no text crosses splits
        pool = splits.texts_of_split(pools[spk.language], spk, [s for s in bank.speakers if s.language == spk.language],
                                     cfg.splits)
        for tag in tags:
            start = _h("nv", spk.id, tag, cfg.seed) % len(pool)
            for k in range(per_tag):
                sentence = pool[(start + 11 * k) % len(pool)]
                places = [p for p in PLACES[tag] if p != "clause" or nvspeech.has_clause(sentence)]
                place = places[_h("place", spk.id, tag, k, cfg.seed) % len(places)]
                tagged = nvspeech.insert_tag(sentence, tag, place, spk.language)
                u = _utterance_meta(tagged, spk.language, spk.id, cfg.pipeline.substitution)
                u.update(gender=spk.gender, base_voice=spk.base_voice, place=place,
                         split=splits.speaker_split(spk.id, cfg.splits, spk.base_voice),
                         render_seed=_h("render", spk.id, tagged, cfg.seed),
                         # a generated speaker renders with its timbre; a folder bank's speaker with
                         # the voicing estimated from its neutral clip
                         timbre=spk.timbre.to_dict() if isinstance(bank, GeneratedVoiceBank) else None,
                         prompt_neutral=bank.clip(spk.id, "neutral") if bank.has(spk.id, "neutral")
                         and bank.problem(spk.id, "neutral") is None else None)
                out.append(u)
    return out


def corpus_utterances(cfg, languages) -> tuple[list[dict], list[dict]]:
    """A real corpus: usable utterances, and rejects (with their reason) for the others."""
    rows, rejects = [], []
    for u in nvspeech.read_corpus(cfg.pipeline.corpus, cfg.pipeline.corpus_language):
        bad = nvspeech.check_utterance(u)
        if bad is None and u["language"] not in languages:
            continue  # another language than this run's
        split, ok = splits.assign(u["speaker"], nvspeech.strip_tags(u["text"] or ""), cfg.splits)
        if bad is None and not ok:
            bad = "split_conflict", f"{u['audio_path']}: its text belongs to another split than speaker {u['speaker']}"
        if bad:
            rejects.append({"key": make_key(["nv", u["speaker"]], {"audio": u["audio_path"], "seed": cfg.seed}),
                            "stage": "nv_corpus", "reason": bad[0], "detail": bad[1], "value": None,
                            "meta": ""})
            continue
        rows.append({**_utterance_meta(u["text"], u["language"], u["speaker"], cfg.pipeline.substitution),
                     "audio_path": u["audio_path"], "base_voice": None, "split": split})
    return rows, rejects


def stages(cfg) -> list[tuple[type, dict]]:
    tts_cfg = OmegaConf.to_container(cfg.tts, resolve=True)
    loud = OmegaConf.to_container(cfg.loudness)
    out = [
        (NvSource, {"sample_rate": cfg.sample_rate, "max_duration_s": cfg.filters.max_duration_s,
                    "frame_period": cfg.tts.frame_period,
                    "cache_dir": cfg.tts.cache_dir, "pause_s": list(cfg.pipeline.pause_s)}),
        (CloneTagFree, {"sample_rate": cfg.sample_rate, "tts": tts_cfg, "cut_events": cfg.pipeline.cut_events}),
        # one gain for src and tgt (and sub): the vocalizations' level is part of the edit
        (Loudness, {**loud, "mode": "pair"}),
        (MeasurePair, {}),
        (BasicFilter, OmegaConf.to_container(cfg.filters)),
        *quality_stages(cfg),
        (SpeakerSimilarity, {}),
    ]
    if cfg.pipeline.substitution:
        out.insert(3, (SubstitutionLevel, {}))
    return out


def plan(cfg, languages) -> tuple[list[dict], list[dict], object]:
    """Rows to run, rejects decided before any audio work, and the voice bank (None for a corpus)."""
    p = cfg.pipeline
    tags = check_tags(p.tags, PARALINGUISTIC_TAGS, "paralinguistic tags")
    pipe_cfg = OmegaConf.to_container(p, resolve=True)
    identity = {"pipeline": {k: pipe_cfg[k] for k in ("pause_s", "substitution", "cut_events")}, "sr": cfg.sample_rate,
                "tts": audio_identity(OmegaConf.to_container(cfg.tts)),
                "loudness": OmegaConf.to_container(cfg.loudness), "filters": OmegaConf.to_container(cfg.filters),
                "quality": OmegaConf.to_container(cfg.quality), "splits": splits.identity(cfg.splits)}
    bank, rejects = None, []
    if p.corpus:
        utterances, rejects = corpus_utterances(cfg, languages)
        if not utterances and not rejects:
            raise ValueError(f"pipeline.corpus={p.corpus}: no utterances in languages {languages}")
    else:
        for lang in languages:  # the texts exist before any work starts
            texts.corpus(lang)
        bank = make_voice_bank(cfg.voice_bank, languages, cfg.sample_rate, cfg.seed)
        speakers = bank.speakers
        if p.speakers:
            unknown = sorted(set(p.speakers) - {s.id for s in bank.speakers})
            if unknown:
                raise ValueError(f"pipeline.speakers: unknown {unknown} for languages {languages}; "
                                 f"known: {', '.join(s.id for s in bank.speakers)}")
            speakers = [s for s in bank.speakers if s.id in set(p.speakers)]
        build_voice_bank(cfg, bank, [])
        identity.update(bank=bank.id, vocalizations=vocalizations.VERSION)
        utterances = generated_utterances(cfg, bank, tags, speakers)
    chash = config_hash(OmegaConf.to_container(cfg, resolve=True))
    rows, seen = [], set()
    for u in utterances:
        key = make_key([u["tags"][0], u["speaker"]], {"text": u["text_with_tags"], "speaker": u["speaker"],
                                                      "audio": u.get("audio_path"), "stages": identity,
                                                      "seed": cfg.seed})
        if key in seen:  # a manifest listing one recording twice
            continue
        seen.add(key)
        if bad_script := script_problem(u["text"], u["language"]):  # a transcript or sentence in another script
            rejects.append({"key": key, "stage": "plan", "reason": "wrong_script",
                            "detail": f"{u.get('audio_path') or 'speaker ' + u['speaker']}: {bad_script}",
                            "value": None, "meta": ""})
            continue
        rows.append(new_row(key, {**u, "edit_type": "paralinguistic", "seed": cfg.seed, "config_hash": chash,
                                  "instruction": instruction("paralinguistic", None, text=u["text"],
                                                             new_text=u["text_with_tags"])}))
    return rows, rejects, bank


def sample_builder(cfg, bank):
    """to_sample(row) -> Sample for rows that went through stages(cfg)."""
    tts_cfg = OmegaConf.to_container(cfg.tts, resolve=True)
    from tts.engine import LocalEngine
    local_versions = LocalEngine.versions()
    engine_versions = make_backend(cfg.tts, cfg.sample_rate).versions() if cfg.tts.kind == "http" else local_versions

    def to_sample(row):
        m = row["meta"]
        members = {k: v for k, v in row["members"].items() if k in ("src.flac", "tgt.flac", "prompt.flac")}
        durations = dict(m["durations"])
        substitution = None
        if m.get("substitution_text") is not None:
            # [Breathing] alone has no word: its substitution is the tag-free clone itself
            members["sub.flac"] = row["members"].get("sub.flac") or members["src.flac"]
            durations["sub"] = m.get("sub_duration_s", durations["src"])
            substitution = {"text": m["substitution_text"], "member": "sub.flac"}
        sample = {
            "task": "paralinguistic_edit", "sample_version": SAMPLE_VERSION, "edit_type": "paralinguistic",
            "edit_info": m["tags"], "split": m["split"],
            "text": m["text"], "text_with_tags": m["text_with_tags"], "instruction": m["instruction"],
            "events": m["events"], "speaker": m["speaker"], "gender": m.get("gender"), "language": m["language"],
            "durations": durations, "sample_rate": cfg.sample_rate,
            "prompts": {"src": {"member": "tgt.flac", "text": m["text"], "events_cut": m["prompt_events_cut"]},
                        "neutral": m.get("prompt_neutral")},
            # the speaker's neutral voice-bank clip (rendered rows; it gave tgt.flac its voice), and
            # the tag-free text in that voice; a real corpus's recording has none
            "prompt": prompt_info(members, (m.get("prompt_neutral") or {}).get("text"), "src.flac"),
            "source": m.get("audio_path") or "rendered", "substitution": substitution,
            "acoustics": m["acoustics"], "speaker_sim": m.get("speaker_sim"), "loudness": m["loudness"],
            "quality": m.get("quality", {}),
            "provenance": {"config_hash": m["config_hash"], "seed": m["seed"], "tts": tts_cfg["kind"],
                           "engine": engine_versions,
                           "renderer": {**local_versions, "vocalizations": vocalizations.VERSION} if bank else None,
                           "voice_bank": bank.id if bank else None,
                           "corpus": cfg.pipeline.corpus},
        }
        return Sample(row["key"], sample, members)

    return to_sample


def run(cfg):
    check_output_dir(cfg.output_dir)
    languages = check_languages(cfg.languages)
    rows, pre_rejects, bank = plan(cfg, languages)
    return execute(cfg, cfg.pipeline.name, rows, stages(cfg), sample_builder(cfg, bank), pre_rejects,
                   {"voice_bank": bank.id if bank else None, "corpus": cfg.pipeline.corpus,
                    "tags": list(cfg.pipeline.tags), "languages": languages})
