"""The editing benchmark (pipeline=edit_benchmark): the set and its disjointness, the protocol
(feedback and prompt-fixed), failure scoring, the HTTP editor and HTTP judge against real servers on
127.0.0.1, the paralinguistic scorer, and a whole run on a tiny LLM with the identity baseline."""
import json
import threading

import numpy as np
import pytest
import torch

from benchmark import bench_set, protocol
from benchmark.editors import BenchmarkEditor, Failed, LlmEditor, checked, run_safely
from benchmark.scoring import Scorer
from benchmark.store import ClipStore
from conftest import REPO, SHIPPED_CODEC, make_cfg

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SR = 16000


def voiced(seconds, f0=140.0, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    ph = 2 * np.pi * np.cumsum(f0 + 20 * np.sin(2 * np.pi * 1.5 * t + seed)) / SR
    x = sum(np.sin(k * ph) / k for k in range(1, 12)) * (0.5 - 0.5 * np.cos(2 * np.pi * t / seconds))
    return (0.2 * x).astype(np.float32)


# --- the set ---

def test_benchmark_texts_are_disjoint_from_every_training_and_judge_text():
    from tts import texts
    langs = ["en", "zh"]
    bench = bench_set.all_texts(langs)
    assert len(bench) >= 2 * (12 * 5 + 8)
    shipped = {s for lang in langs for tag, v in texts.corpus(lang).items() for s in [v["prompt"], *v["sentences"]]}
    judge = {l.strip() for lang in langs for f in (REPO / "data" / "judge_texts" / lang).glob("*.txt")
             for l in f.read_text(encoding="utf-8").split("\n") if l.strip()}
    assert shipped and judge
    assert not bench & shipped, sorted(bench & shipped)[:3]
    assert not bench & judge, sorted(bench & judge)[:3]


def test_benchmark_speakers_are_no_default_or_judge_pool_voice():
    from tts.voice_bank import generated_speakers
    bench = bench_set.speakers(["en", "zh"])
    assert [s.id for s in bench] == [f"benchmark_{l}_{g}{n}" for l in ("en", "zh") for n in (1, 2) for g in ("f", "m")]
    assert sorted(s.gender for s in bench) == ["female"] * 4 + ["male"] * 4
    voice = lambda s: (s.base_voice, s.timbre)      # a voice is its base and timbre, whatever its id
    for pool in ("default", "judge"):
        others = generated_speakers(["en", "zh"], 200, pool)
        assert not {voice(s) for s in bench} & {voice(s) for s in others}, pool
        assert not {s.id for s in bench} & {s.id for s in others}


def test_set_is_n_per_label_and_language_fixed_by_the_seed():
    labels = {"emotion": ["happy", "sad"], "style": ["whisper"], "paralinguistic": ["Laughter", "Uhm"]}
    a = bench_set.build(["en", "zh"], labels, 6, 0)
    assert a == bench_set.build(["en", "zh"], labels, 6, 0)
    assert a != bench_set.build(["en", "zh"], labels, 6, 1)
    counts = {}
    for p in a:
        counts[p["language"], p["label"]] = counts.get((p["language"], p["label"]), 0) + 1
        assert p["speaker"].startswith(f"benchmark_{p['language']}_")
    assert set(counts.values()) == {6} and len(counts) == 10
    para = [p for p in a if p["category"] == "paralinguistic"]
    assert all(f"[{p['label']}]" in p["text_with_tags"] and "[" not in p["text"] and "*" not in p["text"] for p in para)
    with pytest.raises(ValueError, match=r"pipeline.n=21: only 20"):
        bench_set.build(["en"], {"emotion": ["happy"]}, 21, 0)


def test_editor_trained_on_a_benchmark_speaker_is_refused(tmp_path):
    from pipelines.edit_benchmark import refuse_trained_on_benchmark
    refuse_trained_on_benchmark(REPO / "editor" / "artifacts" / "editor-llm-v2", ["en", "zh"])   # the shipped one passes
    (tmp_path / "training.json").write_text(json.dumps({"data": {"emotion_edit": {"speakers": ["en_m1", "benchmark_zh_m2"]}}}))
    with pytest.raises(ValueError, match=r"benchmark_zh_m2"):
        refuse_trained_on_benchmark(tmp_path, ["en", "zh"])
    # a warped copy is its speaker; a voice the judge trained (or was tested) on is refused too
    (tmp_path / "training.json").write_text(json.dumps({"data": {"emotion_edit": {"speakers": ["benchmark_en_f1~vtlp1.12"]}}}))
    with pytest.raises(ValueError, match=r"benchmark_en_f1"):
        refuse_trained_on_benchmark(tmp_path, ["en", "zh"])
    (tmp_path / "training.json").write_text(json.dumps({"data": {"emotion_edit": {"speakers": ["judge_en_f1~vtlp0.88"]}}}))
    refuse_trained_on_benchmark(tmp_path, ["en", "zh"])                  # no judge named: the benchmark's own check
    with pytest.raises(ValueError, match=r"the judge .* trained on, \['judge_en_f1'\]"):
        refuse_trained_on_benchmark(tmp_path, ["en", "zh"], REPO / "scorers" / "artifacts" / "judge-v2")


def test_run_identity_is_the_models_content_not_their_path(tiny_llm, tmp_path):
    """A benchmark resumed after its editor was retrained in place must not reuse the old editor's clips:
    the run's identity holds the editor's (and its codec's) bytes; a copy elsewhere is the same editor."""
    import shutil

    from pipelines.edit_benchmark import model_digest
    copy = tmp_path / "copy"
    shutil.copytree(tiny_llm, copy)
    assert model_digest(copy) == model_digest(tiny_llm) and "+" in model_digest(copy), "with its codec's bytes"
    (copy / "generation_config.json").write_text("{}")
    assert model_digest(copy) != model_digest(tiny_llm)
    assert model_digest("identity") is None and model_digest("http://127.0.0.1:1") is None


def test_int8_editor_is_named_apart_and_quantized(tiny_llm, tmp_path):
    from benchmark.choose import editor_name, load_editor
    from editor.llm.quantize import Int8Linear
    plain, int8 = editor_name(tiny_llm), editor_name(tiny_llm, "int8")
    assert int8 == plain + "+int8"            # its results never mix with the bf16 model's
    ed = load_editor(str(tiny_llm), device="cpu", quantize="int8")
    assert ed.name == int8 and any(isinstance(m, Int8Linear) for m in ed.editor.model.modules())
    y = ed.edit(voiced(0.6), "Hello there.", "emotion", "sad")
    assert y.dtype == np.float32 and np.isfinite(y).all()
    from pipelines.edit_benchmark import run
    with pytest.raises(ValueError, match="pipeline.quantize=int8: only an audio-LLM editor"):
        run(make_cfg(["pipeline=edit_benchmark", "pipeline.editor=identity", "pipeline.quantize=int8",
                      f"output_dir={tmp_path}"]))
    with pytest.raises(ValueError, match="pipeline.quantize='int4': null or int8"):
        run(make_cfg(["pipeline=edit_benchmark", f"pipeline.editor={tiny_llm}", "pipeline.quantize=int4",
                      f"output_dir={tmp_path}"]))


# --- the protocol ---

class Appending(BenchmarkEditor):
    """Each edit appends 0.1 s of a tone to its input, and records the input's length."""
    name = "appending"

    def __init__(self):
        self.inputs, self.calls = [], 0

    def clone(self, prompt_wav, prompt_text, text, language="en", seed=0):
        self.calls += 1
        return voiced(1.0, seed=seed)

    def edit(self, wav, text, edit_type, edit_info, language="en", seed=0):
        self.calls += 1
        self.inputs.append(len(wav))
        return np.concatenate([wav, voiced(0.1, f0=300)])


def _prompts(n=2):
    return [{"id": f"p{i}", "language": "en", "category": "emotion", "label": "happy", "speaker": "s", "text": "Hello there."}
            for i in range(n)]


def test_iterations_feed_back_and_prompt_fixed_keeps_iter0(tmp_path):
    ed, store = Appending(), ClipStore(tmp_path)
    ps = _prompts()
    start = protocol.clone_all(ed, ps, {"s": {"wav": voiced(1.0), "text": "hi"}}, store, "r", 0)
    fb = protocol.iterate(ed, ps, start, 3, False, store, "r/feedback", 0)
    assert ed.inputs == [16000, 16000, 17600, 17600, 19200, 19200]        # iter k edits iter k-1's output
    for p in ps:
        chain = [start[p["id"]], *fb[p["id"]]]
        for k in range(1, 4):
            assert np.allclose(chain[k][:len(chain[k - 1])], chain[k - 1], atol=1e-4)
    ed.inputs = []
    pf = protocol.iterate(ed, ps, start, 3, True, store, "r/prompt_fixed", 0)
    assert ed.inputs == [16000] * 6                                          # every iteration edits Iter0
    assert all(len(y) == 17600 for p in ps for y in pf[p["id"]])
    calls = ed.calls                                                         # a rerun makes nothing again
    again = protocol.iterate(ed, ps, start, 3, False, store, "r/feedback", 0)
    assert ed.calls == calls and all(np.array_equal(a, b) for p in ps for a, b in zip(again[p["id"]], fb[p["id"]]))


class Broken(BenchmarkEditor):
    """Answers empty audio, NaN, a 2-D array, or raises, by the prompt's label."""
    name = "broken"

    def clone(self, prompt_wav, prompt_text, text, language="en", seed=0):
        return voiced(1.0)

    def edit(self, wav, text, edit_type, edit_info, language="en", seed=0):
        if edit_info == "happy":
            return np.zeros(0, np.float32)
        if edit_info == "sad":
            return np.full(SR, np.nan, np.float32)
        if edit_info == "whisper":
            return np.zeros((2, SR), np.float32)
        raise RuntimeError("model exploded")


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    """A real judge artifact with untrained weights: the benchmark's plumbing, not its accuracy."""
    from scorers.judge import LocalJudge, artifact
    from scorers.judge.cnn import LogMelCNN
    from scorers.judge.labels import TASKS
    torch.manual_seed(0)
    d = artifact.publish(tmp_path_factory.mktemp("judge") / "judge-tiny", "judge-tiny",
                         {t: LogMelCNN(len(c), width=8).eval() for t, c in TASKS.items()}, 8, {"note": "test"})
    return d, LocalJudge.load(d)


def test_broken_editor_is_scored_as_failures_with_reasons(tmp_path, tiny_judge):
    assert isinstance(checked([]), Failed) and isinstance(checked(np.full(SR, np.inf)), Failed)
    assert isinstance(checked(np.zeros(SR)), Failed) and isinstance(checked("nonsense"), Failed)
    ps = [{**p, "label": lab, "category": cat, "id": lab} for p, (cat, lab) in
          zip(_prompts(4), [("emotion", "happy"), ("emotion", "sad"), ("style", "whisper"), ("style", "child")])]
    store = ClipStore(tmp_path)
    start = protocol.clone_all(Broken(), ps, {"s": {"wav": voiced(1.0), "text": "hi"}}, store, "b", 0)
    iters = protocol.iterate(Broken(), ps, start, 3, False, store, "b/feedback", 0)
    reasons = {p["id"]: iters[p["id"]][0].reason for p in ps}
    assert reasons == {"happy": "empty audio", "sad": "NaN or infinite samples",
                       "whisper": "not a mono 1-D waveform (shape (2, 16000))", "child": "RuntimeError: model exploded"}
    assert all(y.reason.startswith("no input: ") for p in ps for y in iters[p["id"]][1:])
    scorer = Scorer(tiny_judge[1], similarity=False, wer=False)
    cells = [scorer.judged(y, p) for p in ps for y in iters[p["id"]]]
    assert all(c["correct"] is False and c["failed"] for c in cells)
    ok = scorer.judged(start["happy"], ps[0])                               # Iter0 itself is judged
    assert "failed" not in ok and ok["predicted"] in ("neutral", "happy", "angry", "sad", "fear", "surprised")
    para = {"id": "x", "language": "en", "category": "paralinguistic", "label": "Uhm", "text": "Hello there.",
            "text_with_tags": "[Uhm] Hello there."}
    assert scorer.paralinguistic(start["happy"], Failed("empty audio"), para)["score"] == 1


# --- the paralinguistic scorer ---

def test_paralinguistic_scorer_ranks_an_inserted_event_above_none():
    from core.nvspeech import strip_tags
    from scorers.judge.paralinguistic import score
    from tts.engine import LocalEngine
    from tts.vocalizations import render_tagged
    eng = LocalEngine(SR)
    spk = bench_set.speakers(["en"])[0]
    tagged_text = "The kettle is boiling, [Laughter] so grab the cups from the shelf."
    src = eng.render(strip_tags(tagged_text), "en", spk.timbre, spk.base_voice, seed=0)
    with_event = render_tagged(eng, tagged_text, "en", spk.timbre, spk.base_voice, seed=1)[0]
    without = eng.render(strip_tags(tagged_text), "en", spk.timbre, spk.base_voice, seed=2)
    wrong_place = render_tagged(eng, "[Laughter] The kettle is boiling, so grab the cups from the shelf.", "en",
                                spk.timbre, spk.base_voice, seed=1)[0]
    good, none, misplaced = score(src, with_event, tagged_text), score(src, without, tagged_text), score(src, wrong_place, tagged_text)
    assert good["score"] == 3 and good["found"] == ["Laughter"], good
    assert none["score"] == 1 and none["missing"] == ["Laughter"], none
    assert misplaced["score"] < 3, misplaced
    # the event named: the shipped judge hears laughter there; another sound in its place is "flawed" (2)
    from benchmark.choose import load_judge
    from benchmark.scoring import Scorer
    named = Scorer(load_judge(None), similarity=False, wer=False)._name_event()
    typed = score(src, with_event, tagged_text, name_event=named)
    assert typed["score"] == 3 and typed["found"] == ["Laughter"] and typed["type_checked"], typed
    wrong = score(src, with_event, tagged_text, name_event=lambda seg: "Sigh")
    assert wrong["score"] == 2 and wrong["wrong_type"] == ["Laughter"] and not wrong["found"], wrong
    with pytest.raises(ValueError, match="no \\[Tag\\]"):
        score(src, without, "no tags here")


# --- HTTP: the editor and the judge behind real servers on 127.0.0.1 ---

@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from editor.llm import model as llm_model
    from editor.llm.editor import Editor, write_codec_meta
    from editor.llm.vocab import load_vocab
    torch.manual_seed(0)
    vocab = load_vocab()
    d = tmp_path_factory.mktemp("llm")
    llm_model.save(llm_model.build_model(llm_model.load_preset("tiny"), vocab), vocab, d)
    write_codec_meta(d, SHIPPED_CODEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Editor, "margin_tokens", 10)    # a random model never says <|eos|>: keep its outputs short
        yield d


def _serve(srv):
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_http_editor_gives_the_local_editors_audio_and_failures(tiny_llm):
    from benchmark.editor_server import make_server
    from benchmark.http_editor import HttpEditor
    local = LlmEditor.load(str(tiny_llm), device="cpu")      # a path as the command line gives it
    srv, broken_srv = make_server(local), make_server(Broken())
    url, broken_url = _serve(srv), _serve(broken_srv)
    try:
        remote = HttpEditor(url)
        assert remote.name == f"http:{local.name}"
        from core import audio
        prompt = audio.decode(audio.encode_flac(voiced(1.5), SR))[0]     # what travels is 16-bit FLAC
        a = local.clone(prompt, "a prompt", "Hello there.", seed=4)
        b = remote.clone(prompt, "a prompt", "Hello there.", seed=4)
        assert len(a) == len(b) and np.abs(a - b).max() < 1e-3
        e_local = local.edit(b, "Hello there.", "emotion", "sad", seed=4)
        e_remote = remote.edit(b, "Hello there.", "emotion", "sad", seed=4)
        assert len(e_local) == len(e_remote) and np.abs(e_local - e_remote).max() < 1e-3
        bad = run_safely(remote, "edit", [dict(wav=a, text="Hello there.", edit_type="emotion", edit_info="bored")])
        assert isinstance(bad[0], Failed) and "HTTP 400" in bad[0].reason and "bored" in bad[0].reason
        from core.http_body import encode_multipart
        import urllib.error
        import urllib.request
        for parts, field in [([("audio", b"not audio"), ("text", "x"), ("edit_type", "emotion"), ("edit_info", "sad")], "audio"),
                             ([("audio", audio.encode_flac(b, SR)), ("edit_type", "emotion"), ("edit_info", "sad")], "text"),
                             ([("audio", audio.encode_flac(b, SR)), ("text", "x"), ("edit_type", "emotion"),
                               ("edit_info", "sad"), ("volume", "11")], "volume")]:
            ctype, body = encode_multipart(parts)
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(urllib.request.Request(f"{url}/edit", data=body, headers={"Content-Type": ctype}))
            assert e.value.code == 400 and field in json.loads(e.value.read())["error"]
        broken = HttpEditor(broken_url)
        got = run_safely(broken, "edit", [dict(wav=a, text="x", edit_type="emotion", edit_info=lab) for lab in ("happy", "fear")])
        assert "HTTP 500" in got[0].reason and "empty audio" in got[0].reason
        assert "HTTP 500" in got[1].reason and "model exploded" in got[1].reason
    finally:
        for s in (srv, broken_srv):
            s.shutdown()
            s.server_close()


def test_http_judge_scores_cells_like_the_local_judge(tiny_judge):
    from scorers.judge.http_client import HttpJudge
    from scorers.judge_server import make_server
    srv = make_server(tiny_judge[1])
    try:
        remote = Scorer(HttpJudge(_serve(srv)), similarity=False, wer=False)
        local = Scorer(tiny_judge[1], similarity=False, wer=False)
        for i, p in enumerate(_prompts(1) + [{**_prompts(1)[0], "category": "style", "label": "whisper"}]):
            y = voiced(1.2, f0=120 + 40 * i)
            r, l = remote.judged(y, p), local.judged(y, p)
            assert r["predicted"] == l["predicted"] and abs(r["p_label"] - l["p_label"]) < 1e-3
    finally:
        srv.shutdown()
        srv.server_close()


# --- a whole run ---

def test_pipeline_runs_the_protocol_with_the_identity_baseline(tiny_llm, tiny_judge, tmp_path, cache_dir):
    from pipelines.edit_benchmark import run
    from scorers.judge_server import make_server
    srv = make_server(tiny_judge[1])
    url = _serve(srv)
    rec = tmp_path / "rec"
    rec.mkdir()
    from core import audio
    (rec / "mine.flac").write_bytes(audio.encode_flac(voiced(1.5), SR))
    (rec / "mine.txt").write_text("This is my own recording.")
    (rec / "broken.wav").write_bytes(b"not audio")
    (rec / "broken.txt").write_text("Nothing.")
    try:
        cfg = make_cfg(["pipeline=edit_benchmark", f"pipeline.editor={tiny_llm}", f"pipeline.judge={url}",
                        "pipeline.n=1", "pipeline.languages=[en]", "pipeline.emotions=[sad]", "pipeline.styles=[whisper]",
                        "pipeline.paralinguistic=[Uhm]", "pipeline.n_iter=2", "pipeline.generalisation=[base_voice,other_engine]",
                        "pipeline.baselines=[identity]", f"pipeline.recordings={rec}", "pipeline.wer=false",
                        "pipeline.device=cpu", "ray.enabled=false", f"output_dir={tmp_path / 'out'}"])
        out = run(cfg)
    finally:
        srv.shutdown()
        srv.server_close()
    rel = tmp_path / "out" / "edit_benchmark" / "latest"
    assert rel.resolve() == tmp_path / "out" / "edit_benchmark" / "releases" / out["release"].split("/")[-1]
    for f in ("manifest.json", "results.json", "tables.md", "accuracy_emotion.png", "accuracy_style.png", "rejects.json"):
        assert (rel / f).is_file(), f
    res = json.loads((rel / "results.json").read_text())
    rows = {(r["run"], r["source"], r["mode"], r["category"], r["iter"]): r for r in res["summary"]["judged"]}
    for key in [("editor", "own", "feedback"), ("editor", "own", "prompt_fixed"), ("identity", "own", "feedback"),
                ("editor", "base_voice", "feedback"), ("editor", "other_engine", "feedback"),
                ("editor", "recordings", "feedback")]:
        assert all((*key, cat, k) in rows for cat in ("emotion", "style") for k in range(3)), key
    sources = rel / "audio" / "sources"
    for x in json.loads((rel / "manifest.json").read_text()):
        if x["category"] != "paralinguistic":      # another engine's voice: not the plain base voice's audio
            a, b = (audio.load(sources / s / x["id"] / "iter0.flac", SR) for s in ("base_voice", "other_engine"))
            assert len(a) != len(b) or not np.allclose(a, b)
    ident = [c for c in res["cells"] if c["run"] == "identity"]
    assert ident and all(c.get("similarity", 0) > 0.99 for c in ident)          # no edit: Iter0's voice exactly
    for cat in ("emotion", "style"):                                              # and Iter0's verdict every time
        assert len({rows[("identity", "own", "feedback", cat, k)]["accuracy"] for k in range(3)}) == 1
    para = {(r["run"], r["column"]) for r in res["summary"]["paralinguistic"]}
    assert para == {("editor", "iter0"), ("editor", "iter1"), ("factory", "substitution"), ("factory", "tagged_rendering")}
    rejects = json.loads((rel / "rejects.json").read_text())
    assert any(r["what"] == "recording" and r["name"] == "broken.wav" for r in rejects)
    md = (rel / "tables.md").read_text()
    assert "| identity | own | feedback | en |" in md and "Paralinguistic score" in md
    assert len(list((rel / "audio" / "editor" / "own" / "feedback").rglob("*.flac"))) == 2 * 2   # 2 chains x 2 iterations
    # what bench/int8_quality_gpu.py carries to the GPU machine: each emotion and style prompt's Iter0 clip
    from bench.int8_quality_gpu import make_clips
    make_clips(rel, tmp_path / "clips")
    made = json.loads((tmp_path / "clips" / "manifest.json").read_text())
    assert [p["id"] for p in made] == ["en-emotion-sad-000", "en-style-whisper-000"]
    for p in made:
        assert (tmp_path / "clips" / f"{p['id']}.flac").read_bytes() == \
            (rel / "audio" / "editor" / "own" / p["id"] / "iter0.flac").read_bytes()
    assert np.load(tmp_path / "clips" / "mel_basis.npy").ndim == 2


def test_other_engine_source_is_a_held_out_engines_voice_of_the_speakers_sex():
    from pipelines.edit_benchmark import other_engine_voice, other_engine_voices
    from tts.base_voices import base_voice_sex
    voices = other_engine_voices("flite", ["en", "zh"])
    assert set(voices) == {"en"} and voices["en"] and all(v.startswith("flite:") for v in voices["en"])
    for s in bench_set.speakers(["en"]):
        v = other_engine_voice(s, voices)
        assert base_voice_sex(v) == s.gender and v == other_engine_voice(s, voices)
    with pytest.raises(ValueError, match="pipeline.other_engine='flight'"):
        other_engine_voices("flight", ["en"])
    with pytest.raises(ValueError, match="no installed voice of it speaks zh"):
        other_engine_voices("flite", ["zh"])


def test_tables_average_speakers_then_labels_then_languages(tmp_path):
    from benchmark import tables
    cell = lambda lang, label, spk, ok, it=0: {"run": "editor", "source": "own", "mode": "feedback", "category": "emotion",
                                              "language": lang, "label": label, "speaker": spk, "iter": it, "correct": ok,
                                              "predicted": label if ok else "neutral"}
    # en: happy is speaker a 3/3 and speaker b 0/1 -> 0.5, sad 1/1 -> 1.0, so en = 0.75 (by clip it would be 4/5)
    cells = [cell("en", "happy", "a", True), cell("en", "happy", "a", True), cell("en", "happy", "a", True),
             cell("en", "happy", "b", False), cell("en", "sad", "a", True), cell("zh", "happy", "c", False)]
    s = tables.summarize(cells)
    acc = {r["language"]: r["accuracy"] for r in s["judged"]}
    assert acc == {"en": 0.75, "zh": 0.0}
    md = tables.markdown(s, 0)
    assert "| editor | own | feedback | average | 37.5 |" in md
    assert "| editor | own | feedback | zh | 0.0 | 100.0 |" in md    # heard as neutral
    assert [p.name for p in tables.plots(s, 0, tmp_path)] == ["accuracy_emotion.png"]


def test_rounds_run_the_same_on_ray_and_in_process(tiny_judge, tmp_path, cache_dir, ray_local, caplog):
    """Every round goes through the runner's stages: on Ray actors, or (ray.enabled=false, as on the
    GPU machine) the same stages in this process, with the same cells."""
    import logging

    from pipelines.edit_benchmark import run
    caplog.set_level(logging.INFO, logger="lms")
    common = ["pipeline=edit_benchmark", "pipeline.editor=identity", f"pipeline.judge={tiny_judge[0]}", "pipeline.n=1",
              "pipeline.languages=[en]", "pipeline.emotions=[sad]", "pipeline.styles=[whisper]", "pipeline.paralinguistic=[]",
              "pipeline.n_iter=1", "pipeline.generalisation=[]", "pipeline.baselines=[]", "pipeline.prompt_fixed=false",
              "pipeline.wer=false", "ray.progress=false"]
    cells = {}
    for mode in ("true", "false"):
        caplog.clear()
        run(make_cfg([*common, f"ray.enabled={mode}", f"output_dir={tmp_path / mode}"]))
        ran_here = "running benchmark_call in this process" in caplog.text
        assert ran_here == (mode == "false"), caplog.text[-500:]
        res = json.loads((tmp_path / mode / "edit_benchmark" / "latest" / "results.json").read_text())
        assert json.loads((tmp_path / mode / "edit_benchmark" / "latest" / "run.json").read_text())["ray"] == (mode == "true")
        cells[mode] = sorted(res["cells"], key=lambda c: (c["id"], c["iter"]))
    assert len(cells["true"]) == 2 * 2 and cells["true"] == cells["false"]


def test_editor_judge_and_reward_shorthand_of_model_commands():
    from run import model_shorthand
    argv = ["pipeline=edit_benchmark", "editor=editor/artifacts/editor-llm-v12", "judge=http://127.0.0.1:8766", "pipeline.n=3"]
    assert model_shorthand(argv) == ["pipeline=edit_benchmark", "pipeline.editor=editor/artifacts/editor-llm-v12",
                                         "pipeline.judge=http://127.0.0.1:8766", "pipeline.n=3"]
    assert model_shorthand(["pipeline=edit_benchmark", "editor=tiny"]) == ["pipeline=edit_benchmark", "editor=tiny"]
    assert model_shorthand(["pipeline=train_decoder", "editor=tiny"]) == ["pipeline=train_decoder", "editor=tiny"]
    assert model_shorthand(["pipeline=train_ppo", "editor=e", "reward=r"]) == [
        "pipeline=train_ppo", "pipeline.editor=e", "pipeline.reward=r"]
