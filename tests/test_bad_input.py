"""Bad input: a clear error naming the input before work starts, or a reject with its reason."""
import json
import shutil

import pandas as pd
import pytest

from conftest import RAW, _cli_run, read_samples, run_pipeline




@pytest.mark.parametrize("args,message", [
    (["emotions=[happy,furious]"], "unknown emotions ['furious']"),
    (["pipeline=style_triplets", "styles=[whisper,yodel]"], "unknown styles ['yodel']"),
    (["languages=[en,fr]"], "unknown languages ['fr']"),
    (["output_dir=/proc/forbidden"], "output_dir=/proc/forbidden is not writable"),
])
def test_config_errors_before_any_work(args, message, tmp_path):
    r = _cli_run(f"output_dir={tmp_path}", *args) if not args[0].startswith("output_dir") else _cli_run(*args)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_folder_bank_with_broken_recordings(tmp_path, cache_dir, ray_local):
    """A user folder: a good speaker, one with a corrupt clip, one with an empty clip, one without the tag."""
    from conftest import make_cfg
    from pipelines.triplets import build_voice_bank
    from tts.voice_bank import GeneratedVoiceBank
    gen = GeneratedVoiceBank(f"{cache_dir}/voice_bank", 16000, ["en"], (0.9, 1.2))
    build_voice_bank(make_cfg(["languages=[en]", *RAW, "ray.progress=false"]), gen, ["sad"])
    root = tmp_path / "voices"
    for spk, src in (("good", "en_f1"), ("corrupt", "en_m1"), ("empty", "en_f2"), ("notag", "en_m2")):
        d = root / spk
        d.mkdir(parents=True)
        (d / "speaker.json").write_text(json.dumps({"language": "en", "gender": "x"}))
        for tag in ("neutral", "sad"):
            if spk == "notag" and tag == "sad":
                continue
            clip = gen.clip(src, tag)
            shutil.copy(clip["path"], d / f"{tag}.flac")
            (d / f"{tag}.txt").write_text(clip["text"])
    (root / "corrupt" / "sad.flac").write_bytes(b"this is not audio at all" * 100)
    (root / "empty" / "sad.flac").write_bytes(b"")
    out = tmp_path / "out"
    info, _ = run_pipeline(["pipeline=emotion_triplets", "voice_bank=folder", f"voice_bank.root={root}",
                            f"output_dir={out}", "languages=[en]", "emotions=[sad]", "texts_per_tag=1",
                            *RAW, "ray.progress=false"])
    samples = read_samples(out / "emotion_triplets")
    assert [s["json"]["speaker"] for s in samples] == ["good"]
    rej = pd.read_parquet(out / "emotion_triplets" / "rejects.parquet").set_index("key")
    by_speaker = {json.loads(m)["speaker"] if m else k.split("_")[1]: (r, d)
                  for k, m, r, d in zip(rej.index, rej["meta"], rej["reason"], rej["detail"])}
    assert by_speaker["corrupt"][0] == "bad_input" and "cannot decode" in by_speaker["corrupt"][1]
    assert by_speaker["empty"][0] == "bad_input" and "empty file" in by_speaker["empty"][1]
    assert by_speaker["notag"][0] == "no_prompt"


def test_texts_a_voice_cannot_speak_are_rejected(tmp_path, cache_dir, ray_local):
    extra = tmp_path / "texts" / "en"
    extra.mkdir(parents=True)
    (extra / "happy.txt").write_text("这是中文句子。\nThat is the best news I have heard all year!\n")
    info, _ = run_pipeline(["pipeline=emotion_triplets", f"texts.extra_dir={tmp_path / 'texts'}", "texts.shipped=false",
                            f"output_dir={tmp_path / 'out'}", "languages=[en]", "emotions=[happy]",
                            "texts_per_tag=2", *RAW, "ray.progress=false"])
    rej = pd.read_parquet(tmp_path / "out" / "emotion_triplets" / "rejects.parquet")
    # caught while planning, before any rendering: each of the 4 English voices loses the Mandarin line
    assert len(rej) == 4 and set(rej["reason"]) == {"wrong_script"} and set(rej["stage"]) == {"plan"}
    assert rej["detail"].str.contains("not English").all()
    assert info["counts"]["kept"] == 4
    assert {s["json"]["text"] for s in read_samples(tmp_path / "out" / "emotion_triplets")} == {
        "That is the best news I have heard all year!"}
