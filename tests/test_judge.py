"""The benchmark's judge (issue 18): its own voices and texts, a tiny CNN judge that separates two
clearly different classes on voices it never trained on, its artifact, and the HTTP path against a
real server on 127.0.0.1 that wraps the project's own judge."""
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from conftest import REPO, make_cfg

JUDGE_TAGS = ("happy", "angry", "sad", "fear", "surprised", "child", "older", "exaggerated", "recite",
              "generous", "act_coy", "whisper")


# --- own voices ---

def test_default_pool_is_unchanged():
    """The default pool's speakers and bank ids (and so its caches) are what they were before pools."""
    from tts.voice_bank import GENERATED_SPEAKERS, GeneratedVoiceBank, generated_speakers
    assert generated_speakers(["en", "zh"]) == [s for s in GENERATED_SPEAKERS if s.language in ("en", "zh")]
    assert [s.id for s in generated_speakers(["en"], 6)] == ["en_f1", "en_f2", "en_m1", "en_m2", "en_fd1", "en_md1"]
    ids = [GeneratedVoiceBank("unused", 16000, langs, per_language=n).id
           for langs, n in ((["en", "zh"], None), (["en", "zh"], 18), (["en", "zh", "yue"], 6))]
    assert ids == ["gen-bcf599c9b0", "gen-40f88ae8ba", "gen-50590accf9"]   # measured before pools existed
    assert GeneratedVoiceBank("unused", 16000, ["en", "zh"], pool="default").id == ids[0]


def test_judge_pool_has_only_its_own_voices():
    from tts.voice_bank import GeneratedVoiceBank, generated_speakers
    langs = ["en", "zh", "yue"]
    judge, default = generated_speakers(langs, 200, "judge"), generated_speakers(langs, 200)
    assert len(judge) == 600 and all(s.id.startswith(f"judge_{s.language}_") for s in judge)
    assert len({s.id for s in judge}) == 600
    voice = lambda s: (s.base_voice, s.timbre)
    assert not {voice(s) for s in judge} & {voice(s) for s in default}        # no judge voice is a training voice
    assert not {s.id for s in judge} & {s.id for s in default}
    # a different pool is different again, and sizes nest as in the default pool
    assert not {voice(s) for s in judge} & {voice(s) for s in generated_speakers(langs, 200, "benchmark")}
    assert generated_speakers(["en"], 6, "judge") == [s for s in judge if s.language == "en"][:6]
    assert [s.id for s in generated_speakers(["en"], None, "judge")] == ["judge_en_f1", "judge_en_m1",
                                                                         "judge_en_f2", "judge_en_m2"]
    assert GeneratedVoiceBank("unused", 16000, ["en"], pool="judge").id != GeneratedVoiceBank("unused", 16000, ["en"]).id
    for bad in ("Judge", "judge_x", "", "a b"):
        with pytest.raises(ValueError, match="voice_bank.pool"):
            generated_speakers(["en"], 4, bad)


# --- own texts ---

def test_judge_texts_are_disjoint_from_the_shipped_corpus():
    from tts import texts
    extra = str(REPO / "data" / "judge_texts")
    for lang in ("en", "zh"):
        shipped = {t.strip() for tag in texts.corpus(lang).values() for t in [tag["prompt"], *tag["sentences"]]}
        seen = set()
        for tag in JUDGE_TAGS:
            own = texts.sentences(lang, tag, extra, shipped=False)
            assert len(own) >= 4, (lang, tag)
            assert not set(own) & shipped, (lang, tag, set(own) & shipped)
            assert not set(own) & seen, (lang, tag)            # no sentence serves two tags
            seen |= set(own)
        assert texts.sentences(lang, "happy", extra)[: len(texts.corpus(lang)["happy"]["sentences"])] == \
            texts.corpus(lang)["happy"]["sentences"]            # shipped=True (default) still adds to the corpus
    with pytest.raises(ValueError, match="texts.extra_dir"):
        texts.sentences("en", "happy", None, shipped=False)
    with pytest.raises(ValueError, match="no sentences"):
        texts.sentences("en", "humour", extra, shipped=False)


