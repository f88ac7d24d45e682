"""Benchmark a trained audio-LLM editor on held-out speakers (issue 17's table).

    RAY_AUTH_MODE=disabled OMP_NUM_THREADS=1 python bench/editor_llm_eval.py --llm DIR \
        --data outputs/emotion_triplets,outputs/style_triplets,outputs/speed_triplets,outputs/denoise_triplets,outputs/trim_triplets \
        --split test --per-task N --out bench/results/editor_llm/eval.json

Protocol
- Each release of --data (comma-separated, read with core.reader.Release) is read at --split (default
  test; a release with no sample there falls back to validation, with a note). A missing or unreadable
  release is skipped with a note. Per task (emotion_edit, style_edit, speed_edit, denoise,
  silence_trim) a seeded random pick of --per-task samples is edited with Editor.edit_many
  (edit_type/edit_info from the sample, the sample's text, --seed, --temperature, --top-p; guided as the
  LLM's inference.json says unless --guidance/--guided-iterations say otherwise). Emotion and style
  use n_iter=2; every other task n_iter=1. paralinguistic_edit samples are not in the table: skipped.
- Every source is also put through the codec round trip (decode(encode(src)) with the source as the
  voice reference, the editor's own codec and vocoder): the floor an editor that changes nothing gets.
- An empty edit (the LLM ended the chain without a whole block) is scored as the worst value of each
  metric: margin 1 (the scorer's floor), speaker similarity 0, WER 1, duration ratio 0,
  silence removed 0, SNR of a silent clip (0 dB).

Metrics (all clips 16 kHz; medians over clips unless said)
- margin: the shipped scorer (scorers.margin.MarginScorer.load()) on (src, edited), with the
  acoustics measured exactly as the factory measures (src, tgt): stages.measure_pair.clip_stats of each
  clip with the sample's text and language, speaker_sim = resemblyzer similarity(src, edited), tag =
  edit_info. Pass: median >= 6 and >= 60 % of edits >= 6. For reference also the data's own (src, tgt)
  margin and the round trip's (src, roundtrip(src)) margin.
- second iteration: iteration 2 scored the same way against the original src. Pass: its median
  margin > iteration 1's.
- speed: the requested duration ratio is 1/factor (factor = the sox tempo factor of the sample);
  error = |(len(edited)/len(src)) * factor - 1| (whole-clip durations). Pass: median error <= 0.10;
  also reported: the fraction within 0.10, and the data's own tgt/src error. The Editor ends a speed
  edit within its duration_window of the length the tag was taught (--duration-window off: where the
  model alone ends it; the report records which).
- silence trim: non-speech(x) = duration - total length of Silero VAD segments, found exactly as
  stages.vad_trim finds them (min_silence_ms 100, speech_pad_ms 30, edge refinement).
  removed_vad = (ns(src) - ns(edited)) / (ns(src) - ns(tgt)) and removed_duration = (len(src) -
  len(edited)) / (len(src) - len(tgt)), each clipped to [0, 1]: the share of the silence the data's own
  trim removed that the edit removed (VAD on every side, so its padding cancels). silence_removed =
  min of the two: an edit must both lose the non-speech and get shorter (babble that the VAD calls
  speech everywhere is not a trim). Clips where ns(src) - ns(tgt) < 0.05 s are skipped (nothing to
  remove). The JSON's inserted_silences_s total is reported beside it, and speech_kept = VAD speech
  of the edit / of the src (over-trimming that cuts speech shows there, not in the pass rule).
  Pass: median silence_removed >= 0.8.
- denoise: tgt.flac is the clean reference, src.flac the noisy input. SNR(x) = 10 log10(|ref|^2 /
  |g x - ref|^2) after aligning x to ref (lag from the 10 ms energy envelopes within +-0.3 s, refined
  by waveform cross-correlation within +-10 ms; then crop/pad to len(ref)) and a least-squares gain g.
  Reported: SNR(src), SNR(edited), the gains, the improvement; the ceiling SNR(roundtrip(tgt)) (the
  codec's vocoder keeps no waveform phase, so the waveform SNR of any resynthesis is capped by it, near
  0 dB); and the same numbers for a phase-free STFT-magnitude SNR (512-sample Hann frames, 10 ms hop,
  same formula on magnitudes), a diagnostic check row. Pass: median waveform SNR improvement >= 10 dB.
  Also a phase-free pause SNR (pause_snr: the speech level over the pause level of x, the clean
  reference saying which 20 ms frames are which): did the noise between the words go? With its gain,
  the source's value and the ceiling (roundtrip(tgt)), a diagnostic check row. Pause frames are 40 ms
  or more from speech: a resynthesis aligns only to about 10 ms, and a word's edge is not noise. And a
  floor SNR that needs no reference: the clip's 90th over its 10th percentile of 20 ms frame powers.
- speaker similarity: resemblyzer cosine of (src, edited) per edit, every task (for denoise the src
  is the noisy input). Pass: median over all edits of all tasks >= 0.80.
  Beside it, what the same measure gives the data's own answer (src, tgt) and the codec round trip
  (src, roundtrip(src)): how far a perfect edit, and a codec that changes nothing, would get (a clean
  denoise answer is far from its noisy source by this measure).
- WER: pocketsphinx (scorers.asr.wer_of) of English edits against the sample's text, corpus-level
  (word-weighted); baseline: the same for the round trips of the same sources. Pass: edits' WER <=
  round trip's + 0.05 (pooled over tasks; per task reported).
- clone: core.sample.clone_example of the picked samples (distinct examples, at most --per-task, or
  with --clones-per-language N up to N of each language, the picked samples permitting):
  Editor.clone_many(prompt.flac, prompt text, target text). Similarity of the clone to the prompt
  (median) and English corpus WER. Pass: >= 0.75 and <= 0.35.
- speakers: the split's speakers per language, and for each whether the codec (tokenizer's
  training.json: speakers / held_out_speakers, augmented copies "spk~..." counted as spk) and the
  LLM (its training.json data.*.speakers) were trained on it.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

TASKS = {"emotion_edit": "emotion", "style_edit": "style", "speed_edit": "speed", "denoise": "denoise",
         "silence_trim": "vad"}
N_ITER = {"emotion_edit": 2, "style_edit": 2}
SR = 16000


def _med(v):
    v = [x for x in v if x is not None]
    return round(float(np.median(v)), 4) if v else None


def _stats(v, at_least=None):
    v = [float(x) for x in v if x is not None]
    out = {"n": len(v), "median": _med(v), "mean": round(float(np.mean(v)), 4) if v else None}
    if at_least is not None and v:
        out[f"frac_ge_{at_least:g}"] = round(float(np.mean(np.asarray(v) >= at_least)), 4)
    return out


# ---- data ----------------------------------------------------------------------------------------
def pick_samples(data: str, split: str, per_task: int, seed: int, notes: list) -> dict:
    """task -> list of (sample, split used); releases missing or without a split are noted."""
    from core.reader import Release
    out = {}
    for part in [p.strip() for p in data.split(",") if p.strip()]:
        try:
            rel = Release(part)
        except Exception as e:  # noqa: BLE001 - any unreadable release is skipped with its reason
            notes.append(f"{part}: skipped ({type(e).__name__}: {e})")
            continue
        used = split
        if not (rel.manifest["split"] == split).any():
            used = "validation"
            notes.append(f"{part}: no {split} samples, using validation")
        for task in sorted(set(rel.manifest["task"])):
            if task not in TASKS:
                notes.append(f"{part}: task {task} is not benchmarked, skipped")
                continue
            try:
                keys = list(rel.select(split=used, task=task)["key"])
            except ValueError as e:
                notes.append(f"{part}: {task}: {e}")
                continue
            keys = [keys[i] for i in sorted(np.random.default_rng(seed).permutation(len(keys))[:per_task])]
            out.setdefault(task, []).extend((rel.sample(k), used) for k in keys)
    return out


def audio16(sample, member):
    from core.audio import resample
    x, sr = sample.members[member]
    return resample(np.asarray(x, np.float32), sr, SR)


def speakers_report(data: str, split: str, llm_dir: Path) -> dict:
    from core.reader import Release
    from editor.llm.editor import DEFAULT_TOKENIZER
    tok = json.loads((Path(DEFAULT_TOKENIZER) / "training.json").read_text())
    codec_seen = {s.split("~")[0] for s in tok.get("speakers", [])}
    llm_meta = llm_dir / "training.json"
    llm_seen = set()
    if llm_meta.is_file():
        for d in json.loads(llm_meta.read_text()).get("data", {}).values():
            llm_seen |= set(d.get("speakers", []) if isinstance(d, dict) else [])
    by_lang: dict = {}
    for part in [p.strip() for p in data.split(",") if p.strip()]:
        try:
            m = Release(part).manifest
        except Exception:  # noqa: BLE001 - already noted by pick_samples
            continue
        used = split if (m["split"] == split).any() else "validation"
        for lang, spk in m[m["split"] == used][["language", "speaker"]].drop_duplicates().itertuples(index=False):
            by_lang.setdefault(lang, set()).add(spk)
    return {"per_language": {lang: [{"speaker": s, "codec_trained_on": s in codec_seen,
                                     "codec_held_out": s in tok.get("held_out_speakers", []),
                                     "llm_trained_on": s in llm_seen} for s in sorted(v)]
                             for lang, v in sorted(by_lang.items())},
            "codec": {"tokenizer": tok.get("command", ""), "held_out_speakers": tok.get("held_out_speakers"),
                      "speakers": sorted(codec_seen)},
            "llm_speakers": sorted(llm_seen)}


# ---- metrics -------------------------------------------------------------------------------------
def margin(scorer, enc, src, edited, text, language, tag) -> float:
    """The factory's scoring of a pair, with the edit in place of tgt."""
    from scorers.margin import speaker_similarity
    from stages.measure_pair import clip_stats
    if len(edited) < SR // 10:
        return 1.0
    acoustics = {"src": clip_stats(src, SR, text, language), "tgt": clip_stats(edited, SR, text, language)}
    sim = speaker_similarity(src, edited, SR, enc)
    return round(float(scorer.score([acoustics], [tag], [sim])[0]), 3)


