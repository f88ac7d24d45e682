"""The Editor API on a tiny random LLM with the shipped codec: clone, iterative edits, batching,
long-audio splitting, artifact version checks and every bad-input error."""
import json
import shutil

import numpy as np
import pytest
from conftest import SHIPPED_CODEC, voiced
from editor.llm.editor import (ArtifactMismatch, DEFAULT_DECODER, DEFAULT_PIECE_S, EDIT_TYPES, SR, Editor,
                               crossfade_join, guidance_of, guided_iterations_of, piece_seconds, split_points, split_text, write_codec_meta)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ed(short_editor):
    return short_editor


@pytest.fixture
def spy(ed, monkeypatch):
    """Record what is generated, and skip the (slow) decoder: each output -> 384 samples per token."""
    calls = {"prompts": [], "limits": [], "out": [], "decoded": []}
    real = ed._generate

    def gen(prompts, max_new, seeds, temps, **kw):
        out = real(prompts, max_new, seeds, temps, **kw)
        calls["prompts"].append(prompts), calls["limits"].append(max_new), calls["out"].append(out)
        calls.setdefault("kw", []).append(kw)
        return out

    def dec(ids_list, refs):
        calls["decoded"].append(ids_list)
        return [np.ones(len(i) * 384, np.float32) for i in ids_list]
    monkeypatch.setattr(ed, "_generate", gen)
    monkeypatch.setattr(ed, "_decode", dec)
    return calls


def test_clone_gives_audio_of_bounded_length(ed):
    prompt = voiced(1.0)
    y = ed.clone(prompt, "hello there", "hi", seed=1)
    n_prompt = 42   # ~41.67 tokens per second
    limit = (n_prompt / len("hello there") * 2 * 2 + ed.margin_tokens + 5) / 41.67
    assert y.ndim == 1 and y.dtype == np.float32 and np.isfinite(y).all()
    assert 0 < len(y) / SR <= limit


def test_edit_two_iterations(ed):
    x = voiced(0.6)
    outs = ed.edit(x, "hello", "emotion", "happy", n_iter=2, seed=4)
    assert len(outs) == 2 and all(o.ndim == 1 and np.isfinite(o).all() for o in outs)
    src_tokens = 25
    first_max = (2 * src_tokens + ed.margin_tokens + 5) / 41.67
    assert 0 < len(outs[0]) / SR <= first_max + 0.1
    assert 0 < len(outs[1]) / SR <= (2 * first_max * 41.67 + ed.margin_tokens + 5) / 41.67 + 0.1


def test_iterations_feed_previous_output_unless_prompt_fixed(ed, spy):
    vocab = ed.vocab
    x = voiced(0.6)
    ed.edit(x, "hello", "style", "whisper", n_iter=2, temperature=0)
    p1, p2 = spy["prompts"][0][0], spy["prompts"][1][0]
    out1 = spy["out"][0][0]
    assert not np.array_equal(p1, p2)
    assert vocab.audio_to_ids(out1).tolist() == [int(i) for i in p2[vocab.is_audio(p2)]]   # fed back
    ed.edit(x, "hello", "style", "whisper", n_iter=2, prompt_fixed=True, temperature=0)
    np.testing.assert_array_equal(spy["prompts"][2][0], spy["prompts"][3][0])       # the first source every time
    np.testing.assert_array_equal(spy["prompts"][2][0], p1)


