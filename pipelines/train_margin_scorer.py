"""pipeline=train_margin_scorer: fit the 1-10 margin scorer and evaluate it on held-out speakers/texts.

labels=PATH: a labels table (parquet or csv) with columns src, tgt, tag, score[, annotator]; src and
tgt are audio references (a file, or '<shard.tar>#<key>.src.flac'). Ratings of one pair by several
annotators are averaged. Without labels, a bootstrap set is rendered by the embedded engine
(scorers/bootstrap.py: a proxy for human judgement)."""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core import refs
from core.keys import make_key
from core.sample import SAMPLE_VERSION, Sample
from core.tables import read_table
from core.tags import EMOTIONS, STYLES, check_languages
from pipelines.runner import check_output_dir, execute, init_ray
from scorers import bootstrap, evaluate
from scorers.margin import fit, raw_features
from stages.base import decode_row, map_stages, new_row, rows_dataset
from stages.measure_pair import MeasurePair
from stages.render_pair import RenderPair
from stages.speaker_similarity import SpeakerSimilarity
from tts.voice_bank import GENERATED_SPEAKERS


def _bootstrap_rows(cfg) -> pd.DataFrame:
    p = cfg.pipeline
    langs = check_languages(cfg.languages)
    speakers = [s for s in GENERATED_SPEAKERS if s.language in langs]
    if p.speakers:
        speakers = [s for s in speakers if s.id in p.speakers]
    tags = list(p.tags) if p.tags else list(EMOTIONS) + list(STYLES)
    jobs = bootstrap.jobs(speakers, tags, cfg.seed, p.texts_per_tag)
    rows = [new_row(make_key([j["tag"], j["speaker"], j["kind"]], {**j, "seed": cfg.seed}), j) for j in jobs]
    stages = [(RenderPair, {"sample_rate": cfg.sample_rate, "frame_period": cfg.tts.frame_period}),
              (MeasurePair, {}), (SpeakerSimilarity, {})]

    def to_sample(row):
        m = row["meta"]
        keep = ("speaker", "language", "tag", "text", "kind", "label", "intensity", "acoustics", "durations",
                "speaker_sim", "rendered_tag", "other_speaker")
        return Sample(row["key"], {"task": "margin_bootstrap", "sample_version": SAMPLE_VERSION,
                                   **{k: m.get(k) for k in keep}}, row["members"])

    print(f"bootstrap: rendering {len(rows)} labelled pairs ({len(speakers)} speakers, {len(tags)} tags)")
    execute(cfg, "margin_bootstrap", rows, stages, to_sample, extra_run_info={"label_rule": bootstrap.__doc__})
    m = pd.read_parquet(Path(cfg.output_dir) / "margin_bootstrap" / "manifest.parquet")
    m["acoustics"] = m["acoustics"].map(json.loads)
    return m.rename(columns={"label": "score"})


def _sample_info(ref: str) -> dict:
    """Speaker, text and language of a shard reference, from the sample's JSON (files: unknown)."""
    if "#" not in ref:
        return {}
    shard, member = ref.split("#", 1)
    try:
        return json.loads(refs.read_bytes(f"{shard}#{member.split('.', 1)[0]}.json"))
    except ValueError:
        return {}