def similarity(enc, a, b) -> float:
    from scorers.margin import speaker_similarity
    return round(speaker_similarity(a, b, SR, enc), 4) if len(a) >= SR // 10 and len(b) >= SR // 10 else 0.0


def speed_error(src, edited, factor: float) -> float:
    return round(abs(len(edited) / len(src) * factor - 1), 4)


def non_speech_s(vad, x) -> float:
    if len(x) < SR // 10:
        return 0.0
    return len(x) / SR - sum(b - a for a, b in vad.segments(x, SR))


def silence_removed(vad, src, edited, tgt) -> dict:
    """min(VAD share, duration share) of the silence the data's trim removed (see the docstring)."""
    ns_src, ns_tgt = non_speech_s(vad, src), non_speech_s(vad, tgt)
    out = {"vad_silence_to_remove_s": round(ns_src - ns_tgt, 3), "removed_vad": None, "removed_duration": None,
           "silence_removed": None}
    if ns_src - ns_tgt < 0.05:
        return out
    if len(edited) < SR // 10:
        return {**out, "removed_vad": 0.0, "removed_duration": 0.0, "silence_removed": 0.0}
    v = float(np.clip((ns_src - non_speech_s(vad, edited)) / (ns_src - ns_tgt), 0, 1))
    d = float(np.clip((len(src) - len(edited)) / max(len(src) - len(tgt), 1), 0, 1))
    kept = (len(edited) / SR - non_speech_s(vad, edited)) / max(len(src) / SR - ns_src, 1e-3)
    return {**out, "removed_vad": round(v, 4), "removed_duration": round(d, 4), "silence_removed": round(min(v, d), 4),
            "speech_kept": round(float(kept), 4)}