def test_guided_edits_decode_against_a_plain_copy_of_their_source(ed, spy, monkeypatch):
    vocab = ed.vocab
    reqs = [dict(wav=voiced(0.6), text="hello", edit_type="style", edit_info="whisper", temperature=0),
            dict(wav=voiced(0.6), text="hello", edit_type="denoise", temperature=0)]
    plain = ed.edit_many(reqs)
    monkeypatch.setattr(ed, "guidance", {"style": 3.0})
    guided = ed.edit_many(reqs)
    (p_style, p_denoise), kw = spy["prompts"][1], spy["kw"][1]
    assert kw["guidance"] == [3.0, 1.0] and kw["negatives"][1] is None     # only the style edit is guided
    neg = kw["negatives"][0]
    # the negative: the same source under the denoise instruction, i.e. the denoise request's own prompt
    np.testing.assert_array_equal(neg, p_denoise)
    np.testing.assert_array_equal(neg[vocab.is_audio(neg)], p_style[vocab.is_audio(p_style)])
    assert not np.array_equal(spy["out"][1][0], spy["out"][0][0])          # the guided answer moved
    np.testing.assert_array_equal(spy["out"][1][1], spy["out"][0][1])      # the unguided one did not
    assert len(guided) == len(plain) == 2
    # guided_iterations=1: the second iteration edits the guided answer unguided
    monkeypatch.setattr(ed, "guided_iterations", 1)
    ed.edit(voiced(0.6), "hello", "style", "whisper", n_iter=2, temperature=0)
    assert [kw["guidance"] for kw in spy["kw"][2:]] == [[3.0], [1.0]]
    # a denoise edit is guided against a copy that keeps the noise: the silence-trim instruction
    monkeypatch.setattr(ed, "guidance", {"denoise": 2.0})
    ed.edit_many([reqs[1], dict(reqs[1], edit_type="vad")])
    (_, p_vad), kw = spy["prompts"][4], spy["kw"][4]
    assert kw["guidance"] == [2.0, 1.0]
    np.testing.assert_array_equal(kw["negatives"][0], p_vad)


def test_guided_clone_decodes_against_the_same_speaker_with_no_text(ed, spy, monkeypatch):
    monkeypatch.setattr(ed, "guidance", {"clone": 2.0})
    ed.clone(voiced(0.6), "hello there", "good morning", seed=1)
    prompt, kw = spy["prompts"][0][0], spy["kw"][0]
    neg = kw["negatives"][0]
    assert kw["guidance"] == [2.0]
    # the same speaker block and turns; only the words to say are missing
    text = ed.vocab.encode_text("good morning")
    np.testing.assert_array_equal(np.concatenate([neg[:-2], text, neg[-2:]]), prompt)


def test_edit_many_matches_single_requests(ed, spy, monkeypatch):
    # a lone request's F0 search is split over the cores (features.f0_track_split, all but a fraction of a
    # percent of frames the same): analyse every clip whole here, so only the LLM's batching is compared
    import editor.codec
    monkeypatch.setattr(editor.codec, "_threads", lambda: 1)
    reqs = [dict(wav=voiced(0.6), text="hello", edit_type="speed", edit_info="more slower", temperature=0),
            dict(wav=voiced(0.9, seed=2), text="", edit_type="denoise", seed=4),
            dict(wav=voiced(0.5, seed=1), text="so it goes", edit_type="paralinguistic",
                 edit_info="so [Laughter] it goes", n_iter=2, seed=7)]
    many = ed.edit_many(reqs)
    batched = [ids for call in spy["decoded"] for ids in call]   # one decode per iteration's batch
    assert [len(m) for m in many] == [1, 1, 2] and len(batched) == 4
    singles = []
    for r in reqs:
        n0 = len(spy["decoded"])
        ed.edit_many([r])
        singles += [ids for call in spy["decoded"][n0:] for ids in call]
    assert len(singles) == len(batched)
    for a in batched:    # same token outputs whether batched or alone (order differs)
        assert any(np.array_equal(a, b) for b in singles)


def test_analysed_batches_run_later_and_in_any_order(ed, spy):
    """What the server does with two batches in flight: batches analysed ahead (CPU only, nothing of the
    editor touched) and run afterwards, in any order, give what edit_many and clone_many give."""
    edits = [dict(wav=voiced(0.6), text="hello", edit_type="emotion", edit_info="sad", temperature=0),
             dict(wav=voiced(0.7, seed=3), text="so", edit_type="speed", edit_info="faster", seed=2)]
    clones = [dict(prompt_wav=voiced(0.8, seed=5), prompt_text="hello there", text="hi", temperature=0)]
    a_edit, a_clone = ed.analyse("edit", edits), ed.analyse("clone", clones)
    assert not spy["prompts"]                            # analysis generated nothing
    late = [ed.run(a_clone), ed.run(a_edit)]
    late_ids = [ids for call in spy["decoded"] for ids in call]
    now = [ed.clone_many(clones), ed.edit_many(edits)]
    now_ids = [ids for call in spy["decoded"] for ids in call][len(late_ids):]
    assert len(late[0]) == 1 and [len(o) for o in late[1]] == [1, 1]
    assert len(late_ids) == 3 and all(np.array_equal(a, b) for a, b in zip(late_ids, now_ids))
    assert all(np.array_equal(a, b) for a, b in zip(late[0], now[0]))
    with pytest.raises(ValueError, match="kind='translate'"):
        ed.analyse("translate", edits)