def test_train_judge_factory_config_is_the_judges_own():
    from pipelines.train_judge import factory_cfg
    cfg = make_cfg(["pipeline=train_judge", "output_dir=/tmp/x"])
    for task, tags_key in (("emotion", "emotions"), ("style", "styles")):
        sub = factory_cfg(cfg, task)
        assert sub.voice_bank.pool == "judge" and sub.seed != cfg.seed and sub.texts.shipped is False
        assert sub.texts.extra_dir == "data/judge_texts" and sub.margin.enabled is False   # not the margin scorer
        assert sub.output_dir == "/tmp/x/judge_data" and sub.pipeline.name == f"{task}_triplets"
    assert list(factory_cfg(cfg, "emotion").emotions) == ["happy", "angry", "sad", "fear", "surprised"]


# --- a tiny judge, trained here ---

@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    """A style judge trained on neutral vs whisper clips of 4 judge-pool voices, its artifact, and the
    clips of 2 voices it never heard."""
    import torch

    from scorers.judge import artifact, fit
    from scorers.judge.labels import TASKS
    from tts.engine import LocalEngine
    from tts.presets import preset
    from tts.texts import sentences
    from tts.voice_bank import generated_speakers
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    eng = LocalEngine(16000)
    speakers = generated_speakers(["en"], 6, "judge")
    lines = sentences("en", "whisper", str(REPO / "data" / "judge_texts"), shipped=False)[:3]
    classes = TASKS["style"]
    clips = []
    for s in speakers:
        for text in lines:
            for tag, intensity in (("neutral", 0.0), ("whisper", 1.0)):
                v = s.timbre + preset(tag, intensity) if tag != "neutral" else s.timbre
                clips.append((eng.render(text, "en", v, s.base_voice, seed=0), classes.index(tag), s.id, text))
    held = {speakers[-1].id, speakers[-2].id}
    train = [c for c in clips if c[2] not in held]
    test = [c for c in clips if c[2] in held]
    model = fit.train([c[0] for c in train], [c[1] for c in train], len(classes), epochs=12, batch=8, width=16,
                      crop_s=2.0, seed=0)
    out = artifact.publish(tmp_path_factory.mktemp("judge") / "judge-test", "judge-test", {"style": model}, 16,
                           {"note": "test"})
    torch.set_num_threads(threads)
    yield {"model": model, "artifact": out, "test": test, "classes": classes, "all": clips}


def test_tiny_judge_separates_whisper_from_neutral_on_unseen_voices(tiny_judge):
    from scorers.judge import fit
    test = tiny_judge["test"]
    probs = fit.predict(tiny_judge["model"], [c[0] for c in test])
    ev = fit.evaluate(probs, [c[1] for c in test], [c[2] for c in test], tiny_judge["classes"])
    assert ev["n"] == 12 and ev["accuracy"] >= 0.9, ev
    assert sum(map(sum, ev["confusion"])) == 12
    assert set(ev["per_class_mean_over_speakers"]) == {"neutral", "whisper"}


