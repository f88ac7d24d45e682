"""The learned margin scorer: training (bootstrap and human labels), evaluation, the shipped model."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_pipeline
from scorers.margin import MarginScorer


@pytest.fixture(scope="module")
def tiny_scorer(tmp_path_factory, cache_dir, ray_local):
    out = tmp_path_factory.mktemp("ms")
    ev, _ = run_pipeline(["pipeline=train_margin_scorer", f"output_dir={out}", "languages=[en]",
                          "pipeline.speakers=[en_f1,en_f2,en_m1,en_m2]", "pipeline.heldout_speakers=[en_m2]",
                          "pipeline.tags=[happy,sad,whisper,angry]", f"pipeline.artifact_out={out}/art",
                          "pipeline.version=margin-test", "ray.progress=false"])
    return out, ev


def test_bootstrap_training_saves_a_versioned_artifact(tiny_scorer):
    out, ev = tiny_scorer
    sc = MarginScorer.load(out / "art")
    assert sc.version == "margin-test" and set(sc.ridges) == {"happy", "sad", "whisper", "angry"}
    saved = json.loads((out / "art" / "eval.json").read_text())
    assert saved["n"] == 4 * 7 and {"spearman", "mae", "keep_drop_accuracy"} <= set(saved)
    assert (out / "art" / "heldout_scatter.png").stat().st_size > 10_000
    assert ev["spearman"] > 0.4, ev  # even this tiny model (3 training speakers) ranks held-out pairs
    m = pd.read_parquet(out / "margin_bootstrap" / "manifest.parquet")
    assert set(m["kind"]) >= {"intensity_0", "intensity_1", "wrong_tag", "other_speaker"}


def test_training_from_human_labels(tiny_scorer, tmp_path, ray_local):
    """A labels table with shard references and two annotators trains a scorer too."""
    out, _ = tiny_scorer
    m = pd.read_parquet(out / "margin_bootstrap" / "manifest.parquet")
    shards = out / "margin_bootstrap" / "shards"
    rows = []
    for r in m.itertuples():
        for annotator, noise in (("ann1", 0.0), ("ann2", 0.5)):
            rows.append({"src": f"{shards / r.shard}#{r.key}.src.flac", "tgt": f"{shards / r.shard}#{r.key}.tgt.flac",
                         "tag": r.tag, "score": min(10.0, r.label + noise), "annotator": annotator})
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows).to_csv(labels, index=False)
    from conftest import make_cfg
    from pipelines.train_margin_scorer import _labelled_rows
    data = _labelled_rows(make_cfg([f"labels={labels}", "ray.progress=false"]))
    assert len(data) == len(m)  # two annotators' ratings averaged per pair
    assert np.allclose(sorted(data["score"]), sorted(np.minimum(10, m["label"] + 0.25)))


def test_bad_labels_table(tmp_path):
    from conftest import make_cfg
    from pipelines.train_margin_scorer import _labelled_rows
    p = tmp_path / "labels.csv"
    pd.DataFrame({"src": ["a"], "tgt": ["b"], "tag": ["happy"], "score": [11]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match="outside 1..10"):
        _labelled_rows(make_cfg([f"labels={p}"]))
    pd.DataFrame({"src": ["a"], "tag": ["happy"], "score": [5]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match="missing columns"):
        _labelled_rows(make_cfg([f"labels={p}"]))


def test_shipped_scorer_quality_and_neutral_pairs():
    """The default artifact: Spearman >= 0.8 on held-out speakers/texts, neutral pairs score <= 3."""
    from scorers.bootstrap import nuisance
    from scorers.margin import speaker_similarity
    from stages.measure_pair import clip_stats
    from tts.engine import LocalEngine
    from tts.voice_bank import GENERATED_SPEAKERS
    sc = MarginScorer.load()
    assert sc.meta["heldout_eval"]["spearman"] >= 0.8
    eng = LocalEngine(16000)
    text = {"en": "The museum is closed on Mondays and opens again on Tuesday.", "zh": "图书馆每天早上八点开门。"}
    scores = []
    for spk in [s for s in GENERATED_SPEAKERS if s.id in ("en_m2", "zh_f2", "en_f1")]:
        t = text[spk.language]
        a = eng.render(t, spk.language, spk.timbre + nuisance("a", spk.id), spk.base_voice)
        b = eng.render(t, spk.language, spk.timbre + nuisance("b", spk.id), spk.base_voice)
        ac = {"src": clip_stats(a, 16000, t, spk.language), "tgt": clip_stats(b, 16000, t, spk.language)}
        for tag in ("happy", "whisper", "sad"):
            scores.append(float(sc.score([ac], [tag], [speaker_similarity(a, b, 16000)])[0]))
    assert max(scores) <= 3.0, scores


def test_margin_selection_in_emotion_pipeline(tmp_path, cache_dir, ray_local):
    """Every kept pair reaches its tag's threshold; the others are low_margin rejects with their score."""
    info, _ = run_pipeline(["pipeline=emotion_triplets", f"output_dir={tmp_path}", "languages=[en]",
                            "emotions=[happy,sad,coldness]", "texts_per_tag=1", "+margin.thresholds.happy=9.9",
                            "splits.enabled=false", "quality.wer.enabled=false",
                            "quality.prompt_similarity.enabled=false", "ray.progress=false"])
    d = tmp_path / "emotion_triplets"
    m = pd.read_parquet(d / "manifest.parquet")
    rej = pd.read_parquet(d / "rejects.parquet")
    assert len(m) + len(rej) == 12
    thr = {"happy": 9.9, "sad": 6.0, "coldness": 6.0}
    assert all(r.margin >= thr[r.edit_info] for r in m.itertuples())
    low = rej[rej["reason"] == "low_margin"]
    assert all(v < thr[json.loads(meta)["edit_info"]] for v, meta in zip(low["value"], low["meta"]))
    assert all(json.loads(p)["margin_scorer"] == "margin-v1" for p in m["provenance"])
    hist = info["margin"]
    assert sum(sum(h["histogram_1_to_10"]) for h in hist.values()) == 12
    assert hist["happy"]["kept_fraction"] <= 0.25


def test_thresholds_below_floor_are_refused(tmp_path):
    from conftest import _cli_run
    r = _cli_run(f"output_dir={tmp_path}", "+margin.thresholds.sad=4")
    assert r.returncode != 0 and "below the floor of 6.0" in r.stderr