@pytest.mark.parametrize("kind", ["edit", "clone"])
def test_tokenizing_in_analyse_gives_what_tokenizing_in_start_gives(ed, spy, monkeypatch, kind):
    """CUDA's way (the analysis also tokenizes, from encoder inputs its workers made, and builds the first
    decode's rows, so that `start` finds them ready), run on the CPU: the same prompts, limits and answers
    as the CPU's way (`start` tokenizes)."""
    if kind == "edit":
        reqs = [dict(wav=voiced(0.6), text="hello", edit_type="emotion", edit_info="sad", temperature=0),
                dict(wav=voiced(0.7, seed=3), text="so", edit_type="speed", edit_info="faster", seed=2)]
    else:
        reqs = [dict(prompt_wav=voiced(0.8, seed=5), prompt_text="hello there", text="hi", temperature=0)]
    cpu_way = ed.run(ed.analyse(kind, reqs))
    monkeypatch.setattr(ed, "_analyse_tokenizes", lambda: True)
    a = ed.analyse(kind, reqs)
    assert a.ids is not None and a.first is not None and len(spy["prompts"]) == 1   # ready before start
    cuda_way = ed.run(a)
    assert [p.tolist() for p in spy["prompts"][0]] == [p.tolist() for p in spy["prompts"][1]]
    assert spy["limits"][0] == spy["limits"][1]
    for x, y in zip(spy["out"][0], spy["out"][1], strict=True):
        assert np.array_equal(x, y)
    assert len(cuda_way) == len(cpu_way) == len(reqs)


def test_decode_on_the_codec_thread_gives_the_same_audio(ed, monkeypatch):
    """The path CUDA takes (each batch decoded on the codec thread while the next generates), on the
    CPU: the same audio as decoding inline, in the right order, with batches of 2 so decodes overlap."""
    from concurrent.futures import ThreadPoolExecutor
    monkeypatch.setattr(ed, "batch_size", 2)
    reqs = [dict(wav=voiced(0.5 + 0.1 * i, seed=i), text="hello", edit_type="emotion", edit_info="sad", seed=i,
                 n_iter=1 + i % 2) for i in range(5)]
    inline = ed.edit_many(reqs)
    with ThreadPoolExecutor(1) as pool:
        monkeypatch.setattr(ed, "_decode_pool", pool)
        threaded = ed.edit_many(reqs)
    assert [len(r) for r in threaded] == [1, 2, 1, 2, 1]
    for a, b in zip(inline, threaded):
        for x, y in zip(a, b):
            assert len(x) > 0
            np.testing.assert_array_equal(x, y)


def test_resampled_input(ed, spy):
    ed.edit(voiced(0.6, sr=24000), "hello", "emotion", "sad", sr=24000)
    ed.edit(voiced(0.6), "hello", "emotion", "sad")
    a, b = spy["prompts"][0][0], spy["prompts"][1][0]
    assert abs(len(a) - len(b)) <= 5


def test_long_audio_split_at_pause_and_joined(ed, spy, monkeypatch):
    monkeypatch.setitem(ed.piece_s, "emotion", 1.5)
    monkeypatch.setitem(ed.piece_s, "paralinguistic", 1.5)
    x = np.concatenate([voiced(1.2), np.zeros(int(0.4 * SR), np.float32), voiced(1.0, seed=3)])
    out = ed.edit(x, "one two three four", "emotion", "angry", seed=0)[0]
    assert len(spy["prompts"][0]) == 2                     # two pieces, generated in one batch
    pieces = spy["decoded"][0]
    assert len(out) == sum(len(p) * 384 for p in pieces) - int(0.02 * SR)
    # a paralinguistic edit's tagged text cannot be shared out: it stays whole up to max_chunk_s
    ed.edit(x, "one two three four", "paralinguistic", "one [Laughter] two three four", seed=0)
    assert len(spy["prompts"][1]) == 1


