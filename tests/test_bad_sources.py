"""Bad source manifests, folders and texts: each becomes a named reject (planned before any audio
work where it can be) or one `error:` line, and the good rows beside it are kept."""
import json
import logging

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import RAW, _cli_run, make_cfg, read_samples, run_pipeline

SR = 16000
TEXT = "Good morning, the train leaves at nine."
LONG_ID = "speaker-" + "x" * 92
SPEED = ["pipeline=speed_triplets", "pipeline.factors_per_source=1", "languages=[en]", *RAW, "ray.progress=false"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A short rendered English clip that passes the filters."""
    from tts.engine import LocalEngine
    from tts.voicing import Voicing
    path = tmp_path_factory.mktemp("clip") / "good.wav"
    sf.write(path, LocalEngine(SR).render(TEXT, "en", Voicing()), SR)
    return path


def _twenty_minutes(path):
    """20 min of near silence with a click each second: a few hundred kB of FLAC, not silent."""
    with sf.SoundFile(path, "w", SR, 1, format="FLAC", subtype="PCM_16") as f:
        second = np.zeros(SR, np.float32)
        second[0] = 0.01
        for _ in range(20 * 60):
            f.write(second)


def _rejects(pipeline_dir) -> pd.DataFrame:
    return pd.read_parquet(pipeline_dir / "rejects.parquet")


@pytest.fixture(scope="module")
def manifest_run(tmp_path_factory, clip, cache_dir, ray_local):
    d = tmp_path_factory.mktemp("manifest")
    _twenty_minutes(d / "long.flac")
    rows = [
        {"audio_path": str(clip), "text": TEXT, "speaker": "alice", "language": "en"},
        {"audio_path": "", "text": "No audio for this one.", "speaker": "carol", "language": "en"},
        {"audio_path": str(clip), "text": TEXT, "speaker": LONG_ID, "language": "en"},
        {"audio_path": str(clip), "text": "Good morning,\x07 the train\x1b leaves at nine.", "speaker": "dave",
         "language": "en"},
        {"audio_path": str(clip), "text": "这是中文句子。", "speaker": "erin", "language": "en"},
        {"audio_path": str(d / "long.flac"), "text": TEXT, "speaker": "frank", "language": "en"},
    ]
    pd.DataFrame(rows).to_csv(d / "sources.csv", index=False)
    args = [*SPEED, "source=manifest", f"source.path={d / 'sources.csv'}", f"output_dir={d / 'out'}"]
    info, _ = run_pipeline(args)
    out = d / "out" / "speed_triplets"
    return {"info": info, "samples": read_samples(out), "rejects": _rejects(out), "args": args}


def _speakers(run) -> list[str]:
    return [s["json"]["speaker"] for s in run["samples"]]


def _reject(run, speaker) -> dict:
    rej = run["rejects"]
    mine = rej[[json.loads(m).get("speaker") == speaker for m in rej["meta"]]]
    assert len(mine) == 1, rej[["reason", "detail"]]
    return mine.iloc[0].to_dict()


def test_good_manifest_rows_are_all_kept(manifest_run):
    assert sorted(_speakers(manifest_run)) == sorted(["alice", LONG_ID, "dave"])
    assert manifest_run["info"]["counts"]["rejected"] == 3


def test_numeric_speaker_ids_are_read_as_text(tmp_path, clip, cache_dir, ray_local):
    pd.DataFrame([{"audio_path": str(clip), "text": TEXT, "speaker": 1034, "language": "en"},
                  {"audio_path": str(clip), "text": TEXT, "speaker": 1035, "language": "en"}]).to_csv(
        tmp_path / "sources.csv", index=False)
    run_pipeline([*SPEED, "source=manifest", f"source.path={tmp_path / 'sources.csv'}", f"output_dir={tmp_path}"])
    samples = read_samples(tmp_path / "speed_triplets")
    assert [(s["json"]["speaker"], s["key"][:11]) for s in samples] == [("1034", "speed_1034_"),
                                                                        ("1035", "speed_1035_")]


def test_empty_audio_path_is_a_plan_reject(manifest_run):
    r = _reject(manifest_run, "carol")
    assert (r["stage"], r["reason"]) == ("plan", "missing_audio_path") and "no audio_path" in r["detail"]


def test_hundred_character_speaker_id_is_written_and_reused(manifest_run):
    sample = next(s for s in manifest_run["samples"] if s["json"]["speaker"] == LONG_ID)
    assert len(sample["key"]) <= 61  # a tar member name holds 100 characters: KEY.src.flac fits
    again, _ = run_pipeline(manifest_run["args"])  # the rerun reuses every finished sample
    assert again["counts"]["kept"] == 3 and again["counts"]["reused_from_previous"] == 4  # and the too_long reject


def test_control_characters_are_stripped_from_manifest_text(manifest_run):
    sample = next(s for s in manifest_run["samples"] if s["json"]["speaker"] == "dave")
    assert sample["json"]["text"] == "Good morning, the train leaves at nine."


def test_text_in_another_script_is_a_reject_without_wer(manifest_run):
    r = _reject(manifest_run, "erin")
    assert (r["stage"], r["reason"]) == ("plan", "wrong_script") and "这是中文句子" in r["detail"]


def test_twenty_minute_clip_is_judged_from_its_header(manifest_run):
    r = _reject(manifest_run, "frank")
    assert (r["stage"], r["reason"]) == ("source_speech", "too_long")
    assert "1200.0 s by the file header, limit 30 s (filters.max_duration_s)" in r["detail"]
    assert manifest_run["info"]["wall_s"] < 150  # measuring the 20 minutes alone took minutes


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, clip, cache_dir, ray_local):
    root = tmp_path_factory.mktemp("folder") / "rec"
    layout = {"alice": {"language": "en"}, "bob": None, "listy": ["en"], "klingon": {"language": "tlh"}}
    for speaker, info in layout.items():
        d = root / speaker
        d.mkdir(parents=True)
        if info is not None:
            (d / "speaker.json").write_text(json.dumps(info))
        sf.write(d / "take1.flac", sf.read(clip)[0], SR)
        (d / "take1.txt").write_text(TEXT)
    sf.write(root / "alice" / "latin1.flac", sf.read(clip)[0], SR)
    (root / "alice" / "latin1.txt").write_bytes("Caf\xe9 au lait, s'il vous pla\xeet.".encode("latin-1"))
    (root / "alice" / "orphan.txt").write_text("A transcript whose audio went missing.")
    warnings = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("lms").addHandler(handler)
    try:
        info, _ = run_pipeline([*SPEED, "source=folder", f"source.root={root}", f"output_dir={root.parent / 'out'}"])
    finally:
        logging.getLogger("lms").removeHandler(handler)
    out = root.parent / "out" / "speed_triplets"
    return {"info": info, "samples": read_samples(out), "rejects": _rejects(out), "warnings": warnings}


def _folder_reject(run, speaker, clip_name) -> dict:
    rej = run["rejects"]
    mine = rej[[json.loads(m)["audio_path"].endswith(f"/{speaker}/{clip_name}") for m in rej["meta"]]]
    assert len(mine) == 1, rej[["reason", "detail"]]
    return mine.iloc[0].to_dict()


def test_good_folders_are_all_kept(folder_run):
    assert sorted(_speakers(folder_run)) == ["alice", "bob"]


def test_speaker_json_holding_a_list_rejects_that_folder_only(folder_run):
    r = _folder_reject(folder_run, "listy", "take1.flac")
    assert (r["stage"], r["reason"]) == ("plan", "bad_speaker_json")
    assert "listy/speaker.json" in r["detail"] and "JSON object" in r["detail"]


def test_unknown_language_in_one_folder_rejects_that_folder_only(folder_run):
    r = _folder_reject(folder_run, "klingon", "take1.flac")
    assert (r["stage"], r["reason"]) == ("plan", "unknown_language")
    assert "klingon/speaker.json" in r["detail"] and "'tlh'" in r["detail"]


def test_non_utf8_transcript_is_a_reject_naming_the_file(folder_run):
    r = _folder_reject(folder_run, "alice", "latin1.flac")
    assert (r["stage"], r["reason"]) == ("plan", "bad_transcript")
    assert "alice/latin1.txt" in r["detail"] and "not UTF-8" in r["detail"]


def test_orphan_transcripts_are_one_warning(folder_run):
    orphan = [w for w in folder_run["warnings"] if "without audio" in w]
    assert len(orphan) == 1 and "1 transcript(s)" in orphan[0] and "alice/orphan.txt" in orphan[0]


def test_folder_voice_bank_skips_an_unusable_speaker(tmp_path, clip, caplog):
    from tts.voice_bank import FolderVoiceBank
    for speaker, info in (("good", {"language": "en"}), ("listy", ["en"])):
        d = tmp_path / speaker
        d.mkdir()
        (d / "speaker.json").write_text(json.dumps(info))
        sf.write(d / "neutral.flac", sf.read(clip)[0], SR)
        (d / "neutral.txt").write_text(TEXT)
    with caplog.at_level(logging.WARNING, logger="lms"):
        bank = FolderVoiceBank(str(tmp_path), ["en"], SR)
    assert [s.id for s in bank.speakers] == ["good"]
    assert "listy/speaker.json" in caplog.text


def test_denoise_from_a_folder_works_by_default(tmp_path, clip, cache_dir, ray_local):
    d = tmp_path / "rec" / "alice"
    d.mkdir(parents=True)
    sf.write(d / "take1.flac", sf.read(clip)[0], SR)
    (d / "take1.txt").write_text(TEXT)
    info, _ = run_pipeline(["pipeline=denoise_triplets", "source=folder", f"source.root={tmp_path / 'rec'}",
                            f"output_dir={tmp_path / 'out'}", "languages=[en]", *RAW, "ray.progress=false"])
    samples = read_samples(tmp_path / "out" / "denoise_triplets")
    assert [s["json"]["noise_source"] for s in samples] == ["color"]


def test_explicit_babble_without_a_voice_bank_is_one_error_line(tmp_path, clip):
    d = tmp_path / "rec" / "alice"
    d.mkdir(parents=True)
    sf.write(d / "take1.flac", sf.read(clip)[0], SR)
    (d / "take1.txt").write_text(TEXT)
    r = _cli_run("pipeline=denoise_triplets", "source=folder", f"source.root={tmp_path / 'rec'}",
                 "pipeline.noise_sources=[color,babble]", f"output_dir={tmp_path / 'out'}", "languages=[en]")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "error: babble noise" in r.stderr and "noise_sources=auto" in r.stderr


def test_manifest_that_is_not_utf8_is_one_error_line_naming_it(tmp_path):
    manifest = tmp_path / "sources.csv"
    manifest.write_bytes("audio_path,text,speaker,language\na.wav,Caf\xe9,alice,en\n".encode("latin-1"))
    r = _cli_run("pipeline=trim_triplets", "source=manifest", f"source.path={manifest}",
                 f"output_dir={tmp_path / 'out'}", "languages=[en]")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"error: source.path={manifest}: cannot read the table" in r.stderr


def test_sentence_files_split_lines_at_newline_only(tmp_path):
    from tts import texts
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "happy.txt").write_text("One line\vstill the same line\r\nA bell\x07 rings.\n")
    extra = texts.sentences("en", "happy", str(tmp_path))[len(texts.sentences("en", "happy")):]
    assert extra == ["One line still the same line", "A bell rings."]


def test_sentence_in_another_script_is_a_plan_reject(tmp_path, clip):
    from pipelines.triplets import plan
    from tts.voice_bank import FolderVoiceBank
    d = tmp_path / "voices" / "alice"
    d.mkdir(parents=True)
    (d / "speaker.json").write_text(json.dumps({"language": "en"}))
    for tag in ("neutral", "happy"):
        sf.write(d / f"{tag}.flac", sf.read(clip)[0], SR)
        (d / f"{tag}.txt").write_text(TEXT)
    (tmp_path / "texts" / "en").mkdir(parents=True)
    (tmp_path / "texts" / "en" / "happy.txt").write_text("这是中文句子。\nA good extra sentence.\n")
    cfg = make_cfg(["voice_bank=folder", f"voice_bank.root={tmp_path / 'voices'}", "languages=[en]",
                    f"texts.extra_dir={tmp_path / 'texts'}", "texts_per_tag=10", *RAW])
    bank = FolderVoiceBank(str(tmp_path / "voices"), ["en"], SR)
    rows, rejects = plan(cfg, "emotion", bank, ["happy"], ["en"])
    assert [r["meta"]["text"] for r in rows][-1] == "A good extra sentence." and len(rows) == 9
    assert [(r["reason"], "这是中文句子" in r["detail"]) for r in rejects] == [("wrong_script", True)]
