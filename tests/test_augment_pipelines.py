"""Speed, denoise and silence-trim triplets on real tools: SoX, audiomentations, Silero VAD."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import pandas as pd
import soundfile as sf

from conftest import RAW, REPO, read_samples, run_pipeline
from core import augment
from stages.loudness import loudness_gain, measure_lufs



def _undo_gain(x, loud):
    return x / 10 ** (loud["gain_db"] / 20)


def test_speed_factors_hold(speed_run):
    samples, info, _ = speed_run
    assert len(samples) == 16 and len({s["key"] for s in samples}) == 16
    for s in samples:
        j = s["json"]
        ratio = len(s["tgt"]) / len(s["src"])
        assert abs(ratio * j["factor"] - 1) < 0.03, (j["factor"], ratio)
        assert j["edit_info"] == augment_tag(j["factor"])
        assert j["instruction"] == f"Make the following audio more {j['edit_info']}. " \
                                   f"The text corresponding to the audio is: {j['text']}"


def augment_tag(f):
    from core.tags import speed_tag
    return speed_tag(f)


def test_speed_recipe_replays_to_the_same_audio(speed_run):
    s = speed_run[0][0]
    j = s["json"]
    raw = _undo_gain(s["src"], j["loudness"]["src"])
    again = augment.replay(j["recipe"], raw, 16000) * 10 ** (j["loudness"]["tgt"]["gain_db"] / 20)
    assert len(again) == len(s["tgt"])
    # SoX's WSOLA picks splice points by correlation, so the 16-bit rounding of the stored src can
    # move a splice: compare 20 ms level envelopes, not samples
    env = lambda x: 10 * np.log10(np.mean(x[: len(x) // 320 * 320].reshape(-1, 320) ** 2, axis=1) + 1e-8)
    assert np.median(np.abs(env(again) - env(s["tgt"]))) < 1.0
    assert np.array_equal(augment.replay(j["recipe"], raw, 16000), augment.replay(j["recipe"], raw, 16000))


def test_sox_speed_effect_changes_pitch_and_length():
    x = np.sin(2 * np.pi * 200 * np.arange(16000) / 16000).astype(np.float32) * 0.5
    y = augment.SoxTempo(1.25, "speed")(x, 16000)
    assert abs(len(y) / len(x) - 0.8) < 0.01
    f = np.argmax(np.abs(np.fft.rfft(y))) * 16000 / len(y)
    assert abs(f - 250) < 5


def test_denoise_inputs_have_the_recorded_snr(denoise_run):
    samples, _, _ = denoise_run
    assert len(samples) == 24
    assert {s["json"]["noise_source"] for s in samples} == {"color", "babble", "folder"}
    assert any(r["op"] == "reverb" for s in samples for r in s["json"]["recipe"])
    for s in samples:
        j = s["json"]
        clean = _undo_gain(s["tgt"], j["loudness"]["tgt"])
        noisy = _undo_gain(s["src"], j["loudness"]["src"])
        reverbed = augment.replay([r for r in j["recipe"] if r["op"] == "reverb"], clean, 16000)
        snr = 10 * np.log10(np.mean(reverbed ** 2) / np.mean((noisy - reverbed) ** 2))
        assert abs(snr - j["snr_db"]) < 1.0, (j["noise_source"], snr, j["snr_db"])
        assert j["instruction"].startswith("Remove any noise from the given audio")


def test_denoise_target_is_loudness_matched(denoise_run):
    for s in denoise_run[0]:
        for role in ("src", "tgt"):
            loud = s["json"]["loudness"][role]
            if not loud["peak_limited"]:
                assert abs(measure_lufs(s[role], 16000)[0] - (-23.0)) < 0.5


def test_vad_finds_inserted_silences_within_100ms(trim_run):
    samples, _, _ = trim_run
    assert len(samples) >= 14
    for s in samples:
        j = s["json"]
        segs = j["vad_segments_s"]
        gaps = [(a[1], b[0]) for a, b in zip(segs, segs[1:])]
        for start, end in j["inserted_silences_s"]:
            assert any(abs(g0 - start) <= 0.1 and abs(g1 - end) <= 0.1 for g0, g1 in gaps), (start, end, gaps)


def _longest_internal_silence(x, sr, floor_db=-45.0):
    hop = int(0.01 * sr)
    n = len(x) // hop
    db = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    quiet = db < db.max() + floor_db
    speech = np.flatnonzero(~quiet)
    inner = quiet[speech[0]: speech[-1]]
    longest = run = 0
    for q in inner:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return longest * 0.01


def test_trimmed_targets_have_no_long_internal_silence(trim_run):
    for s in trim_run[0]:
        # padding between segments, less than one 120 ms token block to keep the token grid (align_s),
        # plus the 30 ms Silero keeps on each side of a segment
        assert _longest_internal_silence(s["tgt"], 16000) <= 0.1 + 0.12 + 0.06 + 0.03
        assert _longest_internal_silence(s["src"], 16000) >= 0.45  # the source really had silences
        assert len(s["tgt"]) < len(s["src"])


def test_joined_segments_move_by_whole_token_blocks():
    """align_s: each segment lands a whole number of blocks from where it was in the source (so copied
    speech keeps its token ids), behind a gap of padding_s plus less than one block; without it the
    gaps are padding_s exactly, as recipes written before align_s replay."""
    sr, block = 16000, 1920
    x = np.random.default_rng(0).standard_normal(3 * sr).astype(np.float32)
    segs = [[0.137, 0.9], [1.333, 2.01], [2.5, 2.873]]

    def placed(y):
        out = []
        for a, b in segs:
            i, j = int(a * sr), int(b * sr)
            o = next(o for o in np.flatnonzero(y == x[i]) if np.array_equal(y[o:o + j - i], x[i:j]))
            out.append((i, j, int(o)))
        return out

    aligned = augment.JoinSegments(segs, 0.1, 0.12)
    where = placed(aligned(x, sr))
    assert all((o - i) % block == 0 for i, _, o in where)
    gaps = [o2 - (o1 + j1 - i1) for (i1, j1, o1), (_, _, o2) in zip(where, where[1:])]
    assert all(1600 <= g < 1600 + block for g in gaps) and len(set(gaps)) > 1
    plain = augment.JoinSegments(segs, 0.1)
    y = plain(x, sr)
    assert len(y) == sum(int(b * sr) - int(a * sr) for a, b in segs) + 3 * 1600
    assert [o2 - (o1 + j1 - i1) for (i1, j1, o1), (_, _, o2) in zip(placed(y), placed(y)[1:])] == [1600, 1600]
    old = {k: v for k, v in augment.to_dict(plain).items() if k != "align_s"}
    assert np.array_equal(augment.from_dict(old)(x, sr), y)
    assert augment.from_dict(augment.to_dict(aligned)) == aligned


def test_loudness_handles_short_and_silent_clips():
    sr = 16000
    short = (0.1 * np.random.default_rng(0).standard_normal(int(0.2 * sr))).astype(np.float32)
    g = loudness_gain(short, sr, -23.0, -1.0)
    assert g["method"] == "rms" and np.isfinite(g["gain_db"])
    silent = np.zeros(sr, np.float32)
    assert loudness_gain(silent, sr, -23.0, -1.0)["gain_db"] == 0.0
    loud = (0.9 * np.sin(np.arange(sr) * 0.3)).astype(np.float32)
    g = loudness_gain(loud, sr, -3.0, -1.0)
    assert g["peak_limited"] and 20 * np.log10(0.9) + g["gain_db"] <= -1.0 + 1e-6


def test_negative_trim_alignment_is_a_named_error(tmp_path):
    from conftest import make_cfg
    from pipelines.augment import run
    with pytest.raises(ValueError, match="pipeline.align_s=-0.1"):
        run(make_cfg(["pipeline=trim_triplets", "pipeline.align_s=-0.1", f"output_dir={tmp_path}"]), "trim")


def test_missing_sox_is_a_clear_error(tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    r = subprocess.run([sys.executable, "run.py", "pipeline=speed_triplets", f"output_dir={tmp_path}"], cwd=REPO,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "apt-get install sox" in r.stderr, r.stderr[-1000:]


def test_user_recordings_as_sources(tmp_path, cache_dir, ray_local, trim_run):
    """source=folder: real audio that already has silences is trimmed without inserting more."""
    spk = tmp_path / "rec" / "alice"
    spk.mkdir(parents=True)
    (spk / "speaker.json").write_text(json.dumps({"language": "en"}))
    s = trim_run[0][0]
    sf.write(spk / "take1.flac", s["src"], 16000)
    (spk / "take1.txt").write_text(s["json"]["text"])
    (spk / "broken.wav").write_bytes(b"RIFF not really")
    (spk / "broken.txt").write_text(s["json"]["text"])
    info, _ = run_pipeline(["pipeline=trim_triplets", "source=folder", f"source.root={tmp_path / 'rec'}",
                            "pipeline.insert=false", f"output_dir={tmp_path / 'out'}", "languages=[en]",
                            *RAW, "ray.progress=false"])
    out = read_samples(tmp_path / "out" / "trim_triplets")
    assert len(out) == 1 and len(out[0]["tgt"]) < len(out[0]["src"])
    assert out[0]["json"]["prompt"] is None and "prompt.flac" not in out[0]["members"]  # a recording has no prompt
    rej = pd.read_parquet(tmp_path / "out" / "trim_triplets" / "rejects.parquet")
    assert list(rej["reason"]) == ["bad_input"] and "broken.wav" in rej["detail"][0]


def test_serving_clips_are_clean_speech_with_their_text(speed_run, tmp_path):
    """bench/serving_clips.py: one clip per speaker and language, the speed triplet's clip as spoken (its
    tgt), with the sample's text; too few speakers is an error that names the release."""
    from core.reader import Release
    from editor.corpus import decode_audio
    _, _, d = speed_run      # made with splits off: --split any
    r = subprocess.run([sys.executable, "bench/serving_clips.py", str(d), str(tmp_path), "--per-language", "1",
                        "--split", "any", "--min-s", "0", "--max-s", "60"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rel = Release(d)
    clips = sorted(tmp_path.glob("*.flac"))
    languages = set(rel.select()["language"])
    assert {json.loads(c.with_suffix(".json").read_text())["language"] for c in clips} == languages
    assert len(clips) == len(languages)
    for c in clips:
        meta = json.loads(c.with_suffix(".json").read_text())
        wav, sr = sf.read(c, dtype="float32")
        assert sr == 16000 and meta["text"] == rel.sample(meta["key"], members=[]).json["text"]
        np.testing.assert_allclose(wav, decode_audio(rel.read(meta["key"], "tgt.flac")), atol=1e-4)
    r = subprocess.run([sys.executable, "bench/serving_clips.py", str(d), str(tmp_path / "x"), "--per-language", "99",
                        "--split", "any"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0 and str(d) in r.stderr and "99 wanted" in r.stderr
