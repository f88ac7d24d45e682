"""Large margin, same speaker, separable tags, intelligible: measured on real runs."""
import numpy as np
import pytest

from conftest import read_samples
from scorers.features import pair_features


def _embed(samples):
    from resemblyzer import VoiceEncoder, preprocess_wav
    enc = VoiceEncoder("cpu", verbose=False)
    return {(s["key"], r): enc.embed_utterance(preprocess_wav(s[r], source_sr=16000))
            for s in samples for r in ("src", "tgt")}


def test_same_speaker_similarity_above_cross_speaker(emotion_run):
    samples = read_samples(emotion_run[0])
    rng = np.random.default_rng(0)
    samples = [samples[i] for i in rng.choice(len(samples), 48, replace=False)]
    e = _embed(samples)
    same = [float(e[(s["key"], "src")] @ e[(s["key"], "tgt")]) for s in samples]
    cross = [float(e[(a["key"], "src")] @ e[(b["key"], "tgt")]) for a in samples for b in samples
             if a["json"]["speaker"] != b["json"]["speaker"] and a["json"]["edit_info"] == b["json"]["edit_info"]]
    assert np.median(same) > np.median(cross) + 0.05, (np.median(same), np.median(cross))


def _separability(samples, tags):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    speakers = sorted({s["json"]["speaker"] for s in samples})
    # half of each language's speakers train, the other half test
    train_spk = {s for s in speakers if s.endswith("1")}
    X = np.array([pair_features(s["json"]["acoustics"]) for s in samples])
    y = np.array([tags.index(s["json"]["edit_info"]) for s in samples])
    tr = np.array([s["json"]["speaker"] in train_spk for s in samples])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)).fit(X[tr], y[tr])
    return float((clf.predict(X[~tr]) == y[~tr]).mean())


def test_emotions_separable_on_held_out_speakers(emotion_run):
    from core.tags import EMOTIONS
    acc = _separability(read_samples(emotion_run[0]), list(EMOTIONS))
    assert acc > 3 / 14, f"held-out accuracy {acc:.2f} (chance {1 / 14:.2f})"


def test_styles_separable_on_held_out_speakers(style_run):
    from core.tags import STYLES
    acc = _separability(read_samples(style_run[0]), list(STYLES))
    assert acc > 4 / 32, f"held-out accuracy {acc:.2f} (chance {1 / 32:.2f})"


@pytest.mark.parametrize("tag,check", [
    ("happy", lambda s, t: t["f0_median_st"] > s["f0_median_st"] + 1.5),
    ("sad", lambda s, t: t["rate_syl_s"] < s["rate_syl_s"] and t["energy_db"] < s["energy_db"] - 2),
    ("angry", lambda s, t: t["energy_db"] > s["energy_db"] + 3 and t["tilt_db_oct"] > s["tilt_db_oct"]),
    ("depressed", lambda s, t: t["f0_range_st"] < s["f0_range_st"] and t["rate_syl_s"] < s["rate_syl_s"]),
    ("excited", lambda s, t: t["rate_syl_s"] > s["rate_syl_s"] and t["f0_median_st"] > s["f0_median_st"] + 2),
])
def test_documented_emotion_differences(emotion_run, tag, check):
    samples = [s for s in read_samples(emotion_run[0]) if s["json"]["edit_info"] == tag]
    ok = [check(s["json"]["acoustics"]["src"], s["json"]["acoustics"]["tgt"]) for s in samples]
    assert np.mean(ok) >= 0.75, f"{tag}: {sum(ok)}/{len(ok)} pairs show the documented change"


def test_whisper_removes_voicing(style_run):
    samples = [s for s in read_samples(style_run[0]) if s["json"]["edit_info"] == "whisper"]
    for s in samples:
        a = s["json"]["acoustics"]
        assert a["src"]["voiced_ratio"] > 0.15 and a["tgt"]["voiced_ratio"] < 0.3 * a["src"]["voiced_ratio"]


def test_english_neutral_clips_are_intelligible(emotion_run):
    from scorers.asr import wer_of
    samples = [s for s in read_samples(emotion_run[0]) if s["json"]["language"] == "en"][::3]
    wers = [wer_of(s["src"], 16000, s["json"]["text"]) for s in samples]
    assert np.mean(wers) <= 0.25, np.mean(wers)