def _labelled_rows(cfg) -> pd.DataFrame:
    t = read_table(cfg.labels, "labels", {"src", "tgt", "tag", "score"})
    bad = t[(t["score"] < 1) | (t["score"] > 10)]
    if len(bad):
        raise ValueError(f"labels={cfg.labels}: {len(bad)} scores outside 1..10")
    t = t.groupby(["src", "tgt", "tag"], as_index=False).agg(score=("score", "mean"))
    rows = []
    for r in t.itertuples():
        info = _sample_info(r.src)
        row = new_row(make_key([r.tag, "label"], {"src": r.src, "tgt": r.tgt}),
                      {"tag": r.tag, "text": info.get("text", ""), "language": info.get("language", "en"),
                       "label": float(r.score), "src_ref": r.src, "tgt_ref": r.tgt,
                       "speaker": info.get("speaker", "unknown")})
        # measured only, never written: the audio may be any format soundfile reads
        row["members"] = {"src.flac": refs.read_bytes(r.src), "tgt.flac": refs.read_bytes(r.tgt)}
        rows.append(row)
    init_ray(cfg.ray)
    ds = map_stages(rows_dataset(rows, 64), [(MeasurePair, {}), (SpeakerSimilarity, {})], cfg.ray.max_actors)
    out = [decode_row(r) for r in ds.iter_rows()]
    bad = [r for r in out if r["reject"]]
    if bad:
        raise ValueError(f"labels={cfg.labels}: {len(bad)} pairs unreadable, first: {bad[0]['reject']['detail']}")
    return pd.DataFrame([{**r["meta"], "score": r["meta"]["label"], "kind": "human"} for r in out])


def run(cfg):
    check_output_dir(cfg.output_dir)
    p = cfg.pipeline
    data = _labelled_rows(cfg) if cfg.labels else _bootstrap_rows(cfg)
    X = raw_features(list(data["acoustics"]), data["speaker_sim"])
    tags, y = list(data["tag"]), data["score"].to_numpy(float)
    groups = data["speaker"].to_numpy()
    # per-tag ridges learn the tag from pairs that keep the speaker (bootstrap: not 'other_speaker')
    same = (data["kind"] != "other_speaker").to_numpy()
    held = set(p.heldout_speakers)
    test = data["speaker"].isin(held).to_numpy()
    test_texts = set(data.loc[test, "text"])
    train = ~test & ~data["text"].isin(test_texts).to_numpy()  # held-out texts too
    if train.sum() < 10 or test.sum() < 5:
        raise ValueError(f"too few pairs to train/evaluate (train {train.sum()}, held out {test.sum()}); "
                         f"heldout_speakers={sorted(held)}")
    version = p.version
    held_sc = fit(X[train], [t for t, m in zip(tags, train) if m], y[train], version, groups[train], same[train])
    pred = held_sc.score_raw(X[test], [t for t, m in zip(tags, test) if m])
    ev = evaluate.metrics(pred, y[test], threshold=6.0)
    kinds = list(data.loc[test, "kind"])
    neutral = [pv for pv, k in zip(pred, kinds) if k == "intensity_0"]
    ev["neutral_pairs_max_score"] = float(max(neutral)) if neutral else None
    ev["neutral_pairs_mean_score"] = float(np.mean(neutral)) if neutral else None
    ev["by_kind"] = {k: float(np.mean([pv for pv, kk in zip(pred, kinds) if kk == k])) for k in sorted(set(kinds))}
    # the shipped model is refit on everything once the held-out numbers are taken
    final = fit(X, tags, y, version, groups, same, meta={
        "trained_on": "labels" if cfg.labels else "bootstrap (proxy labels, scorers/bootstrap.py)",
        "n_pairs": int(len(y)), "heldout_eval": ev, "heldout_speakers": sorted(held),
        "command": "python run.py " + " ".join(sys.argv[1:])})
    out = Path(p.artifact_out or Path(cfg.output_dir) / "margin_scorer" / version)
    final.save(out)
    evaluate.scatter(pred, y[test], kinds, out / "heldout_scatter.png",
                     f"{version}: held-out speakers {sorted(held)}\nSpearman {ev['spearman']:.3f}, "
                     f"MAE {ev['mae']:.2f}, keep/drop acc {ev['keep_drop_accuracy']:.3f}")
    (out / "eval.json").write_text(json.dumps(ev, indent=2))
    print(f"== margin scorer {version} -> {out}\n   held out: n={ev['n']} Spearman {ev['spearman']:.3f} "
          f"MAE {ev['mae']:.2f} keep/drop accuracy {ev['keep_drop_accuracy']:.3f}; "
          f"neutral pairs max {ev['neutral_pairs_max_score']}")
    return ev