def _lag(x, ref, max_lag: int) -> int:
    """k maximizing sum_t x[t+k] ref[t] over |k| <= max_lag."""
    n = len(x) + len(ref)
    c = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(ref, n)), n)
    lags = np.r_[np.arange(0, min(max_lag, len(x) - 1) + 1), -np.arange(1, min(max_lag, len(ref) - 1) + 1)]
    return int(lags[np.argmax(c[lags % n])])


def align(x, ref, max_lag_s: float = 0.3):
    """Coarse lag from the 10 ms energy envelopes (a resynthesis keeps no waveform phase), refined by
    the waveform cross-correlation within +-10 ms; then x cropped/padded to len(ref)."""
    env = lambda s: np.sqrt(np.mean(s[: len(s) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    e, er = env(x), env(ref)
    lag = 160 * _lag(e - e.mean(), er - er.mean(), int(max_lag_s * 100)) if len(e) > 1 and len(er) > 1 else 0
    y = x[lag:] if lag >= 0 else np.r_[np.zeros(-lag), x]
    y = np.pad(y[:len(ref)], (0, max(0, len(ref) - len(y))))
    fine = _lag(y, ref, 160)
    y = y[fine:] if fine >= 0 else np.r_[np.zeros(-fine), y]
    return np.pad(y[:len(ref)], (0, max(0, len(ref) - len(y))))


def _snr(y, ref) -> tuple[float, float]:
    g = float(y @ ref / (y @ y)) if y @ y > 0 else 0.0
    return round(float(10 * np.log10((ref @ ref) / max(((g * y - ref) ** 2).sum(), 1e-12))), 3), round(g, 4)


def frame_powers(x, frame: int, k: int | None = None) -> np.ndarray:
    """Mean power of the first k (default: all whole) frames of x."""
    k = len(x) // frame if k is None else k
    return (np.asarray(x[:k * frame], np.float64).reshape(k, frame) ** 2).mean(1)


def pause_snr(y, ref, frame: int = 320, guard: int = 2) -> float | None:
    """Speech level over pause level of y (aligned to ref), in dB, with ref saying which 20 ms frames
    are speech (within 30 dB of its 95th-percentile frame) and which are pauses (50 dB or more below
    it, and `guard` frames or more from any frame that is not). Phase-free: a resynthesis that leaves
    the pauses quiet scores high whatever its waveform. None when ref has fewer than 5 pause or speech
    frames; pause power floored at 1e-10."""
    if len(ref) // frame < 10:
        return None
    p_ref, p_y = frame_powers(ref, frame), frame_powers(y, frame, len(ref) // frame)
    top = np.percentile(p_ref, 95)
    if top <= 0:
        return None
    speech, pause = p_ref >= top * 1e-3, p_ref <= top * 1e-5
    # pause frames 40 ms or more from any louder frame: the alignment of a resynthesis is only good to
    # about 10 ms, and a word's edge must not be read as noise
    near = np.convolve((~pause).astype(float), np.ones(2 * guard + 1), "same") > 0
    pause &= ~near
    if speech.sum() < 5 or pause.sum() < 5:
        return None
    return round(float(10 * np.log10(p_y[speech].mean() / max(p_y[pause].mean(), 1e-10))), 3)


def floor_snr(y, frame: int = 320) -> float | None:
    """The clip's own loud level over its own noise floor, in dB: the 90th over the 10th percentile of
    its 20 ms frame powers (floored at 1e-10). Needs no reference and no alignment: a denoised clip's
    quietest frames are quiet wherever its words fall. None under 10 frames."""
    if len(y) // frame < 10:
        return None
    p = frame_powers(y, frame)
    return round(float(10 * np.log10(max(np.percentile(p, 90), 1e-10) / max(np.percentile(p, 10), 1e-10))), 3)


def snr(x, ref) -> dict:
    """Waveform SNR (with its gain), the STFT-magnitude SNR and the pause SNR of x against the clean
    reference, and x's own floor SNR."""
    ref = np.asarray(ref, np.float64)
    y = align(np.asarray(x, np.float64), ref)
    wave, g = _snr(y, ref)
    mag = lambda s: np.abs(np.fft.rfft(np.lib.stride_tricks.sliding_window_view(
        np.pad(s, (0, 512)), 512)[::160] * np.hanning(512), axis=1)).ravel()
    return {"snr_db": wave, "gain": g, "snr_mag_db": _snr(mag(y), mag(ref))[0], "pause_snr_db": pause_snr(y, ref),
            "floor_snr_db": floor_snr(np.asarray(x, np.float64))}


def corpus_wer(rows, key) -> float | None:
    en = [r for r in rows if r.get(key) is not None]
    words = sum(r["n_words"] for r in en)
    return round(sum(r[key] * r["n_words"] for r in en) / words, 4) if words else None


# ---- run -----------------------------------------------------------------------------------------
def run(a) -> dict:
    import torch
    from resemblyzer import VoiceEncoder

    from core.sample import clone_example
    from editor.llm.editor import Editor
    from scorers import asr
    from scorers.margin import MarginScorer
    from stages.vad_trim import VadTrim
    torch.set_num_threads(1)
    t0 = time.time()
    notes = []
    picked = pick_samples(a.data, a.split, a.per_task, a.seed, notes)
    ed = Editor.load(a.llm, a.tokenizer, a.decoder, device=a.device, f0_decimation=a.f0_decimation,
                     quantize=a.quantize)
    if a.top_p is not None:
        from dataclasses import replace
        ed.sample = replace(ed.sample, top_p=a.top_p)
    if a.duration_window is not None:
        ed.duration_window = None if a.duration_window == "off" else a.duration_window
    if a.guidance is not None:
        ed.guidance = a.guidance
    if a.guided_iterations is not None:
        ed.guided_iterations = None if a.guided_iterations == 0 else a.guided_iterations
    scorer, enc = MarginScorer.load(), VoiceEncoder("cpu", verbose=False)
    vad = VadTrim(min_silence_ms=100, speech_pad_ms=30)
    vad.setup()
    codec = ed.codec
    roundtrip = lambda xs: codec.decode(codec.encode(xs), [codec.analyze(x) for x in xs])
    report = {"command": " ".join(["python bench/editor_llm_eval.py", *sys.argv[1:]]), "llm": str(a.llm),
              "quantize": a.quantize, "duration_window": ed.duration_window, "speed_ratio": ed.speed_ratio,
              "min_length_share": ed.min_length_share,
              "temperature": a.temperature, "top_p": ed.sample.top_p, "guidance": ed.guidance,
              "guided_iterations": ed.guided_iterations,
              "split": a.split, "margin_scorer": scorer.version, "notes": notes,
              "speakers": speakers_report(a.data, a.split, Path(a.llm)), "tasks": {}, "per_clip": {}}
    rows_all = []
    for task, items in sorted(picked.items()):
        t1 = time.time()
        n_iter = N_ITER.get(task, 1)
        reqs = [dict(wav=audio16(s, "src.flac"), text=s.json.get("text") or "", edit_type=TASKS[task],
                     edit_info=s.json.get("edit_info") if TASKS[task] not in ("denoise", "vad") else None,
                     n_iter=n_iter, seed=a.seed, temperature=a.temperature) for s, _ in items]
        outs = ed.edit_many(reqs)
        rts = roundtrip([r["wav"] for r in reqs])
        tgts = [audio16(s, "tgt.flac") for s, _ in items]
        ceil = roundtrip(tgts) if task == "denoise" else [None] * len(items)
        rows = []
        for (s, used), r, its, rt, tgt, ct in zip(items, reqs, outs, rts, tgts, ceil):
            j, src, y = s.json, r["wav"], its[0]
            row = {"key": s.key, "speaker": j["speaker"], "language": j["language"], "split": used,
                   "edit_info": j.get("edit_info"), "src_s": round(len(src) / SR, 3),
                   "edited_s": [round(len(z) / SR, 3) for z in its], "speaker_sim": similarity(enc, src, y),
                   "speaker_sim_data": similarity(enc, src, tgt), "speaker_sim_roundtrip": similarity(enc, src, rt)}
            if task in N_ITER:
                row["margin"] = [margin(scorer, enc, src, z, r["text"], j["language"], j["edit_info"]) for z in its]
                row["margin_data"] = j.get("margin")
                row["margin_roundtrip"] = margin(scorer, enc, src, rt, r["text"], j["language"], j["edit_info"])
            if task == "speed_edit":
                row.update(factor=j["factor"], speed_error=speed_error(src, y, j["factor"]),
                           speed_error_data=speed_error(src, tgt, j["factor"]))
            if task == "silence_trim":
                row.update(silence_removed(vad, src, y, tgt))
                ins = j.get("inserted_silences_s")
                row["inserted_silence_s"] = round(sum(float(b) for _, b in ins), 3) if ins else None
            if task == "denoise":
                row.update({f"src_{k}": v for k, v in snr(src, tgt).items()})
                row.update({f"edited_{k}": v for k, v in snr(y if len(y) else np.zeros(1), tgt).items()})
                row.update({f"ceiling_{k}": v for k, v in snr(ct, tgt).items()})
                row["snr_gain_db"] = round(row["edited_snr_db"] - row["src_snr_db"], 3)
                row["snr_mag_gain_db"] = round(row["edited_snr_mag_db"] - row["src_snr_mag_db"], 3)
                for m in ("pause_snr", "floor_snr"):
                    ps, pe = row[f"src_{m}_db"], row[f"edited_{m}_db"]
                    row[f"{m}_gain_db"] = round(pe - ps, 3) if ps is not None and pe is not None else None
            if j["language"] == "en" and r["text"]:
                row["n_words"] = len(asr.words(r["text"]))
                row["wer"] = round(asr.wer_of(y, SR, r["text"]), 4) if len(y) else 1.0
                row["wer_roundtrip"] = round(asr.wer_of(rt, SR, r["text"]), 4)
            rows.append(row)
        report["per_clip"][task] = rows
        rows_all += rows
        report["tasks"][task] = summarize_task(task, rows)
        report["tasks"][task]["seconds"] = round(time.time() - t1, 1)
        print(f"{task}: {len(rows)} clips, {time.time() - t1:.0f} s", flush=True)
    report["tasks"]["clone"] = evaluate_clone(ed, enc, asr, [s for items in picked.values() for s, _ in items],
                                              clone_example, a)
    report["checks"] = checks(report["tasks"], rows_all)
    report["seconds"] = round(time.time() - t0, 1)
    return report


def pick_clones(samples, clone_example, limit: int, per_language: int | None = None) -> list:
    """The distinct clone examples of the samples, in order: the first `limit`, or with per_language up
    to that many of each language (a test split of mostly Mandarin samples otherwise leaves a handful
    of English clones to read the WER from)."""
    seen, exs, count = set(), [], {}
    for s in samples:
        c = clone_example(s)
        if c is None or c.key in seen:
            continue
        lang = c.json["language"]
        full = len(exs) >= limit if per_language is None else count.get(lang, 0) >= per_language
        if full:
            continue
        seen.add(c.key)
        count[lang] = count.get(lang, 0) + 1
        exs.append(c)
    return exs


def evaluate_clone(ed, enc, asr, samples, clone_example, a) -> dict:
    exs = pick_clones(samples, clone_example, a.per_task, a.clones_per_language)
    if not exs:
        return {"n": 0, "note": "no sample with a prompt"}
    prompts = [audio16(c, "prompt.flac") for c in exs]
    wavs = ed.clone_many([dict(prompt_wav=p, prompt_text=c.json["prompt"]["text"], text=c.json["text"],
                               seed=a.seed, temperature=a.temperature) for p, c in zip(prompts, exs)])
    rows = []
    for c, p, y in zip(exs, prompts, wavs):
        row = {"key": c.json["source_key"], "speaker": c.json["speaker"], "language": c.json["language"],
               "clone_s": round(len(y) / SR, 3), "prompt_sim": similarity(enc, p, y)}
        if c.json["language"] == "en":
            row["n_words"] = len(asr.words(c.json["text"]))
            row["wer"] = round(asr.wer_of(y, SR, c.json["text"]), 4) if len(y) else 1.0
        rows.append(row)
    return {"prompt_sim": _stats([r["prompt_sim"] for r in rows]), "wer_en": corpus_wer(rows, "wer"),
            "n_en": sum("wer" in r for r in rows), "per_clip": rows}


def summarize_task(task, rows) -> dict:
    out = {"n": len(rows), "empty_edits": sum(any(d == 0 for d in r["edited_s"]) for r in rows),
           "speaker_sim": _stats([r["speaker_sim"] for r in rows]),
           "speaker_sim_data": _stats([r["speaker_sim_data"] for r in rows]),
           "speaker_sim_roundtrip": _stats([r["speaker_sim_roundtrip"] for r in rows]),
           "wer_en": corpus_wer(rows, "wer"), "wer_en_roundtrip": corpus_wer(rows, "wer_roundtrip"),
           "n_en": sum("wer" in r for r in rows)}
    if task in N_ITER:
        for k in range(N_ITER[task]):
            out[f"margin_iter{k + 1}"] = _stats([r["margin"][k] for r in rows], 6)
        out["margin_data"] = _stats([r["margin_data"] for r in rows], 6)
        out["margin_roundtrip"] = _stats([r["margin_roundtrip"] for r in rows], 6)
    if task == "speed_edit":
        e = [r["speed_error"] for r in rows]
        out["speed_error"] = {**_stats(e), "frac_within_0.1": round(float(np.mean(np.asarray(e) <= 0.1)), 4)}
        out["speed_error_data"] = _stats([r["speed_error_data"] for r in rows])
    if task == "silence_trim":
        out["silence_removed"] = _stats([r["silence_removed"] for r in rows], 0.8)
        out["removed_vad"] = _stats([r["removed_vad"] for r in rows], 0.8)
        out["removed_duration"] = _stats([r["removed_duration"] for r in rows], 0.8)
        out["speech_kept"] = _stats([r.get("speech_kept") for r in rows])
        out["skipped_nothing_to_remove"] = sum(r["silence_removed"] is None for r in rows)
    if task == "denoise":
        for k in ("src_snr_db", "edited_snr_db", "edited_gain", "snr_gain_db", "ceiling_snr_db",
                  "src_snr_mag_db", "edited_snr_mag_db", "snr_mag_gain_db", "ceiling_snr_mag_db",
                  "src_pause_snr_db", "edited_pause_snr_db", "pause_snr_gain_db", "ceiling_pause_snr_db",
                  "src_floor_snr_db", "edited_floor_snr_db", "floor_snr_gain_db", "ceiling_floor_snr_db"):
            # the gains with their share >= 10 dB: per clip the pause SNR gain is bimodal (an edit is quiet
            # where the reference pauses or it is not), and a median between the modes moves by tens of dB
            # when one clip changes sides
            out[k] = _stats([r[k] for r in rows], 10 if k.endswith("gain_db") else None)
    return out


def checks(tasks, rows_all) -> list[dict]:
    out = []

    def add(what, value, target, ok):
        out.append({"check": what, "value": value, "target": target,
                    "pass": None if ok is None or value is None else bool(ok)})

    for t in ("emotion_edit", "style_edit"):
        if t in tasks:
            m1, m2 = tasks[t]["margin_iter1"], tasks[t]["margin_iter2"]
            add(f"{t} margin (median, frac>=6)", [m1["median"], m1.get("frac_ge_6")], "median>=6, frac>=0.6",
                m1["median"] is not None and m1["median"] >= 6 and m1["frac_ge_6"] >= 0.6)
            add(f"{t} iter2 vs iter1 median margin", [m2["median"], m1["median"]], "iter2 > iter1",
                m1["median"] is not None and m2["median"] > m1["median"])
    if "speed_edit" in tasks:
        v = tasks["speed_edit"]["speed_error"]["median"]
        add("speed: |ratio*factor-1| median", v, "<=0.10", v is not None and v <= 0.10)
    if "silence_trim" in tasks:
        v = tasks["silence_trim"]["silence_removed"]["median"]
        add("trim: silence removed median", v, ">=0.8", v is not None and v >= 0.8)
    if "denoise" in tasks:
        v = tasks["denoise"]["snr_gain_db"]["median"]
        add("denoise: SNR gain dB median", v, ">=10", v is not None and v >= 10)
        d = tasks["denoise"]
        add("denoise: (diag) |STFT| SNR gain; ceilings", [d["snr_mag_gain_db"]["median"], d["ceiling_snr_db"]["median"],
            d["ceiling_snr_mag_db"]["median"]], ">=10", (d["snr_mag_gain_db"]["median"] or -1e9) >= 10)
        add("denoise: (diag) pause SNR gain >=10 dB share", d["pause_snr_gain_db"].get("frac_ge_10"),
            "(reference)", None)
        add("denoise: (diag) pause SNR gain; src, edited, ceiling", [d["pause_snr_gain_db"]["median"],
            d["src_pause_snr_db"]["median"], d["edited_pause_snr_db"]["median"], d["ceiling_pause_snr_db"]["median"]],
            ">=10", (d["pause_snr_gain_db"]["median"] or -1e9) >= 10)
        add("denoise: (diag) floor SNR gain; src, edited, ceiling", [d["floor_snr_gain_db"]["median"],
            d["src_floor_snr_db"]["median"], d["edited_floor_snr_db"]["median"], d["ceiling_floor_snr_db"]["median"]],
            ">=10", (d["floor_snr_gain_db"]["median"] or -1e9) >= 10)
    if rows_all:
        v = _med([r["speaker_sim"] for r in rows_all])
        add("speaker sim edited vs src (all edits)", v, ">=0.80", v >= 0.80)
        add("(diag) speaker sim of the data's own tgt; of the round trip", [_med([r["speaker_sim_data"] for r in rows_all]),
            _med([r["speaker_sim_roundtrip"] for r in rows_all])], "(reference)", None)
        w, w0 = corpus_wer(rows_all, "wer"), corpus_wer(rows_all, "wer_roundtrip")
        add("WER en edits vs roundtrip(src)+0.05", [w, w0], "edit<=rt+0.05", w is not None and w <= w0 + 0.05)
    c = tasks.get("clone", {})
    if c.get("n", 1):
        v = c["prompt_sim"]["median"]
        add("clone: sim to prompt median", v, ">=0.75", v is not None and v >= 0.75)
        add("clone: WER en", c["wer_en"], "<=0.35", c["wer_en"] is not None and c["wer_en"] <= 0.35)
    return out


def duration_window(v: str):
    """--duration-window: 'off' or a fraction in (0, 1); argparse names the option when this raises."""
    if v == "off":
        return v
    w = float(v)
    if not 0 < w < 1:
        raise ValueError(v)
    return w


def guidance(v: str) -> dict:
    """--guidance: 'off' or TYPE=W[,TYPE=W...] with an edit type (or clone) and a weight >= 0."""
    from editor.llm.editor import check_guidance
    if v == "off":
        return {}
    pairs = [part.split("=") for part in v.split(",")]
    return check_guidance({t: float(w) for t, w in pairs}, "--guidance")


def iterations(v: str) -> int:
    """--guided-iterations: a whole number >= 0 (0: every iteration)."""
    n = int(v)
    if n < 0:
        raise ValueError(v)
    return n


def pick_arguments(ap: argparse.ArgumentParser) -> None:
    """--split, --per-task and --seed: which samples pick_samples picks (the benches that score the same
    edits share them)."""
    ap.add_argument("--split", default="test")
    ap.add_argument("--per-task", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", required=True)
    ap.add_argument("--data", required=True, help="audio releases, comma-separated")
    ap.add_argument("--tokenizer", default=None, help="codec tokenizer dir (default: the shipped one)")
    ap.add_argument("--decoder", default=None, help="codec decoder dir, trained on that tokenizer")
    ap.add_argument("--f0-decimation", type=int, default=1, help="the codec's analysis (editor/features.py f0_track)")
    ap.add_argument("--quantize", default=None, choices=["int8"],
                    help="the LLM's weights as int8 (editor/llm/quantize.py); the codec stays float")
    pick_arguments(ap)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=None, help="nucleus sampling (default: the Editor's, off)")
    ap.add_argument("--duration-window", default=None, type=duration_window,
                    help="speed edits end within this fraction of their tag's taught length (default: the "
                         "Editor's, 0.08); 'off': where the model alone ends them")
    ap.add_argument("--guidance", default=None, type=guidance,
                    help="e.g. emotion=1.5,style=1.5: guided edits (Editor.guidance; default: the Editor's); 'off': none")
    ap.add_argument("--guided-iterations", type=iterations, default=None,
                    help="how many first iterations are guided (Editor.guided_iterations; 0: all)")
    ap.add_argument("--clones-per-language", type=int, default=None,
                    help="clone examples per language (default: the first --per-task of either language)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    report = run(a)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(report, indent=1))
    for n in report["notes"]:
        print("note:", n)
    print(f"{'check':45s} {'value':>22s} {'target':>16s} pass")
    for c in report["checks"]:
        print(f"{c['check']:45s} {json.dumps(c['value']):>22s} {c['target']:>16s} {c['pass']}")
    return report


if __name__ == "__main__":
    main()
