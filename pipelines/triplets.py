"""Emotion and speaking-style triplets <text, neutral clone, emotional/styled clone>.

Per speaker and text: the neutral prompt clip gives src, the same speaker's emotional or styled
prompt clip (plus the upstream instruction) gives tgt. Same text, same speaker, one attribute."""
import hashlib
import json
import logging

import numpy as np

from omegaconf import OmegaConf

from core import splits
from core.keys import config_hash, make_key
from core.sample import SAMPLE_VERSION, Sample, prompt_info
from core.tags import EMOTIONS, STYLES, check_languages, check_tags, instruction
from core.text_hygiene import script_problem
from pipelines.runner import check_output_dir, execute, quality_stages, stream_rows
from stages.base import new_row
from stages.basic_filter import BasicFilter
from stages.clone_pair import ClonePair
from stages.measure_pair import MeasurePair
from scorers.margin import MarginScorer
from stages.loudness import Loudness
from stages.margin_score import MarginScore
from stages.margin_select import MarginSelect
from stages.render_prompts import RenderPrompts
from stages.speaker_similarity import SpeakerSimilarity
from tts import texts
from tts.backends import audio_identity, make_backend
from tts.voice_bank import make_voice_bank

log = logging.getLogger("lms")


def build_voice_bank(cfg, bank, tags):
    """Render the bank's missing clips on Ray (a no-op when cached or for a user's folder)."""
    jobs = bank.missing(tags)
    if not jobs:
        return
    print(f"voice bank {bank.id}: rendering {len(jobs)} prompt clips (cached for later runs)", flush=True)
    rows = [new_row(f"{j['speaker']}-{j['tag']}", j) for j in jobs]
    render = (RenderPrompts, {"sample_rate": cfg.sample_rate, "frame_period": cfg.tts.frame_period,
                              "cache_dir": cfg.tts.cache_dir})
    results, close = stream_rows(cfg.ray, rows, [render], max_blocks=len(rows))
    try:
        results = list(results)
        failed = [r for r in results if r["reject"]]
    finally:
        close()
    if failed:
        raise RuntimeError(f"voice bank rendering failed for {len(failed)} clips, first: {failed[0]['reject']}")
    unusable = [r["meta"] for r in results if r["meta"].get("voicing_rejected")]
    for m in unusable:
        print(f"voice bank {bank.id}: {m['speaker']}/{m['tag']} rendered, but its voicing is rejected (its clones "
              f"will be rejects): {m['voicing_rejected'][:200]}", flush=True)


def rotation(cfg, tag: str, speaker: str, n: int) -> int:
    """Where a speaker starts in its split's texts of a tag (texts.rotate_per_speaker), 0 when off."""
    if not cfg.texts.get("rotate_per_speaker", False):
        return 0
    return int(hashlib.sha1(f"{tag}/{speaker}/{cfg.seed}".encode()).hexdigest()[:8], 16) % n


def window(cfg, generations: list[list[list[str]]], tag: str, speaker, same_lang: list) -> list[str]:
    """The texts a speaker says of a tag, in order: each generation's texts of the speaker's split, rotated
    on their own, after the earlier generations' (texts.later_dirs), so texts_per_tag beyond a
    generation's end reaches into the next and every earlier text keeps its place."""
    out = []
    for gen in generations:
        sents = splits.texts_of_split(gen, speaker, same_lang, cfg.splits)
        if sents:
            r = rotation(cfg, tag, speaker.id, len(sents))
            out += sents[r:] + sents[:r]
    return out


def plan(cfg, edit_type: str, bank, tags, languages) -> tuple[list[dict], list[dict]]:
    tts_identity = audio_identity(OmegaConf.to_container(cfg.tts))
    stage_identity = {"tts": tts_identity, "sr": cfg.sample_rate, "bank": bank.id,
                      "loudness": OmegaConf.to_container(cfg.loudness),
                      "quality": OmegaConf.to_container(cfg.quality), "splits": splits.identity(cfg.splits),
                      "margin": OmegaConf.to_container(cfg.margin) | {
                          "scorer_version": MarginScorer.load(cfg.margin.scorer).version if cfg.margin.enabled else None},
                      "filters": OmegaConf.to_container(cfg.filters)}
    chash = config_hash(OmegaConf.to_container(cfg, resolve=True))
    per_tag = cfg.texts_per_tag or cfg.pipeline.texts_per_tag
    corpus = {(l, t): texts.sentence_generations(l, t, cfg.texts.extra_dir, cfg.texts.get('shipped', True),
                                                 cfg.texts.get('later_dirs'))
              for l in languages for t in tags}
    # the speaker's split decides which texts it speaks, so texts do not cross splits; each speaker's
    # window of a tag is cut once, not once per text
    windows = {(tag, spk.id): window(cfg, corpus[(spk.language, tag)], tag, spk,
                                     [s for s in bank.speakers if s.language == spk.language])
               for tag in tags for spk in bank.speakers}
    rows, rejects = [], []
    for i in range(per_tag):
        for tag in tags:
            for spk in bank.speakers:
                sents = windows[(tag, spk.id)]
                if i >= len(sents):
                    continue
                text = sents[i]
                key = make_key([tag, spk.id], {"text": text, "speaker": spk.id, "tag": tag,
                                               "stages": stage_identity, "seed": cfg.seed})
                meta = {"text": text, "language": spk.language, "speaker": spk.id, "gender": spk.gender,
                        "edit_type": edit_type, "edit_info": tag, "instruction": instruction(edit_type, tag, text),
                        "base_voice": spk.base_voice, "seed": cfg.seed, "config_hash": chash}
                meta["split"] = splits.speaker_split(spk.id, cfg.splits, spk.base_voice)
                if bad_script := script_problem(text, spk.language):  # a user's sentence in another script
                    problem = "wrong_script", f"{tag} sentence for speaker {spk.id}: {bad_script}"
                elif not bank.has(spk.id, "neutral") or not bank.has(spk.id, tag):
                    problem = "no_prompt", f"speaker {spk.id} has no neutral or {tag} prompt clip"
                else:
                    problem = bank.problem(spk.id, "neutral") or bank.problem(spk.id, tag)
                if problem:
                    rejects.append({"key": key, "stage": "plan", "reason": problem[0], "detail": problem[1],
                                    "value": None, "meta": json.dumps(meta, ensure_ascii=False)})
                    continue
                src, tgt = bank.clip(spk.id, "neutral"), bank.clip(spk.id, tag)
                meta.update(prompt_src=src, prompt_tgt=tgt, intensity=tgt["intensity"])
                rows.append(new_row(key, meta))
    return rows, rejects