def test_killed_judge_training_resumes_to_the_same_weights(tiny_judge, tmp_path, monkeypatch):
    import torch

    from scorers.judge import fit
    clips = tiny_judge["all"][:16]
    args = ([c[0] for c in clips], [c[1] for c in clips], len(tiny_judge["classes"]))
    kw = dict(epochs=3, batch=8, width=8, crop_s=2.0, seed=0)
    whole = fit.train(*args, **kw)
    ck, save = tmp_path / "style.pt", fit.save_checkpoint

    def killed_after_epoch_2(path, state):
        save(path, state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(fit, "save_checkpoint", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit.train(*args, checkpoint=ck, **kw)
    monkeypatch.setattr(fit, "save_checkpoint", save)
    said = []
    resumed = fit.train(*args, checkpoint=ck, log=said.append, **kw)
    assert any("resumed at epoch 2/3" in s for s in said), said
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "a resumed run ends where an uninterrupted one does"
    with pytest.raises(ValueError, match="delete it to start over"):
        fit.train(*args, checkpoint=ck, **{**kw, "epochs": 4})
    # the same number of clips, but other ones (another held-out split), or another rate: refused too
    others = ([c[0] for c in tiny_judge["all"][16:32]], [c[1] for c in tiny_judge["all"][16:32]], args[2])
    with pytest.raises(ValueError, match="other clips, labels or settings"):
        fit.train(*others, checkpoint=ck, **kw)
    with pytest.raises(ValueError, match="other clips, labels or settings"):
        fit.train(*args, checkpoint=ck, **{**kw, "lr": 1e-3})


def test_artifact_round_trips_and_is_small(tiny_judge):
    from scorers.judge import LocalJudge, fit
    out = tiny_judge["artifact"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "meta.json", "style.safetensors"]
    assert sum(p.stat().st_size for p in out.iterdir()) < 5 * 2**20
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]   # no temporary dir left behind
    judge = LocalJudge.load(out)
    x = tiny_judge["test"][0][0]
    got = judge.classify((x, 16000), "style")
    assert list(got) == list(tiny_judge["classes"]) and abs(sum(got.values()) - 1) < 1e-5
    np.testing.assert_allclose(list(got.values()), fit.predict(tiny_judge["model"], [x])[0], atol=1e-5)


def test_bad_input_gives_errors_naming_it(tiny_judge, tmp_path):
    from core.audio import BadAudio
    from scorers.judge import LocalJudge
    judge = LocalJudge.load(tiny_judge["artifact"])
    with pytest.raises(ValueError, match="judge=.*nowhere.*not a judge artifact"):
        LocalJudge.load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="task 'emotion'.*only"):
        judge.classify((np.ones(16000, np.float32) * 0.1, 16000), "emotion")   # this judge has style only
    with pytest.raises(ValueError, match="task 'mood'"):
        judge.classify((np.ones(16000, np.float32) * 0.1, 16000), "mood")
    with pytest.raises(BadAudio, match="silent"):
        judge.classify((np.zeros(16000, np.float32), 16000), "style")
    with pytest.raises(BadAudio, match=r"clip: cannot decode audio \(Format not recognised\.\)$"):   # no buffer repr
        judge.classify(b"not audio", "style")
    with pytest.raises(BadAudio, match="missing.flac: no such audio file"):
        judge.classify(str(tmp_path / "missing.flac"), "style")


# --- the HTTP judge ---

