"""pipeline=preference_pairs: K answers of a tiny editor per train-split prompt of a real token release
(pipeline=tokenize over a small audio release), rated by the machine rater, paired by margin, written as
a release with pairs.parquet and report.json; resume and reuse; bad inputs named."""
import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SHIPPED_CODEC, run_pipeline, write_token_release
from core.reader import Release
from editor.llm import pairs
from editor.llm.pair_rule import prompt_split, scored_pairs, survival
from scorers.candidate_rater import speed_score, to_scale

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 16000


def voiced(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A voiced clip with syllable-like loudness: enough for the codec, WORLD and resemblyzer."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    x = sum(np.sin(h * phase) / h for h in range(1, 12))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * x * env + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def write_audio_release(pipe_dir, samples):
    """An audio release of emotion_edit samples with voice prompts, as the factory writes one."""
    from core import audio
    from core.reader import flatten
    from core.sample import SAMPLE_VERSION, Sample
    from core.shards import ShardWriter
    from core.tags import instruction
    rel = pipe_dir / "releases" / "r1"
    writer = ShardWriter(rel / "shards", pipe_dir.name, 4, 2**30)
    rows = []
    for i, (key, split, speaker, tag, text) in enumerate(samples):
        f0 = 120 + 40 * (sum(map(ord, speaker)) % 3)   # per speaker, the same in every session
        members = {"src.flac": audio.encode_flac(voiced(0.7, f0, i), SR),
                   "tgt.flac": audio.encode_flac(voiced(0.9, f0 * 1.2, 100 + i), SR),
                   "prompt.flac": audio.encode_flac(voiced(0.7, f0, 200 + sum(map(ord, speaker))), SR)}
        # a long prompt text for its audio: the clone answers' length limit (the prompt's rate) stays short
        prompt = {"member": "prompt.flac", "text": "A short prompt for the voice of this speaker.", "target": "src.flac",
                  "sha256": hashlib.sha256(members["prompt.flac"]).hexdigest()}
        js = {"task": "emotion_edit", "sample_version": SAMPLE_VERSION, "text": text, "language": "en",
              "speaker": speaker, "split": split, "sample_rate": SR, "durations": {"src": 0.7, "tgt": 0.9},
              "provenance": {}, "prompt": prompt, "instruction": instruction("emotion", tag, text), "edit_type": "emotion",
              "edit_info": tag, "acoustics": {}, "loudness": {}, "quality": {}, "gender": None, "intensity": None,
              "margin": 8.0, "prompts": {"src": {}, "tgt": {}}, "speaker_sim": None}
        shard = writer.write(Sample(key, js, members))
        rows.append({"key": key, "shard": shard, **flatten(js)})
    writer.close()
    pd.DataFrame(rows).to_parquet(rel / "manifest.parquet")
    (pipe_dir / "latest").symlink_to("releases/r1")
    for name in ("shards", "manifest.parquet"):
        (pipe_dir / name).symlink_to(f"latest/{name}")
    return pipe_dir


SAMPLES = [("e1", "train", "spk_a", "happy", "We walked home together."),
           ("e2", "train", "spk_b", "sad", "The train was late again."),
           ("e3", "test", "spk_c", "angry", "Nobody told me anything.")]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    """A real token release (pipeline=tokenize) of a small audio release: 2 train, 1 test sample."""
    root = tmp_path_factory.mktemp("pref_data")
    audio_dir = write_audio_release(root / "emo", SAMPLES)
    run_pipeline(["pipeline=tokenize", f"data={audio_dir}", f"output_dir={root}", "ray.enabled=false",
                  "pipeline.out_name=emo_tokens"])
    return root / "emo_tokens"


@pytest.fixture(scope="module")
def tiny_editor(tmp_path_factory):
    """An untrained tiny LLM artifact, as pipeline=train_editor publishes one."""
    from editor.llm.model import build_model, load_preset, save
    from editor.llm.vocab import load_vocab
    d = tmp_path_factory.mktemp("llm") / "editor-llm-tiny"
    torch.manual_seed(0)
    vocab = load_vocab()
    save(build_model(load_preset("tiny"), vocab), vocab, d)
    (d / "training.json").write_text(json.dumps({"tokenizer_version": SHIPPED_CODEC, "version": "editor-llm-tiny"}))
    return d


def args(tokens, editor, out, *extra):
    return ["pipeline=preference_pairs", f"data={tokens}", f"output_dir={out}", f"pipeline.editor={editor}",
            "pipeline.k=3", "pipeline.threshold=0.5", "pipeline.tasks=[emotion_edit,clone]", "ray.enabled=false",
            *extra]


@pytest.fixture(scope="module")
def first_run(tokens, tiny_editor, tmp_path_factory):
    out = tmp_path_factory.mktemp("pref_out")
    info, _ = run_pipeline(args(tokens, tiny_editor, out))
    return out, info


def test_candidates_pairs_and_report(first_run, tokens):
    out, info = first_run
    rel = Release(out / "preference_pairs")
    src = Release(tokens)
    train = set(src.manifest.loc[src.manifest["split"] == "train", "key"])
    assert len(rel) + info["counts"]["rejected"] == 4, "2 edit prompts and 2 clone prompts of the train split"
    assert len(rel) >= 2
    tasks = set()
    for key in rel.manifest["key"]:
        s = rel.sample(key, decode=False).validate()
        j = s.json
        tasks.add(j["source_task"])
        assert j["task"] == "preference_candidates" and j["split"] == "train"
        assert j["provenance"]["source_key"] in train, "prompts only from the train split"
        cands = j["candidates"]
        assert 2 <= len(cands) <= 3 and len(cands) + j["empty_answers"] == 3
        assert len({c["seed"] for c in cands}) == len(cands), "distinct seeds"
        ids = [np.load(io.BytesIO(s.members[c["member"].replace(".flac", ".tok.npy")])) for c in cands]
        assert len({a.tobytes() for a in ids}) == len(ids), "distinct answers"
        for c in cands:
            assert c["member"] in s.members and s.members[c["member"]][:4] == b"fLaC"
            assert 1.0 <= c["score"] <= 10.0
            assert c["rater"] == ("machine:margin-v1" if j["source_task"] == "emotion_edit" else "machine:clone-resemblyzer-v1")
        ex = json.loads(j["example"])
        assert ex["system"] == ("clone" if j["source_task"] == "clone" else "edit")
    assert tasks == {"emotion_edit", "clone"}

    table = pairs.read_pairs(out / "preference_pairs")
    assert table, "a low threshold leaves pairs from the tiny editor's answers"
    scores = {}
    for key in rel.manifest["key"]:
        j = rel.sample(key, members=[]).json
        for c in j["candidates"]:
            scores[(j["prompt_key"], c["score"])] = True
    for p in table:
        assert p["chosen_score"] - p["rejected_score"] > 0.5
        assert p["margin"] == pytest.approx(p["chosen_score"] - p["rejected_score"], abs=1e-3)
        assert (p["prompt_key"], p["chosen_score"]) in scores and (p["prompt_key"], p["rejected_score"]) in scores
        assert p["split"] == prompt_split(p["prompt_key"], 0.1)
        assert p["rater"].startswith("machine:") and not np.array_equal(p["chosen"], p["rejected"])
        assert p["tokenizer_version"] == SHIPPED_CODEC, "the answers' codec, so a trainer can refuse another"
    assert len({p["pair_id"] for p in table}) == len(table)

    report = json.loads((out / "preference_pairs" / "latest" / "report.json").read_text())
    assert report["pairs"] == len(table) and report["threshold"] == 0.5
    surv = report["pairs_over_threshold"]
    for task in ("emotion_edit", "clone"):
        counts = [surv[f"{t:g}"][task] for t in range(10)]
        assert counts == sorted(counts, reverse=True), "fewer pairs survive a stricter threshold"
    assert sum(surv["0"].values()) >= len(table) >= sum(surv["1"].values())


def test_rerun_with_another_threshold_reuses_every_answer(first_run, tokens, tiny_editor):
    out, info = first_run
    again, _ = run_pipeline(args(tokens, tiny_editor, out, "pipeline.threshold=9.5"))
    assert again["counts"]["reused_from_previous"] == info["counts"]["kept"] + info["counts"]["rejected"]
    assert pairs.read_pairs(out / "preference_pairs") == [], "no margin on the 1-10 scale exceeds 9.5"


def test_killed_run_resumes_without_regenerating(tokens, tiny_editor, tmp_path, monkeypatch):
    """One shard per prompt; the run dies on its second prompt; the rerun generates only that one on.
    (data given as a list, as data=[A,B] on the command line)"""
    from stages import llm_candidates
    calls = []
    real = llm_candidates.LlmCandidates.process_rows

    def dying(self, rows):
        calls.extend(r["key"] for r in rows if not r.get("reject"))
        if len(calls) > 1:
            raise RuntimeError("killed")
        return real(self, rows)
    monkeypatch.setattr(llm_candidates.LlmCandidates, "batch_size", 1)
    monkeypatch.setattr(llm_candidates.LlmCandidates, "process_rows", dying)
    extra = ("writer.max_samples_per_shard=1", "pipeline.tasks=[emotion_edit]", "pipeline.k=2")
    with pytest.raises(RuntimeError, match="killed"):
        run_pipeline(args(f"[{tokens}]", tiny_editor, tmp_path, *extra))
    first = calls[0]
    calls.clear()
    monkeypatch.setattr(llm_candidates.LlmCandidates, "process_rows",
                        lambda self, rows: (calls.extend(r["key"] for r in rows), real(self, rows))[1])
    info, _ = run_pipeline(args(f"[{tokens}]", tiny_editor, tmp_path, *extra))
    assert first not in calls and len(calls) == 1, "the finished prompt is not generated again"
    assert info["counts"]["resumed_shards"] == 1 and info["counts"]["kept"] + info["counts"]["rejected"] == 2


def test_pair_rule():
    assert scored_pairs([5.0, 5.0, 5.0], 0.0) == [], "tied answers make no pair"
    assert scored_pairs([9.5, 1.0, None, 1.4], 8.0) == [(0, 1, 8.5), (0, 3, 8.1)]
    assert scored_pairs([3.0, None], 0.0) == []
    s = survival({"clone": [0.5, 2.0, 8.5], "emotion_edit": []}, [0, 1, 8, 9])
    assert s == {"0": {"clone": 3, "emotion_edit": 0}, "1": {"clone": 2, "emotion_edit": 0},
                 "8": {"clone": 1, "emotion_edit": 0}, "9": {"clone": 0, "emotion_edit": 0}}
    splits = [prompt_split(f"p{i}", 0.1) for i in range(2000)]
    assert 0.07 < splits.count("validation") / 2000 < 0.13 and prompt_split("p1", 0.1) == splits[1]


def test_rules_of_the_rater():
    assert speed_score(2.0, 1.0, 2.0) == pytest.approx(10.0), "twice as fast: half the duration"
    assert speed_score(2.0, 2.0, 2.0) == pytest.approx(1.0), "unchanged duration: a factor of 2 off"
    assert 1.0 < speed_score(2.0, 1.5, 2.0) < 10.0
    assert to_scale(0.95, 0.5, 0.95) == 10.0 and to_scale(0.2, 0.5, 0.95) == 1.0


def test_bad_inputs_are_named(tokens, tiny_editor, tmp_path):
    with pytest.raises(ValueError, match="not a token release"):
        run_pipeline(args(tokens.parent / "emo", tiny_editor, tmp_path))
    with pytest.raises(ValueError, match="not an audio-LLM artifact"):
        run_pipeline(args(tokens, tmp_path, tmp_path))
    with pytest.raises(ValueError, match=r"pipeline.k=1"):
        run_pipeline(args(tokens, tiny_editor, tmp_path, "pipeline.k=1"))
    with pytest.raises(ValueError, match=r"unknown tasks \['karaoke'\]"):
        run_pipeline(args(tokens, tiny_editor, tmp_path, "pipeline.tasks=[clone,karaoke]"))
    with pytest.raises(ValueError, match="threshold"):
        run_pipeline(args(tokens, tiny_editor, tmp_path, "pipeline.threshold=-1"))
    with pytest.raises(ValueError, match="no train-split examples"):
        run_pipeline(args(tokens, tiny_editor, tmp_path, "pipeline.tasks=[speed_edit]"))
    bare = write_token_release(tmp_path / "bare_tokens", [{"key": "b1", "split": "train", "speaker": "s", "tag": "happy",
                                                           "text": "Hi there.", "src": [1, 2, 3], "tgt": [4, 5]}])
    with pytest.raises(ValueError, match="does not record the audio release it was made from"):
        run_pipeline(args(bare, tiny_editor, tmp_path))
    other = tmp_path / "editor-other-codec"
    other.mkdir()
    for f in tiny_editor.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "training.json").write_text(json.dumps({"tokenizer_version": "tokenizer-v2", "version": "x"}))
    with pytest.raises(ValueError, match="trained on codec tokenizer tokenizer-v2"):
        run_pipeline(args(tokens, other, tmp_path))