def run(cfg, edit_type: str):
    check_output_dir(cfg.output_dir)
    languages = check_languages(cfg.languages)
    tags = check_tags(cfg.emotions, EMOTIONS, "emotions") if edit_type == "emotion" else \
        check_tags(cfg.styles, STYLES, "styles")
    for l in languages:  # texts exist for every tag before any work starts
        for t in tags:
            texts.sentence_generations(l, t, cfg.texts.extra_dir, cfg.texts.get('shipped', True),
                                       cfg.texts.get('later_dirs'))
    thresholds = OmegaConf.to_container(cfg.margin.thresholds)
    MarginSelect.validate(thresholds, EMOTIONS + STYLES)
    if cfg.margin.enabled:
        MarginScorer.load(cfg.margin.scorer)  # a missing artifact is an error before any work
    bank = make_voice_bank(cfg.voice_bank, languages, cfg.sample_rate, cfg.seed)
    backend_versions = make_backend(cfg.tts, cfg.sample_rate).versions() if cfg.tts.kind == "http" else None
    build_voice_bank(cfg, bank, tags)
    rows, pre_rejects = plan(cfg, edit_type, bank, tags, languages)
    from tts.engine import LocalEngine
    engine_versions = backend_versions or LocalEngine.versions()
    tts_cfg = OmegaConf.to_container(cfg.tts, resolve=True)
    stages = [
        (ClonePair, {"sample_rate": cfg.sample_rate, "tts": tts_cfg}),
        # one gain for both clips: the level difference is part of the edit (shout, whisper)
        (Loudness, {**OmegaConf.to_container(cfg.loudness), "mode": "pair"}),
        (MeasurePair, {}),
        (BasicFilter, OmegaConf.to_container(cfg.filters)),
        *quality_stages(cfg),
    ]
    scorer_version = None
    if cfg.margin.enabled:
        scorer_version = MarginScorer.load(cfg.margin.scorer).version
        stages += [(SpeakerSimilarity, {}), (MarginScore, {"artifact": cfg.margin.scorer}),
                   (MarginSelect, {"thresholds": thresholds, "known_tags": list(EMOTIONS + STYLES)})]

    def to_sample(row):
        m = row["meta"]
        members = {k: row["members"][k] for k in ("src.flac", "tgt.flac", "prompt.flac")}
        sample = {
            "task": f"{edit_type}_edit", "sample_version": SAMPLE_VERSION, "edit_type": edit_type,
            "edit_info": m["edit_info"], "split": m["split"],
            "text": m["text"], "instruction": m["instruction"], "speaker": m["speaker"], "gender": m["gender"],
            "language": m["language"], "intensity": m["intensity"], "margin": m.get("margin"),
            "durations": m["durations"], "sample_rate": cfg.sample_rate,
            "prompts": {"src": m["prompt_src"], "tgt": m["prompt_tgt"]},
            # the neutral clip src was cloned from: `text` in its voice is src.flac
            "prompt": prompt_info(members, m["prompt_src"]["text"], "src.flac"),
            "acoustics": m["acoustics"], "speaker_sim": m.get("speaker_sim"), "loudness": m["loudness"],
            "quality": m.get("quality", {}),
            "provenance": {"config_hash": m["config_hash"], "seed": m["seed"], "tts": tts_cfg["kind"],
                           "engine": engine_versions, "voice_bank": bank.id, "margin_scorer": scorer_version},
        }
        return Sample(row["key"], sample, members)

    return execute(cfg, cfg.pipeline.name, rows, stages, to_sample, pre_rejects,
                   {"voice_bank": bank.id, "tags": tags, "languages": languages, "margin_scorer": scorer_version},
                   report=margin_report if cfg.margin.enabled else None)


def margin_report(manifest: list[dict], rejects: list[dict]) -> tuple[dict, list[str]]:
    """Score histogram (integer bins 1..10) and kept fraction per tag, for run.json and the summary."""
    scores: dict[str, list[tuple[float, bool]]] = {}
    for m in manifest:
        scores.setdefault(m["edit_info"], []).append((m["margin"], True))
    for r in rejects:
        if r.get("reason") == "low_margin":
            tag = json.loads(r["meta"])["edit_info"]
            scores.setdefault(tag, []).append((r["value"], False))
    out, lines = {}, ["   margin by tag (histogram of scores 1..10 | kept fraction):"]
    for tag, v in sorted(scores.items()):
        hist = np.histogram([s for s, _ in v], bins=np.arange(1, 11.01))[0].tolist()
        kept = float(np.mean([k for _, k in v]))
        out[tag] = {"histogram_1_to_10": hist, "kept_fraction": round(kept, 3), "n": len(v),
                    "median": round(float(np.median([s for s, _ in v])), 2)}
        lines.append(f"     {tag:12s} {' '.join(f'{h:3d}' for h in hist)} | {kept:.2f}")
    return {"margin": out}, lines