@pytest.fixture(scope="module")
def judge_server(tiny_judge):
    from scorers.judge import LocalJudge
    from scorers.judge_server import Limits, make_server
    local = LocalJudge.load(tiny_judge["artifact"])
    srv = make_server(local, "127.0.0.1", 0, Limits(max_clip_s=10.0))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield local, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _post(url, body: bytes, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/classify", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_http_judge_gives_the_local_judges_answers(judge_server, tiny_judge, tmp_path):
    from core.audio import encode_flac
    from scorers.judge.http_client import HttpJudge
    local, url = judge_server
    remote = HttpJudge(url)
    assert remote.version == "judge-test" and remote.tasks == local.tasks
    for x, *_ in tiny_judge["test"][:3]:
        path = tmp_path / "clip.flac"
        path.write_bytes(encode_flac(x, 16000))
        want = local.classify(str(path), "style")
        for clip in (str(path), path.read_bytes()):
            got = remote.classify(clip, "style")
            assert list(got) == list(want)
            np.testing.assert_allclose(list(got.values()), list(want.values()), atol=1e-6)


def test_http_judge_names_bad_input_and_survives(judge_server, tiny_judge):
    import socket

    from core.audio import encode_flac
    from core.http_body import encode_multipart
    from scorers.judge.http_client import HttpJudge, JudgeRefused
    local, url = judge_server
    remote = HttpJudge(url)
    good = encode_flac(tiny_judge["test"][0][0], 16000)
    with pytest.raises(JudgeRefused, match="400.*'audio': empty"):
        remote.classify(b"", "style")
    with pytest.raises(JudgeRefused, match="400.*'audio': cannot decode"):
        remote.classify(b"RIFF garbage", "style")
    with pytest.raises(JudgeRefused, match="400.*'audio'.*silent"):
        remote.classify((np.zeros(16000, np.float32), 16000), "style")
    with pytest.raises(JudgeRefused, match="413.*over the limit of 10 s"):
        remote.classify((np.full(16000 * 11, 0.1, np.float32), 16000), "style")
    with pytest.raises(JudgeRefused, match="400.*'tasks'.*emotion"):
        remote.classify_tasks(good, ["emotion"])
    ctype, body = encode_multipart([("audio", good), ("colour", "red")])
    assert _post(url, body, {"Content-Type": ctype}) == (400, {"error": "unknown field 'colour'; fields: audio, tasks"})
    ctype, body = encode_multipart([("audio", "not a file part")])
    code, reply = _post(url, body, {"Content-Type": ctype})
    assert code == 400 and "must be a file part" in reply["error"]
    code, reply = _post(url, b'{"audio": "..."}', {"Content-Type": "application/json"})
    assert code == 415 and "multipart/form-data" in reply["error"]
    code, reply = _post(url, b"--x\r\nnonsense", {"Content-Type": "multipart/form-data; boundary=x"})
    assert code == 400 and ("malformed" in reply["error"] or "form-data" in reply["error"]), reply
    # a broken request line and a truncated body do not bring the server down
    host, port = url.removeprefix("http://").split(":")
    for raw in (b"GARBAGE\r\n\r\n", b"POST /classify HTTP/1.1\r\nContent-Length: 1000\r\n"
                                    b"Content-Type: multipart/form-data; boundary=x\r\n\r\nshort"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            reply = b"".join(iter(lambda: s.recv(4096), b""))
            assert b'{"error": ' in reply, reply                 # an answer (HTTP/0.9 style for a bare line)
    got = remote.classify(good, "style")
    np.testing.assert_allclose(list(got.values()), list(local.classify(good, "style").values()), atol=1e-6)


# --- pipeline=train_judge on a release of the judge's own clips ---

def _triplet_tar(path, clips, speaker_of=lambda s: s, base_voice_of=lambda s: "piper:joe"):
    """A release shard as the triplet pipelines write it: per (speaker, text) KEY.json, src (neutral), tgt (whisper)."""
    import io
    import tarfile

    from core.audio import encode_flac
    by = {}
    for x, label, spk, text in clips:
        by.setdefault((spk, text), {})[label] = x
    with tarfile.open(path, "w") as tar:
        for i, ((spk, text), pair) in enumerate(sorted(by.items())):
            key = f"k{i:04d}"
            meta = {"speaker": speaker_of(spk), "language": "en", "gender": "female" if "_f" in spk else "male",
                    "text": text, "edit_info": "whisper", "task": "style_edit", "base_voice": base_voice_of(spk)}
            for suffix, data in (("json", json.dumps(meta).encode()), ("src.flac", encode_flac(pair[0], 16000)),
                                 ("tgt.flac", encode_flac(pair[7], 16000))):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_train_judge_pipeline_publishes_with_heldout_numbers(tiny_judge, tmp_path):
    from pipelines.train_judge import run
    clips = tiny_judge["all"]
    data = _triplet_tar(tmp_path / "style.tar", clips)
    cfg = make_cfg(["pipeline=train_judge", f"output_dir={tmp_path / 'out'}", "pipeline.tasks=[style]",
                    f"pipeline.style_data={data}", f"pipeline.artifact_out={tmp_path / 'judge-x'}", "pipeline.threads=1",
                    "pipeline.train.epochs=3", "pipeline.train.width=8", "pipeline.train.batch=8",
                    "pipeline.heldout_texts_per_tag=1"])
    meta = run(cfg)
    task = meta["tasks"]["style"]
    assert task["heldout"]["speakers"] == ["judge_en_f3", "judge_en_m3"]          # the last voice of each gender
    # held-out voices on held-out texts (no training clip says them); the same voices on training texts apart
    assert len(task["heldout_texts"]) == 1 and task["train"]["clips"] == 16 and task["heldout"]["clips"] == 4
    assert sum(map(sum, task["heldout_eval"]["confusion"])) == 4
    assert task["heldout_voices_training_texts_eval"]["n"] == 8
    assert not (tmp_path / ".judge-x.checkpoints").exists(), "checkpoints go once the artifact is published"
    saved = json.loads((tmp_path / "judge-x" / "meta.json").read_text())
    assert saved["tasks"]["style"]["heldout_eval"] == task["heldout_eval"]
    # a held-out engine's voices are held out too, whatever the default choice: here one training voice
    flite = _triplet_tar(tmp_path / "flite.tar", clips,
                         base_voice_of=lambda s: "flite:slt" if s == "judge_en_f1" else "piper:joe")
    meta = run(make_cfg(["pipeline=train_judge", f"output_dir={tmp_path / 'out'}", "pipeline.tasks=[style]",
                         f"pipeline.style_data={flite}", f"pipeline.artifact_out={tmp_path / 'judge-y'}",
                         "pipeline.threads=1", "pipeline.train.epochs=1", "pipeline.train.width=8",
                         "pipeline.train.batch=8", "pipeline.heldout_texts_per_tag=1", "splits.held_out_engines=[flite]"]))
    task = meta["tasks"]["style"]
    assert task["heldout"]["speakers"] == ["judge_en_f1", "judge_en_f3", "judge_en_m3"]
    assert "judge_en_f1" not in task["train"]["speakers"] and task["train"]["clips"] == 12
    assert task["heldout_engines"] == ["flite"] and task["heldout_engine_speakers"] == ["judge_en_f1"]
    # the judge trains on its own voices only
    foreign = _triplet_tar(tmp_path / "foreign.tar", clips, lambda s: s.replace("judge_", ""))
    with pytest.raises(ValueError, match="outside the judge's voice pool 'judge'"):
        run(make_cfg(["pipeline=train_judge", f"output_dir={tmp_path / 'out'}", "pipeline.tasks=[style]",
                      f"pipeline.style_data={foreign}"]))


def test_vocalization_task_trains_on_the_judges_voices_and_extends_a_judge(tiny_judge, tmp_path):
    """pipeline.tasks=[vocalization] pipeline.extend=DIR: the other judge's task kept as it was, the
    vocalization task trained on the judge pool's voices and scored on events cut by the scorer."""
    from pipelines.train_judge import run
    from scorers.judge import LocalJudge
    base = tiny_judge["artifact"]
    common = ["pipeline=train_judge", f"output_dir={tmp_path / 'out'}", "pipeline.tasks=[vocalization]", "languages=[en]",
              f"pipeline.extend={base}", "pipeline.factory.per_language=4", "pipeline.vocalization.per_tag=1",
              "pipeline.vocalization.eval_per_tag=1", "pipeline.train.epochs=2", "pipeline.train.batch=8",
              "pipeline.threads=1", f"pipeline.artifact_out={tmp_path / 'judge-y'}"]
    with pytest.raises(ValueError, match="width 16"):
        run(make_cfg([*common, "pipeline.train.width=8"]))
    meta = run(make_cfg([*common, "pipeline.train.width=16"]))
    voc = meta["tasks"]["vocalization"]
    assert voc["train"]["speakers"] == ["judge_en_f1", "judge_en_m1"]
    assert voc["heldout"]["speakers"] and set(voc["heldout"]["speakers"]) <= {"judge_en_f2", "judge_en_m2"}
    assert voc["train"]["clips"] == 2 * 10 and sum(map(sum, voc["heldout_eval"]["confusion"])) == voc["heldout"]["clips"]
    assert voc["heldout"]["clips"] + sum(voc["heldout"]["missed_by_scorer"].values()) == 2 * 10
    judge = LocalJudge.load(tmp_path / "judge-y")
    assert sorted(judge.tasks) == ["style", "vocalization"] and meta["extends"]["version"] == "judge-test"
    old, new = tiny_judge["model"].state_dict(), judge.models["style"].state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old), "the extended judge's own task is kept as it was"


def test_shipped_judge_artifact_is_whole_and_kept_apart():
    """scorers/artifacts/judge-v2: loads, is small, and its meta says it trained on judge-pool voices only
    and was scored on voices (and, for emotion and style, texts) it never trained on."""
    from scorers.judge import TASKS, LocalJudge
    from tts import texts
    path = REPO / "scorers" / "artifacts" / "judge-v2"
    assert sum(p.stat().st_size for p in path.iterdir()) < 5 * 2**20
    judge = LocalJudge.load(path)
    assert judge.tasks == {t: list(c) for t, c in TASKS.items()}
    meta = json.loads((path / "meta.json").read_text())
    shipped = {s for lang in ("en", "zh") for tag in texts.corpus(lang).values() for s in [tag["prompt"], *tag["sentences"]]}
    for task, m in meta["tasks"].items():
        train, held = set(m["train"]["speakers"]), set(m["heldout"]["speakers"])
        assert all(s.startswith("judge_") for s in train | held) and not train & held
        assert sum(map(sum, m["heldout_eval"]["confusion"])) == m["heldout"]["clips"] > 0
        assert not set(m.get("heldout_texts", [])) & shipped
        assert 0.5 < m["heldout_eval"]["accuracy"] <= 1.0                      # far above chance (1/6, 1/8, 1/10)
    x = np.sin(2 * np.pi * 220 * np.arange(16000) / 16000).astype(np.float32) * 0.3
    p = judge.classify((x, 16000), "style")
    assert list(p) == list(TASKS["style"]) and abs(sum(p.values()) - 1) < 1e-5