def test_guidance_weights_come_from_the_llms_inference_json(llm_dir, tmp_path):
    d = tmp_path / "llm"
    shutil.copytree(llm_dir, d)
    assert guidance_of(d) == {}                                       # no inference.json: nothing guided
    (d / "inference.json").write_text(json.dumps({"guidance": {"emotion": 1.5, "style": 2}}))
    assert guidance_of(d) == {"emotion": 1.5, "style": 2.0}
    for bad in ({"happy": 1.5}, {"style": "strong"}, {"style": -1}, {"style": float("inf")}):
        (d / "inference.json").write_text(json.dumps({"guidance": bad}))
        with pytest.raises(ValueError, match="inference.json: guidance.*keys are emotion"):
            guidance_of(d)
    assert guided_iterations_of(d) is None
    for n, ok in ((1, True), (0, False), (1.5, False)):
        (d / "inference.json").write_text(json.dumps({"guided_iterations": n}))
        if ok:
            assert guided_iterations_of(d) == n
        else:
            with pytest.raises(ValueError, match="guided_iterations"):
                guided_iterations_of(d)


def test_piece_length_comes_from_the_training_data(llm_dir, tmp_path):
    d = tmp_path / "llm"
    shutil.copytree(llm_dir, d)
    assert piece_seconds(d) == DEFAULT_PIECE_S                        # no training.json: a model of unknown data
    tj = {"tokenizer_version": SHIPPED_CODEC}
    tj["data"] = {"speed_edit": {"source_seconds": {"p90": 6.5}}, "silence_trim": {"source_seconds": {"p90": 9.0}},
                  "emotion_edit": {"source_seconds": {"p90": 0.4}}}    # never below MIN_PIECE_S
    (d / "training.json").write_text(json.dumps(tj))
    pieces = piece_seconds(d)
    assert (pieces["speed"], pieces["vad"], pieces["emotion"]) == (6.5, 9.0, 2.0)
    assert pieces["style"] == DEFAULT_PIECE_S["style"]                # a task it does not record
    assert Editor.load(d, device="cpu").piece_s == pieces
    tj["data"] = {"speed_edit": {"examples": 3}}                      # written before lengths were recorded
    (d / "training.json").write_text(json.dumps(tj))
    assert piece_seconds(d) == DEFAULT_PIECE_S


