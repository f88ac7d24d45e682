"""Quality filters, splits and the run report, with the default selection switched on."""
import json

import pandas as pd

from conftest import run_pipeline


def test_filters_splits_and_report(tmp_path, cache_dir, ray_local):
    info, _ = run_pipeline(["pipeline=emotion_triplets", f"output_dir={tmp_path}", "languages=[en,zh]",
                            "emotions=[happy]", "texts_per_tag=2", "margin.enabled=false", "quality.wer.enabled=true",
                            "quality.wer.max=0.05",
                            "ray.progress=false"])
    d = tmp_path / "emotion_triplets"
    m, rej = pd.read_parquet(d / "manifest.parquet"), pd.read_parquet(d / "rejects.parquet")
    q = [json.loads(x) for x in m["quality"]]
    for row, qq in zip(m.itertuples(), q):
        assert "prompt_sim" in qq and qq["prompt_sim"] >= 0.55
        assert (row.language == "en") == ("wer_src" in qq)
        assert qq.get("wer_src", 0) <= 0.05
    high = rej[rej["reason"] == "high_wer"]
    assert len(high) > 0 and (high["value"] > 0.05).all()  # strict on purpose: some English clips drop
    assert len(m) + len(rej) == 16
    # no speaker and no text crosses splits
    both = pd.concat([m[["speaker", "text", "split"]],
                      pd.DataFrame([json.loads(x) for x in rej["meta"]])[["speaker", "text", "split"]]])
    assert (both.groupby("speaker")["split"].nunique() == 1).all()
    assert (both.groupby("text")["split"].nunique() == 1).all()
    assert set(m["split"]) <= {"train", "validation", "test"}
    report = (d / "report.md").read_text()
    for section in ("## By edit_info", "## By speaker", "## Drops by reason", "## Stages", "![wer_src]"):
        assert section in report
    from pipelines.report import audio_span      # the amount of audio in a unit that keeps it readable
    assert info["audio_hours"] > 0 and f"{audio_span(info['audio_hours'])} of audio" in report
    assert (audio_span(3 / 3600), audio_span(0.5), audio_span(3.25)) == ("3.0 s", "30.0 min", "3.25 h")
    assert (d / "latest" / "report_drops.png").stat().st_size > 5000