def test_speed_edits_end_near_the_length_their_tag_was_taught(llm_dir, tmp_path, monkeypatch):
    import torch
    from test_llm_generate import ConstLM
    d = tmp_path / "llm"
    shutil.copytree(llm_dir, d)
    ratios = {"more slower": 1.43, "faster": 0.83}
    (d / "training.json").write_text(json.dumps({"tokenizer_version": SHIPPED_CODEC,
                                                 "data": {"speed_edit": {"length_ratio": ratios}}}))
    e = Editor.load(d, device="cpu")
    assert e.speed_ratio == ratios
    lo, hi = e._edit_bounds("speed", "more slower", 100)
    assert lo % 5 == hi % 5 == 0 and 0.9 * 143 <= lo < 143 < hi <= 1.1 * 143
    free = (0, e._limit(200))            # no minimum, room for twice the source
    assert e._edit_bounds("speed", "slower", 100) == free              # a tag it was not taught: the model alone
    assert e._edit_bounds("vad", None, 100) == free                    # a trim may be far shorter
    assert e._edit_bounds("emotion", "happy", 101) == (50, e._limit(202))   # the same words: half, whole blocks
    monkeypatch.setattr(e, "duration_window", None)
    assert e._edit_bounds("speed", "more slower", 100) == free
    monkeypatch.setattr(e, "duration_window", 0.08)
    # end to end, a model that wants to stop at once: held to the window's start on speed edits only
    logits = torch.full((e.vocab.size,), -1e4)
    logits[e.vocab.audio_offset:e.vocab.special_offset] = 0.0
    logits[e.vocab.eos] = 30.0
    monkeypatch.setattr(e, "model", ConstLM(e.model.config, logits))
    monkeypatch.setattr(e, "_decode", lambda ids_list, refs: [np.ones(len(i) * 384, np.float32) for i in ids_list])
    x = voiced(2.0)
    n_src = len(e._analyze_encode([x])[0][0])
    outs = [e.edit(x, "hello", t, i)[0] for t, i in (("speed", "more slower"), ("speed", "faster"), ("emotion", "sad"))]
    lens = [len(o) // 384 for o in outs]
    assert lens[0] == e._edit_bounds("speed", "more slower", n_src)[0] > n_src
    assert lens[1] == e._edit_bounds("speed", "faster", n_src)[0] > 0.7 * n_src
    assert lens[2] == e._edit_bounds("emotion", "sad", n_src)[0] >= 0.5 * n_src - 5    # held to half the source
    monkeypatch.setattr(e, "min_length_share", None)
    assert len(e.edit(x, "hello", "emotion", "sad")[0]) == 0                        # the model alone: it stops


def test_long_edit_keeps_pieces_without_speech_and_shares_words_by_speech(ed, spy, monkeypatch):
    """A long emotion edit with a long pause: the piece with no speech is passed through as it is, and
    the words go to the pieces that speak, in proportion to their speech."""
    monkeypatch.setitem(ed.piece_s, "emotion", 1.5)
    x = np.concatenate([voiced(1.2), np.zeros(int(2.0 * SR), np.float32), voiced(1.2, seed=3)])
    speech = [(0, int(1.2 * SR)), (int(3.2 * SR), len(x))]
    monkeypatch.setattr(ed, "_speech", lambda wav: speech)
    spans, said = ed._chunks(x, 1.5)
    assert len(spans) >= 3 and said[0] > 0 and said[-1] > 0 and 0 in said
    out = ed.edit(x, "one two three four", "emotion", "angry", seed=0, n_iter=2)
    items = ed._edit_items([dict(wav=x, text="one two three four", edit_type="emotion", edit_info="angry")])
    spoken = [it for it in items if not it["kept"]]
    assert " ".join(it["text"] for it in spoken) == "one two three four" and all(it["text"] for it in spoken)
    assert any(it["kept"] for it in items) and all(it["text"] == "" for it in items if it["kept"])
    assert len(spy["prompts"][0]) == len(spoken), "only the pieces that speak are edited"
    kept = sum(len(it["wav"]) for it in items if it["kept"])
    decoded = sum(len(p) * 384 for p in spy["decoded"][0])
    fades = int(0.02 * SR) * (len(items) - 1)
    assert len(out[0]) == decoded + kept - fades
    assert len(out) == 2 and len(out[1]) > kept, "the kept piece is in every iteration"
    # a denoise edit edits every piece (its silence is noise to remove)
    items = ed._edit_items([dict(wav=x, text="one two three four", edit_type="denoise", edit_info=None)])
    assert not any(it["kept"] for it in items)


def test_answers_fit_the_models_context(ed, spy, monkeypatch):
    """No answer may run past the model's positions: a clone whose text cannot fit is refused, an edit's
    longest answer is cut to what fits, and a voice prompt with almost no text says nothing of the rate."""
    with pytest.raises(ValueError, match="clone the text in parts"):
        ed.clone(voiced(3.0), "a", "word " * 2000)
    ed.clone(voiced(3.0), "a", "hello there, how are you?", seed=0)
    tps = ed.codec.tokenizer.tokens_per_second()["interleaved"]
    assert spy["limits"][0][0] <= ed._limit(2 * 0.5 * tps * len("hello there, how are you?"))
    monkeypatch.setattr(ed.model.config, "max_position_embeddings", 600)
    ed.edit(voiced(2.0), "hello", "emotion", "happy", seed=0)
    prompt, limit = spy["prompts"][1][0], spy["limits"][1][0]
    assert len(prompt) + limit <= 600 and limit < ed._edit_bounds("emotion", "happy", 2 * len(prompt))[1]
    monkeypatch.setattr(ed.model.config, "max_position_embeddings", 100)     # shorter than the prompt
    with pytest.raises(ValueError, match="edit a shorter clip"):
        ed.edit(voiced(3.0), "hello", "emotion", "happy", seed=0)


def test_clone_stream_is_guided_as_clone(ed, monkeypatch):
    import editor.llm.editor as editor_mod
    seen = {}

    def fake_stream(model, vocab, prompts, limits, seeds, temps, *a, negatives=None, guidance=None, **kw):
        seen.update(negatives=negatives, guidance=guidance)
        raise InterruptedError
    monkeypatch.setattr(editor_mod, "generate_stream", fake_stream)
    monkeypatch.setattr(ed, "guidance", {"clone": 2.0})
    with pytest.raises(InterruptedError):
        list(ed.clone_stream(voiced(0.6), "hello there", "good morning"))
    assert seen["guidance"] == [2.0] and seen["negatives"][0] is not None


def test_integer_pcm_is_scaled_to_float(ed, spy):
    pcm = np.round(voiced(0.6) * 32767).astype(np.int16)
    ed.edit(pcm.astype(np.float32) / 32768, "hello", "emotion", "sad", temperature=np.float32(0.7))
    ed.edit(pcm, "hello", "emotion", "sad", temperature=np.float32(0.7))
    np.testing.assert_array_equal(spy["prompts"][0][0], spy["prompts"][1][0])


def test_split_points_and_text():
    x = np.concatenate([voiced(25), np.zeros(SR // 2, np.float32), voiced(20), np.zeros(SR, np.float32), voiced(5)])
    gap1 = (25 * SR, 25 * SR + SR // 2)
    spans = split_points(x, 30.0, pauses=[])               # no VAD pauses: the quietest spot near the limit
    assert spans[0][0] == 0 and spans[-1][1] == len(x) and all(b - a <= 30 * SR for a, b in spans)
    assert all(a == b for (_, a), (b, _) in zip(spans[:-1], spans[1:]))
    assert gap1[0] <= spans[0][1] <= gap1[1]
    spans = split_points(x, 30.0, pauses=[gap1[0] + 4000, 41 * SR])
    assert spans[0] == (0, gap1[0] + 4000)
    assert split_text("a b c d", [1, 1]) == ["a b", "c d"]
    assert split_text("你好世界", [3, 1]) == ["你好世", "界"]
    # units are words and Han characters, never cut; punctuation stays with the word before it
    assert split_text("Hello.", [5, 5, 5]) == ["Hello.", "", ""]
    assert split_text("one two", [5, 5, 5, 5]) == ["one", "two", "", ""]
    assert split_text("今天天气很好，我们一起去公园散步吧 OK", [5, 5, 5]) == ["今天天气很好，", "我们一起去公", "园散步吧 OK"]
    # weights are the speech in each piece: none, no words
    assert split_text("one two three, four.", [1, 0, 1]) == ["one two", "", "three, four."]
    assert len(crossfade_join([np.ones(1000), np.ones(1000)])) == 2000 - int(0.02 * SR)


def test_version_checks(llm_dir, tmp_path):
    bad = tmp_path / "llm"
    shutil.copytree(llm_dir, bad)
    write_codec_meta(bad, "tokenizer-v2")
    with pytest.raises(ArtifactMismatch, match="trained on codec tokenizer tokenizer-v2"):
        Editor.load(bad, device="cpu")
    (bad / "codec.json").unlink()
    with pytest.raises(ArtifactMismatch, match="cannot tell"):
        Editor.load(bad, device="cpu")
    (bad / "training.json").write_text(json.dumps({"tokenizer_version": SHIPPED_CODEC}))
    dec = tmp_path / "dec"
    dec.mkdir()
    cfg = json.loads((DEFAULT_DECODER / "config.json").read_text())
    (dec / "config.json").write_text(json.dumps({**cfg, "tokenizer_version": "tokenizer-v1"}))
    with pytest.raises(ArtifactMismatch, match="decoder .* tokenizer-v1"):
        Editor.load(bad, decoder_dir=dec, device="cpu")
    with pytest.raises(ValueError, match="not an LLM checkpoint"):
        Editor.load(tmp_path, device="cpu")
    # the name is right but the weights are another tokenizer's: refused where the LLM records them
    from editor.artifacts import SHIPPED_TOKENIZER, weights_digest
    write_codec_meta(bad, SHIPPED_CODEC, "0123456789abcdef")
    with pytest.raises(ArtifactMismatch, match=f"another tokenizer named {SHIPPED_CODEC} .weights 0123456789abcdef"):
        Editor.load(bad, device="cpu")
    write_codec_meta(bad, SHIPPED_CODEC, weights_digest(SHIPPED_TOKENIZER))
    assert Editor.load(bad, device="cpu").codec.tokenizer.cfg["version"] == SHIPPED_CODEC


@pytest.mark.parametrize("kwargs, match", [
    (dict(edit_type="pitch"), "unknown edit_type 'pitch'; valid: " + ", ".join(EDIT_TYPES)),
    (dict(edit_type="emotion", edit_info="joyful"), "unknown edit_info 'joyful' for emotion; valid: happy, angry"),
    (dict(edit_type="emotion", edit_info=None), "edit_info: required for emotion edits"),
    (dict(edit_type="style", edit_info="happy"), "for style; valid: serious"),
    (dict(edit_type="speed", edit_info="fast"), "for speed; valid: faster, slower, more faster, more slower"),
    (dict(edit_type="paralinguistic", edit_info="Laughter"), "valid tags: Breathing, Laughter"),
    (dict(edit_type="paralinguistic", edit_info="ha [Giggle] ha"), r"unknown tags \['Giggle'\]"),
    (dict(edit_type="denoise", edit_info="hard"), "takes no edit_info"),
    (dict(wav=np.zeros(0, np.float32)), "too short"),
    (dict(wav=voiced(0.2)), r"too short \(0.200 s; at least 0.3 s"),
    (dict(wav=np.zeros(SR, np.float32)), "silent"),
    (dict(wav=np.full(SR, np.nan, np.float32)), "NaN"),
    (dict(wav=np.zeros((2, SR), np.float32)), "mono"),
    (dict(sr=0), "sample rate"),
    (dict(sr=1), r"sample rate 1 is not a whole number of Hz in \[8000, 192000\]"),
    (dict(sr=True), "sample rate True"),
    (dict(wav=np.tile(voiced(1.0, sr=8000), 601), sr=8000), r"601.0 s is longer than 600 s"),
    (dict(wav=voiced(0.6) * 100), "float samples peak at"),
    (dict(wav=voiced(0.6).astype(np.complex64)), "need real samples"),
    (dict(wav="/tmp/clip.wav"), "need an array of samples, got a str"),
    (dict(wav=[[0.1, 0.2], [0.3]]), "need an array of samples"),
    (dict(wav=np.round(voiced(0.6) * 32767).astype(np.int64)), "int64 samples"),
    (dict(wav=np.full(SR, 0.5, np.float32)), "silent"),                  # a constant offset
    (dict(n_iter=11), "n_iter: must be an int from 1 to 10"),
    (dict(n_iter=True), "n_iter"),
    (dict(prompt_fixed="no"), "prompt_fixed"),
    (dict(text="x" * 10001), "10001 characters, limit 10000"),
    (dict(text=""), "text: empty"),
    (dict(n_iter=0), "n_iter"),
    (dict(temperature=-1.0), "temperature"),
    (dict(seed=-1), "seed"),
])
def test_edit_bad_input(ed, kwargs, match):
    args = dict(wav=voiced(0.6), text="hello", edit_type="emotion", edit_info="happy")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ed.edit(**args)


def test_clone_and_batch_bad_input(ed):
    with pytest.raises(ValueError, match="longer than 30 s"):
        ed.clone(voiced(31.0), "a", "b")
    with pytest.raises(ValueError, match="prompt_text: empty"):
        ed.clone(voiced(1.0), " ", "b")
    with pytest.raises(ValueError, match="text: 10001 characters"):
        ed.clone(voiced(1.0), "a", "b" * 10001)
    with pytest.raises(ValueError, match="bad request keys"):
        ed.edit_many([dict(wav=voiced(0.6), text="a", edit_type="vad", colour="red")])
    with pytest.raises(ValueError, match=r"^request 1: wav: need an array of samples, got a PosixPath"):
        from pathlib import Path
        ed.edit_many([dict(wav=voiced(0.6), text="a", edit_type="vad"), dict(wav=Path("x.wav"), text="a", edit_type="vad")])
    with pytest.raises(ValueError, match="must be a dict"):
        ed.clone_many(["hello"])
    assert ed.edit_many([]) == [] and ed.clone_many([]) == []


def test_codec_dirs_finds_the_codec_an_llm_speaks(tmp_path):
    from editor.artifacts import codec_dirs
    def art(name, **cfg):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(cfg))
    art("tokenizer-v3", version="tokenizer-v3")
    art("decoder-v3", version="decoder-v3", tokenizer_version="tokenizer-v3")
    art("tokenizer-v6", version="tokenizer-v6")
    art("decoder-v6", version="decoder-v6", tokenizer_version="tokenizer-v6")
    art("decoder-v10", version="decoder-v10", tokenizer_version="tokenizer-v6")
    art("tokenizer-v7", version="tokenizer-v7")       # no decoder speaks it
    (tmp_path / "notes").mkdir()                      # a directory without config.json is skipped
    assert codec_dirs("tokenizer-v3", tmp_path) == (tmp_path / "tokenizer-v3", tmp_path / "decoder-v3")
    assert codec_dirs("tokenizer-v6", tmp_path) == (tmp_path / "tokenizer-v6", tmp_path / "decoder-v10")
    assert codec_dirs("tokenizer-v7", tmp_path) is None
    assert codec_dirs("tokenizer-v9", tmp_path) is None
    assert codec_dirs("tokenizer-v3", tmp_path / "missing") is None


def test_in_repo_spells_shipped_paths_as_commands_do(tmp_path):
    """The benches record their default LLM by this: the same string from any working directory, and a
    path outside the repository is refused rather than recorded as something it is not."""
    import os
    from editor.artifacts import SHIPPED_LLM, in_repo
    here = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert in_repo(SHIPPED_LLM) == "editor/artifacts/" + SHIPPED_LLM.name
    finally:
        os.chdir(here)
    with pytest.raises(ValueError):
        in_repo(tmp_path)


def test_an_llm_finds_the_codec_beside_it_before_the_shipped_one(llm_dir, tmp_path):
    """An older LLM taken out of git history with its codec (a directory of the three) loads without
    naming the codec, and still refuses a shipped codec of other ids."""
    from editor.artifacts import SHIPPED_DECODER, SHIPPED_TOKENIZER
    from editor.llm.editor import write_codec_meta
    root = tmp_path / "artifacts"
    for src, name in ((SHIPPED_TOKENIZER, "tokenizer-old"), (SHIPPED_DECODER, "decoder-old")):
        shutil.copytree(src, root / name)
        cfg = json.loads((root / name / "config.json").read_text())
        cfg["version" if name.startswith("tokenizer") else "tokenizer_version"] = "tokenizer-old"
        (root / name / "config.json").write_text(json.dumps(cfg))
    # an old decoder records no digest of its tokenizer's weights (decoders from 2026-12-07 on do)
    made = json.loads((root / "decoder-old" / "training.json").read_text())
    made.pop("tokenizer_digest")
    (root / "decoder-old" / "training.json").write_text(json.dumps(made))
    llm = root / "editor-llm-old"
    shutil.copytree(llm_dir, llm)
    write_codec_meta(llm, "tokenizer-old")
    e = Editor.load(llm, device="cpu")
    assert e.codec.tokenizer.cfg["version"] == "tokenizer-old"
    shutil.rmtree(root / "decoder-old")                 # no decoder of its ids beside it: the shipped pair is not it
    with pytest.raises(ArtifactMismatch, match="trained on codec tokenizer tokenizer-old"):
        Editor.load(llm, device="cpu")


def test_the_shipped_llm_and_codec_speak_the_same_ids():
    """The tree ships one codec and one LLM: the LLM answers in the ids of the tokenizer the defaults
    name, the decoder reads them, and an LLM loaded without a codec finds that same pair."""
    from editor.artifacts import SHIPPED_DECODER, SHIPPED_LLM, SHIPPED_TOKENIZER, codec_dirs
    spoken = json.loads((SHIPPED_LLM / "training.json").read_text())["tokenizer_version"]
    assert json.loads((SHIPPED_TOKENIZER / "config.json").read_text())["version"] == spoken
    assert json.loads((SHIPPED_DECODER / "config.json").read_text())["tokenizer_version"] == spoken
    assert codec_dirs(spoken) == (SHIPPED_TOKENIZER, SHIPPED_DECODER)
