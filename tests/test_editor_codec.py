"""Issue 7: the editor's tokenizer and decoder in tiny CPU configs, trained on the project's own shards.

Every code path of the GPU training runs here: corpus analysis, joint encoder/decoder steps (the
tokenizer), decoder steps on frozen ids, save, load by path, audio -> tokens -> audio, and the
round-trip evaluation.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_cfg, run_pipeline, voiced
from omegaconf import OmegaConf

from editor import corpus, features, train_decoder, vocoder
from editor.artifacts import SHIPPED_TOKENIZER
from editor.codec import Codec, synthesize
from editor.decoder import TokenDecoder
from editor.evaluate import evaluate, heldout_clips
from editor.fsq import FSQ
from editor.tokenizer import STREAMS, DualCodebookTokenizer, block_frames, encoder_inputs
from editor.vocoder import griffin_lim, harmonic_griffin_lim, source_filter

HELD_OUT = "en_m2"
TINY = ["editor=tiny", f"editor.split_val=[{HELD_OUT}]", "editor.train.steps=100", "editor.joint.steps=60",
        "editor.train.batch_size=8"]


@pytest.fixture(scope="module")
def shards(emotion_run):
    return str(emotion_run[0] / "shards")


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("editor")
    tok_info, _ = run_pipeline(["pipeline=train_tokenizer", f"data={shards}", f"output_dir={out}", *TINY])
    dec_info, _ = run_pipeline(["pipeline=train_decoder", f"data={shards}", f"output_dir={out}", *TINY])
    return out, tok_info, dec_info


def test_default_layout_is_the_seed_one():
    cfg = make_cfg(["pipeline=train_tokenizer"]).editor.tokenizer
    tok = DualCodebookTokenizer(OmegaConf.to_container(cfg))
    rates = tok.tokens_per_second()
    assert rates["linguistic"] == pytest.approx(16.67, abs=0.01)
    assert rates["semantic"] == pytest.approx(25.0)
    assert rates["interleaved"] == pytest.approx(41.67, abs=0.01)
    assert (cfg.linguistic.codebook, cfg.semantic.codebook) == (1024, 4096)
    assert (tok.n_ling, tok.n_sem) == (2, 3)
    ling, sem = np.arange(4), np.arange(6)
    seq = tok.interleave(ling, sem)
    assert list(seq[:5]) == [0, 1, 1024, 1025, 1026]            # 2 linguistic then 3 semantic per block
    back = tok.deinterleave(seq)
    assert np.array_equal(back[0], ling) and np.array_equal(back[1], sem)
    with pytest.raises(ValueError, match="whole number"):
        tok.deinterleave(seq[:-1])


def test_fsq_ids_cover_the_codebook_and_invert():
    fsq = FSQ([8, 8, 4, 4])
    ids = torch.arange(1024)
    vec = fsq.vectors(ids)
    assert vec.abs().max() <= 1.0 and torch.equal(fsq.ids(vec), ids)      # every id, exactly once
    z = torch.randn(4096, 4, requires_grad=True)
    q = fsq(3 * z)
    assert torch.equal(fsq.vectors(fsq.ids(q)), q)                        # quantized values are code points
    q.sum().backward()
    assert z.grad.abs().sum() > 0                                         # straight-through gradient
    with pytest.raises(ValueError, match="levels"):
        FSQ([8, 1])
    cfg = OmegaConf.to_container(make_cfg(["pipeline=train_tokenizer"]).editor.tokenizer)
    cfg["semantic"]["codebook"] = 2048
    with pytest.raises(ValueError, match="give 4096 ids, codebook says 2048"):
        DualCodebookTokenizer(cfg)


def test_vocoder_inverts_log_mel(shards):
    x, _ = heldout_clips(shards, {HELD_OUT}, 1)[0]
    fr = features.analyze(x)
    y = griffin_lim([fr.mel])[0]
    assert len(y) == len(fr) * features.HOP
    back = features.analyze(y)
    speech = fr.mel.mean(1) > np.percentile(fr.mel.mean(1), 30)
    assert np.abs(back.mel - fr.mel)[speech].mean() < 0.5     # nepers; random audio is ~3
    voiced = (fr.f0 > 0) & (back.f0 > 0)
    semitones = 12 * np.abs(np.log2(back.f0[voiced] / fr.f0[voiced]))
    assert voiced.sum() > 20 and np.mean(semitones < 1.0) > 0.7     # pitch kept (dio octave slips aside)


def test_harmonic_griffin_lim_keeps_mel_and_pitch(shards):
    """Griffin-Lim started from the source-filter phase: the mel of griffin_lim, the pitch of the frames' F0."""
    for x, _ in heldout_clips(shards, {HELD_OUT}, 2):
        fr = features.analyze(x)
        y = harmonic_griffin_lim([fr])[0]
        assert len(y) == len(fr) * features.HOP and np.isfinite(y).all()
        back = features.analyze(y)
        speech = fr.mel.mean(1) > np.percentile(fr.mel.mean(1), 30)
        assert np.abs(back.mel - fr.mel)[speech].mean() < 0.5
        voiced = (fr.f0 > 0) & (back.f0 > 0)
        semitones = 12 * np.abs(np.log2(back.f0[voiced] / fr.f0[voiced]))
        assert voiced.sum() > 20 and np.mean(semitones < 1.0) > 0.85


def test_split_f0_search_matches_the_whole_clip(shards):
    """A lone request's F0 search split into pieces on threads gives the whole clip's track, in order
    and at full length; one short clip is one piece (the same call as ever)."""
    from concurrent.futures import ThreadPoolExecutor
    clips = [x for x, _ in heldout_clips(shards, {HELD_OUT}, 4)]
    with ThreadPoolExecutor(4) as pool:
        for x in clips:
            x = features.pad_to_block(x, 12)
            whole = features.f0_track(x)
            split = features.f0_track_split(x, 8, pool.map)
            assert len(split) == len(whole) and len(whole) > 3 * features.F0_PIECE_MIN
            same = ((split > 0) == (whole > 0)) & (np.abs(split - whole) <= 0.01 * whole)
            assert same.mean() > 0.99
        short = clips[0][: features.F0_PIECE_MIN * features.HOP]
        assert np.array_equal(features.f0_track_split(short, 8, pool.map), features.f0_track(short))

def test_decimated_f0_search_stays_close_and_reaches_every_codec_path(shards):
    """A server's faster analysis (f0_decimation=4: dio's search on a 4 kHz copy, stonemask at full rate):
    on speech the voicing and the F0 stay those of the full-rate search within a few cents; the codec
    analyses with it, a lone clip's split search too; a bad value is named."""
    tok = DualCodebookTokenizer.load(SHIPPED_TOKENIZER)
    clips = [features.pad_to_block(x, tok.block) for x, _ in heldout_clips(shards, {HELD_OUT}, 4)]
    full = np.concatenate([features.f0_track(x) for x in clips])
    fast = np.concatenate([features.f0_track(x, 4) for x in clips])
    both = (full > 0) & (fast > 0)
    assert both.sum() > 100 and np.mean((full > 0) == (fast > 0)) > 0.95
    assert np.median(np.abs(1200 * np.log2(fast[both] / full[both]))) < 5
    c = Codec(tok, f0_decimation=4)
    whole = features.analyze(clips[0], tok.block, f0_decimation=4).f0
    assert np.array_equal(c.analyze(clips[0]).f0, whole)
    assert not np.array_equal(Codec(tok).analyze(clips[0]).f0, whole)       # it is another search
    (lone,) = c.analyze_many(clips[:1])                                     # split over the threads
    same = ((lone.f0 > 0) == (whole > 0)) & (np.abs(lone.f0 - whole) <= 0.01 * whole)
    assert same.mean() > 0.99
    for bad in (0, 13, "4"):
        with pytest.raises(ValueError, match="f0_decimation="):
            Codec(tok, f0_decimation=bad)


def test_analysis_in_worker_processes_gives_the_same_frames(shards, monkeypatch):
    """A GPU server's choice (codec.use_analysis_processes): clips analysed in forkserver workers, and a
    lone clip's F0 pieces sent to them, give the frames the threads give."""
    from editor import codec as codec_mod
    tok = DualCodebookTokenizer.load(SHIPPED_TOKENIZER)
    c = Codec(tok)
    clips = [x for x, _ in heldout_clips(shards, {HELD_OUT}, 3)]
    monkeypatch.setattr(codec_mod, "_threads", lambda: 2)
    monkeypatch.setattr(codec_mod, "_POOL", None)
    by_threads = c.analyze_many(clips) + c.analyze_many(clips[:1])
    codec_mod.use_analysis_processes()
    try:
        assert not isinstance(codec_mod._analysis_pool(), codec_mod.ThreadPoolExecutor)
        by_processes = c.analyze_many(clips) + c.analyze_many(clips[:1])    # 3 clips; then 1, split
        with_inputs = c.analyze_for_encoding(clips) + c.analyze_for_encoding(clips[:1])
    finally:
        codec_mod.use_analysis_processes(False)
    for a, b, (fr, _) in zip(by_threads, by_processes, with_inputs, strict=True):
        assert np.array_equal(a.f0, b.f0) and np.array_equal(a.mel, b.mel)
        assert np.array_equal(a.f0, fr.f0) and np.array_equal(a.mel, fr.mel)
    # the encoder inputs the workers made are the ones encode() makes itself: the same ids
    frames, inputs = zip(*with_inputs)
    for (l1, s1), (l2, s2) in zip(c.encode_frames(list(frames), list(inputs)), c.encode_frames(list(frames)), strict=True):
        assert np.array_equal(l1, l2) and np.array_equal(s1, s2)
    assert all(set(x) == {"linguistic", "semantic"} for x in inputs)
    with pytest.raises(ValueError, match="inputs: 1 for 2 clips"):
        c.encode_frames(list(frames[:2]), list(inputs[:1]))


def test_corpus_dedupes_caches_and_round_trips(shards, cache_dir, tmp_path):
    c = corpus.build(shards, cache_dir, 12)
    members = [m["member"] for m in c.meta]
    assert len(set(members)) == len(members)
    assert all(n % 12 == 0 for n in np.diff(c.offsets))           # clips padded to whole token blocks
    c.save(tmp_path / "c.npz")
    back = corpus.load_npz(tmp_path / "c.npz")
    assert np.abs(back.mel - c.mel).max() <= 0.04                 # 8-bit storage: half a 0.07 step
    assert back.meta == c.meta and np.array_equal(back.f0, c.f0)
    again = corpus.build(shards, cache_dir, 12)                    # second call: the cached analysis
    assert np.array_equal(again.offsets, c.offsets)
    # a first analysis gives what its cache gives later, so a killed first run resumes on the same corpus
    one = str(sorted(Path(shards).glob("*.tar"))[0])
    fresh, cached = corpus.build(one, tmp_path / "cache", 12), corpus.build(one, tmp_path / "cache", 12)
    assert fresh.digest() == cached.digest() and len(fresh) > 0
    with pytest.raises(ValueError, match="no such shard"):
        corpus.build(str(tmp_path / "missing"), cache_dir, 12)


def test_warped_voices_are_new_speakers_with_scaled_frequencies(shards, cache_dir):
    c = corpus.build(shards, cache_dir, 12).select(lambda m: m["speaker"] == HELD_OUT)
    fr = c.frames(0)
    assert np.array_equal(features.warp_voice(fr, 1.0).mel, fr.mel)
    up = features.warp_voice(fr, 1.15)
    assert np.allclose(up.f0, fr.f0 * 1.15, rtol=1e-5)
    # energy moves up the mel axis: the spectral centroid (in bands) rises
    centroid = lambda m: (np.exp(m) * np.arange(m.shape[1])).sum(1).mean() / np.exp(m).sum(1).mean()
    assert centroid(up.mel) > centroid(fr.mel) + 1.0
    both = corpus.with_warped_voices(c, [1.15])
    assert len(both) == 2 * len(c) and both.hours() == pytest.approx(2 * c.hours())
    assert set(both.speakers()) == {HELD_OUT, f"{HELD_OUT}~vtlp1.15"}



def test_eq_voices_colour_each_speaker_with_one_bounded_curve(shards, cache_dir):
    c = corpus.build(shards, cache_dir, 12)
    two = c.select(lambda m: m["speaker"] in c.speakers()[:2])
    eq = corpus.with_eq_voices(two, 2, 6.0, seed=3)
    assert len(eq) == 3 * len(two) and eq.meta[:len(two)] == two.meta
    spk = two.meta[0]["speaker"]
    assert {f"{spk}~eq1", f"{spk}~eq2"} <= set(eq.speakers())
    diffs = {}
    for i in range(len(two), len(eq)):
        j = (i - len(two)) % len(two)
        d = eq.frames(i).mel - two.frames(j).mel
        assert np.array_equal(eq.frames(i).f0, two.frames(j).f0)
        assert np.ptp(d, axis=0).max() < 1e-3                      # one curve over every frame of a clip
        db = d[0] * 20 * np.log10(np.e)
        assert 0.5 < np.abs(db).max() <= 6.0 + 1e-3
        diffs.setdefault(eq.meta[i]["speaker"], []).append(d[0])
    for curves in diffs.values():                                   # one curve per speaker and copy
        assert all(np.allclose(x, curves[0], atol=1e-3) for x in curves)
    assert len({tuple(np.round(v[0], 3)) for v in diffs.values()}) == len(diffs)   # each its own
    again = corpus.with_eq_voices(two, 2, 6.0, seed=3)                # seeded: a run is replayable
    assert np.array_equal(again.mel, eq.mel)
    assert corpus.with_eq_voices(two, 0, 6.0) is two

def test_train_save_load_round_trip(trained, shards):
    out, tok_info, _ = trained
    tok_dir, dec_dir = out / "editor" / "tokenizer-tiny", out / "editor" / "decoder-tiny"
    for d in (tok_dir, dec_dir):
        assert (d / "config.json").is_file() and list(d.glob("*.safetensors"))
        assert not list(d.parent.glob(".*tmp*"))                    # no staging leftovers
    assert json.loads((tok_dir / "config.json").read_text())["version"] == "tokenizer-tiny"
    assert HELD_OUT not in tok_info["speakers"] and tok_info["held_out_speakers"] == [HELD_OUT]
    for d in (tok_dir, dec_dir):
        curve = [json.loads(line) for line in (d / "training_log.jsonl").read_text().splitlines()]
        assert curve[-1]["step"] in (60, 100) and "val_total" in curve[-1]
    # training did something: on the held-out speaker the trained decoder beats a fresh one
    model = TokenDecoder.from_pretrained(str(dec_dir)).float()
    fresh = TokenDecoder(model.config)
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if k.endswith(("_mean", "_std"))}, strict=False)
    tok = DualCodebookTokenizer.load(tok_dir)
    held = train_decoder.frame_set(corpus.build(shards, os.environ["LMS_CACHE_DIR"], 12).select(
        lambda m: m["speaker"] == HELD_OUT), tok, "cpu", as_ids=True)
    loss = lambda m: train_decoder.evaluate(m, held, 12, 10, 8, 8, seed=0, phone_weight=1.0)
    assert loss(model)["mel"] < loss(fresh)["mel"]
    # the phone head learned from the alignment labels through the tokens (a fresh head is at chance)
    assert model.phone_head is not None and loss(model)["phone"] < loss(fresh)["phone"] - 0.3

    codec = Codec.load(tok_dir, dec_dir)
    clips = heldout_clips(shards, {HELD_OUT}, 3)
    wavs = [x for x, _ in clips]
    tokens = codec.encode(wavs)
    for x, (ling, sem) in zip(wavs, tokens):
        n_blocks = -(-len(x) // (12 * features.HOP))
        assert (len(ling), len(sem)) == (2 * n_blocks, 3 * n_blocks)
        assert ling.max() < 16 and sem.max() < 32
        assert len(codec.tokenizer.interleave(ling, sem)) == 5 * n_blocks
    frames = [codec.analyze(x) for x in wavs]
    # the threaded analysis of a batch gives each clip's own frames, in order
    for a, b in zip(codec.analyze_many(wavs), frames):
        assert np.array_equal(a.f0, b.f0) and np.array_equal(a.mel, b.mel)
    ys = codec.decode(tokens, frames)
    for y, fr in zip(ys, frames):
        assert len(y) == len(fr) * features.HOP and np.isfinite(y).all() and np.abs(y).max() > 1e-3
    # the tokens drive the output: other tokens, other audio
    swapped = codec.decode_frames([tokens[1]], [frames[0]])[0]
    same = codec.decode_frames([tokens[0]], [frames[0]])[0]
    n = min(len(swapped), len(same))
    assert np.abs(swapped.mel[:n] - same.mel[:n]).mean() > 0.05


def test_tokens_follow_noise_pitch_and_silence(shards):
    """What editing needs must reach the shipped tokenizer's ids: noise, F0 and silence each change them.
    (A 60-step tiny tokenizer uses too few of its codes to say anything about this.)"""
    tok = DualCodebookTokenizer.load(SHIPPED_TOKENIZER)
    x, _ = heldout_clips(shards, {"en_f2"}, 1)[0]                      # held out from its training
    fr = features.analyze(x, tok.block)
    ling, sem = tok.encode([fr])[0]
    noisy = x + 0.02 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    _, sem_noisy = tok.encode([features.analyze(noisy, tok.block)])[0]
    assert np.mean(sem_noisy != sem) > 0.3
    _, sem_high = tok.encode([features.warp_voice(fr, 1.5)])[0]
    assert np.mean(sem_high != sem) > 0.3
    padded = np.concatenate([x, np.zeros(features.SAMPLE_RATE, np.float32)])
    ling_pad, sem_pad = tok.encode([features.analyze(padded, tok.block)])[0]
    tail_l, tail_s = ling_pad[len(ling) + 2:], sem_pad[len(sem) + 3:]    # the added second, one block in
    assert len(set(tail_l)) == 1 and len(set(tail_s)) == 1               # silence is one steady code
    assert np.mean(ling == tail_l[0]) < 0.5                              # and not what speech gets


def test_round_trip_evaluation_runs(trained, shards):
    out = trained[0]
    codec = Codec.load(out / "editor" / "tokenizer-tiny", out / "editor" / "decoder-tiny")
    report = evaluate(codec, heldout_clips(shards, {HELD_OUT}, 2), log=lambda *_: None)
    assert report["clips"] == 2 and report["english_clips"] == 2
    # the vocoder alone (no tokens) keeps the voice and the pitch: the ceiling the codec is judged under
    assert report["vocoder"]["speaker_sim"] > 0.9 and report["vocoder"]["f0_corr"] > 0.8
    for name in ("self", "other"):
        assert set(report[name]) >= {"speaker_sim", "f0_corr", "mcd_db", "wer", "wer_delta", "meets_targets"}


def test_bad_inputs_are_named(trained, shards, tmp_path):
    out = trained[0]
    with pytest.raises(ValueError, match="no such shard"):
        run_pipeline(["pipeline=train_tokenizer", f"data={tmp_path}/nothing", f"output_dir={tmp_path}", *TINY])
    with pytest.raises(ValueError, match="not a tokenizer artifact"):
        run_pipeline(["pipeline=train_decoder", f"data={tmp_path}", f"output_dir={tmp_path}",
                      f"pipeline.tokenizer={tmp_path}", *TINY])
    with pytest.raises(ValueError, match="trained on tokenizer"):
        tok = DualCodebookTokenizer.load(out / "editor" / "tokenizer-tiny")
        tok.cfg = {**tok.cfg, "version": "tokenizer-other"}
        Codec(tok, Codec.load(out / "editor" / "tokenizer-tiny", out / "editor" / "decoder-tiny").decoder)
    with pytest.raises(ValueError, match="whole number"):
        tok = DualCodebookTokenizer.load(out / "editor" / "tokenizer-tiny")
        tok.encode([features.Frames(np.zeros(13, np.float32), np.zeros((13, features.N_MELS), np.float32))])
    assert block_frames({"linguistic": {"hop_frames": 6}, "semantic": {"hop_frames": 4}}) == 12
    # settings and split overrides are named before the corpus is prepared or trained on
    with pytest.raises(ValueError, match=r"editor.train.steps=0: must be an integer >= 1"):
        run_pipeline(["pipeline=train_decoder", f"data={tmp_path}", f"output_dir={out}", *TINY, "editor.train.steps=0"])
    with pytest.raises(ValueError, match="editor.split_test: speaker 'en-f2' is not in the corpus"):
        run_pipeline(["pipeline=train_tokenizer", f"data={shards}", f"output_dir={tmp_path}", *TINY,
                      "editor.split_test=[en-f2]"])
    # a codec trained now under the shipped one's name would be taken for it
    with pytest.raises(ValueError, match="editor.tokenizer.version=tokenizer-v10 is the shipped artifact"):
        run_pipeline(["pipeline=train_tokenizer", f"data={tmp_path}", f"output_dir={tmp_path}", *TINY,
                      "editor.tokenizer.version=tokenizer-v10"])


def test_a_decoder_refuses_another_tokenizer_under_its_tokenizers_name(tmp_path):
    """The shipped decoder records its tokenizer's bytes: a tokenizer of the same version name and other
    bytes is refused, the shipped one accepted."""
    import shutil

    from editor.artifacts import SHIPPED_DECODER, SHIPPED_TOKENIZER
    Codec.load(SHIPPED_TOKENIZER, SHIPPED_DECODER)
    same = tmp_path / "same"
    shutil.copytree(SHIPPED_TOKENIZER, same)
    (same / ".DS_Store").write_bytes(b"x")
    (same / "training.json").write_text("{}")
    Codec.load(same, SHIPPED_DECODER)                     # a copy with other side files is the same tokenizer
    other = tmp_path / "tokenizer-v10"
    shutil.copytree(SHIPPED_TOKENIZER, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "retrained": True}))      # same name, another model
    (other / "training.json").write_text("{}")           # what is not the model does not count
    with pytest.raises(ValueError, match="was trained on another tokenizer"):
        Codec.load(other, SHIPPED_DECODER)


def test_source_filter_pitch_is_the_given_f0(shards):
    """The source-filter vocoder's pitch is the frames' F0, not whatever the mel's harmonics suggest."""
    x, _ = heldout_clips(shards, {HELD_OUT}, 1)[0]
    fr = features.analyze(x)
    raised = features.Frames(np.where(fr.f0 > 0, fr.f0 * 1.25, 0).astype(np.float32), fr.mel)  # +3.9 semitones
    for given in (fr, raised):
        y = source_filter([given])[0]
        assert len(y) == len(fr) * features.HOP and np.isfinite(y).all()
        back = features.analyze(y)
        voiced = (given.f0 > 0) & (back.f0 > 0)
        semitones = 12 * np.abs(np.log2(back.f0[voiced] / given.f0[voiced]))
        assert voiced.sum() > 20 and np.mean(semitones < 1.0) > 0.8
        speech = fr.mel.mean(1) > np.percentile(fr.mel.mean(1), 30)
        assert np.abs(back.mel - fr.mel)[speech].mean() < 1.0           # spectral envelope kept
    with pytest.raises(ValueError, match="vocoder=world: choose one of"):
        synthesize([fr], "world")


def test_pulse_train_is_the_sum_of_the_harmonics_below_the_limit():
    """The source's closed form equals the explicit sum over harmonics, computed in float64, on a rising
    and falling F0 long enough for an unwrapped float32 phase to drift; at the limit's boundary K is the
    float32 one on both sides, so the check sees the formula, not a harmonic counted differently."""
    sr, limit = features.SAMPLE_RATE, features.SAMPLE_RATE / 2 - 200
    f0 = torch.cat([torch.linspace(61, 320, 40000), torch.full((20000,), 100.0), torch.linspace(590, 60, 60000)])
    f0 = torch.stack([f0, f0.flip(0) * 1.3])
    k = (torch.ceil(limit / f0) - 1).clamp(0, int(sr / 2 / vocoder.F0_MIN)).double()
    cycles = torch.cumsum(f0.double() / sr, 1)
    phase = 2 * np.pi * cycles
    want = sum((h <= k).double() * torch.cos(h * phase) for h in range(1, int(sr / 2 / vocoder.F0_MIN) + 1))
    got = vocoder._pulse_train(f0).double()
    assert want.abs().max() > 100                 # the pulses' peaks: over 100 harmonics in phase
    assert (got - want).abs().max() < 1e-3


def test_flow_decoder_trains_and_samples_reproducibly(trained, shards, cache_dir):
    out = trained[0]
    tok = DualCodebookTokenizer.load(out / "editor" / "tokenizer-tiny")
    c = corpus.build(shards, cache_dir, tok.block)
    train_c, held_c = c.select(lambda m: m["speaker"] != HELD_OUT), c.select(lambda m: m["speaker"] == HELD_OUT)
    e = OmegaConf.to_container(make_cfg(["pipeline=train_decoder", *TINY]).editor, resolve=True)
    e["decoder"]["kind"], e["decoder"]["flow_steps"] = "flow", 4
    e["train"]["steps"] = 120
    model, curve = train_decoder.train(train_c, None, tok, e["decoder"], e["train"], "cpu", joint=False,
                                       log=lambda *_: None)
    assert curve[-1]["step"] == 120 and np.isfinite(curve[-1]["train_total"])
    fresh = TokenDecoder(model.config)
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if k.endswith(("_mean", "_std"))}, strict=False)
    held = train_decoder.frame_set(held_c, tok, "cpu", as_ids=True)
    loss = lambda m: train_decoder.evaluate(m, held, tok.block, 10, 8, 8, seed=0)["total"]
    assert loss(model) < loss(fresh)                               # the velocity field was learned
    codec = Codec(tok, model)
    frames = [codec.analyze(x) for x, _ in heldout_clips(shards, {HELD_OUT}, 2)]
    tokens = codec.encode_frames(frames)
    a, b = codec.decode_frames(tokens, frames), codec.decode_frames(tokens, frames)
    assert all(np.array_equal(p.mel, q.mel) for p, q in zip(a, b))   # sampling noise is seeded
    alone = codec.decode_frames(tokens, frames, batch_size=1)          # no batch mates, no padding
    assert all(np.allclose(p.mel, q.mel, atol=1e-3) for p, q in zip(a, alone))
    assert all(len(p) == len(f) and np.isfinite(p.mel).all() for p, f in zip(a, frames))
    ys = codec.decode(tokens, frames, vocoder="source_filter")
    assert all(np.abs(y).max() > 1e-3 for y in ys)


def test_robust_inputs_ignore_low_noise_and_silence_after(shards):
    """inputs.floor_db / speech_db: noise far under the speech and silence appended to a clip hardly move
    what the linguistic encoder reads (tokenizer-v3's inputs move with both: bench/token_stability.py)."""
    from editor.tokenizer import DEFAULT, linguistic_inputs, speech_mask
    x, _ = heldout_clips(shards, {"en_f2"}, 1)[0]
    fr = features.analyze(x, 12)
    noise = np.random.default_rng(0).normal(0, 10 ** (-70 / 20) * np.abs(x).max(), len(x)).astype(np.float32)
    noisy = features.analyze(x + noise, 12)
    padded = features.analyze(np.concatenate([x, np.zeros(features.SAMPLE_RATE // 2, np.float32)]), 12)
    speech = speech_mask(fr.mel, 30)
    moved = {}
    for name, cfg in (("v3", DEFAULT), ("robust", {**DEFAULT, "inputs": {"floor_db": 60, "speech_db": 30}})):
        a = linguistic_inputs(fr, cfg)
        moved[name] = (np.abs(a - linguistic_inputs(noisy, cfg))[speech].mean(),
                       np.abs(a - linguistic_inputs(padded, cfg)[:len(a)])[speech].mean())
    assert moved["robust"][0] < 0.5 * moved["v3"][0]
    assert moved["robust"][1] < 0.1 * moved["v3"][1] and moved["v3"][1] > 0.01


def test_noisy_views_train_the_encoders_toward_the_clean_ids(shards, tmp_path):
    """noise_views + consistency_weight: the joint stage reads noisy views (same length and F0, louder
    floor, silence after the clip dropped again) and reports the consistency term it minimises."""
    x, _ = heldout_clips(shards, {"en_f2"}, 1)[0]
    fr = features.analyze(x, 12)
    view = features.noisy_view(fr, np.random.default_rng(0), pad_frames=30)
    assert len(view) == len(fr) + 30 and np.array_equal(view.f0[:len(fr)], fr.f0)
    assert (view.mel[:len(fr)] >= fr.mel - 1e-4).all() and np.median(view.mel[len(fr):]) > np.log(features.LOG_FLOOR) + 1
    info, _ = run_pipeline(["pipeline=train_tokenizer", f"data={shards}", f"output_dir={tmp_path}", *TINY,
                            "editor.joint.steps=20", "editor.train.log_every=10", "editor.train.noise_views=0.5",
                            "editor.train.consistency_weight=1.0", "editor.tokenizer.inputs.floor_db=60",
                            "editor.tokenizer.inputs.speech_db=30"])
    tok_dir = tmp_path / "editor" / "tokenizer-tiny"
    curve = [json.loads(line) for line in (tok_dir / "training_log.jsonl").read_text().splitlines()]
    assert "train_consistency" in curve[-1] and "val_consistency" in curve[-1]
    assert json.loads((tok_dir / "config.json").read_text())["inputs"] == {"floor_db": 60, "speech_db": 30}
    assert info["train"]["noise_views"] == 0.5


def test_a_clips_ids_do_not_depend_on_its_batchmates():
    """The tokenize pipeline and the editor encode padded batches: a short clip next to a long one
    gets the ids it gets alone (each convolution reads past the clip's end what it reads alone)."""
    c = Codec(DualCodebookTokenizer.load(SHIPPED_TOKENIZER))
    for clips in ([voiced(0.5, seed=1), voiced(3.0, seed=4), voiced(0.9, seed=2)], [voiced(0.6), voiced(0.9, seed=2)]):
        frames = c.analyze_many(clips)
        for batched, f in zip(c.encode_frames(frames), frames):
            alone = c.encode_frames([f])[0]
            assert np.array_equal(batched[0], alone[0]) and np.array_equal(batched[1], alone[1])
    # not only the ids: the values before quantization are the short clip's own, to float rounding
    short, long_ = (encoder_inputs(f, c.tokenizer.cfg) for f in frames)
    n, t = len(frames[0]), len(frames[1])
    padded = {s: torch.as_tensor(np.stack([np.concatenate([short[s], np.repeat(short[s][-1:], t - n, 0)]), long_[s]]))
              for s in STREAMS}
    alone = c.tokenizer.latents({s: torch.as_tensor(short[s])[None] for s in STREAMS}, [n])
    both = c.tokenizer.latents(padded, [n, t])
    for s in STREAMS:
        assert torch.allclose(alone[s][0], both[s][0, :alone[s].shape[1]], atol=1e-4), s


def test_a_clips_waveform_does_not_depend_on_its_batchmates():
    """A server batches whatever requests arrive together: every vocoder renders a clip in a batch of
    longer and shorter ones as it renders it alone (noise, random phases and level are the clip's own)."""
    rng = np.random.default_rng(0)
    frames = []
    for n in (60, 151, 97):
        f0 = np.where(np.arange(n) % 40 < 30, 120.0 + 20 * np.sin(np.arange(n) / 9), 0.0).astype(np.float32)
        mel = (np.log(0.05) + rng.normal(0, 0.5, (n, features.N_MELS))).astype(np.float32)
        frames.append(features.Frames(f0=f0, mel=mel))
    for name in ("harmonic_gl", "griffin_lim", "source_filter"):
        batched = synthesize(frames, name)
        for f, y in zip(frames, batched):
            alone = synthesize([f], name)[0]
            assert len(y) == len(alone) == len(f.f0) * features.HOP
            np.testing.assert_allclose(y, alone, atol=1e-4, err_msg=name)


def test_inverse_stft_is_torchs_without_its_host_read():
    """The vocoder's own inverse STFT (capturable in a CUDA graph) gives torch.istft's waveform, batched
    over leading dimensions, at the lengths the vocoder asks for."""
    torch.manual_seed(0)
    window = torch.hann_window(features.N_FFT)
    for shape, length in (((3, 257, 40), 39 * features.HOP), ((2, 2, 257, 17), 16 * features.HOP + 7)):
        X = torch.randn(*shape, dtype=torch.complex64)
        ours = vocoder._istft(X, length)
        flat = torch.istft(X.reshape(-1, *shape[-2:]), features.N_FFT, features.HOP, window=window, length=length)
        assert ours.shape == (*shape[:-2], length)
        torch.testing.assert_close(ours, flat.reshape(*shape[:-2], length), atol=1e-6, rtol=1e-5)


def test_captured_vocoder_pads_to_its_buckets_and_renders_each_clip_as_alone():
    """The graphed vocoder pads a batch to a power of two of rows and a multiple of its frame step (the
    shapes its graphs are captured at); off CUDA it renders that padded batch eagerly, and every clip
    comes back as harmonic_gl renders it alone. A CPU codec never captures."""
    from editor.vocoder_graphs import CapturedVocoder
    rng = np.random.default_rng(3)
    frames = []
    for n in (60, 151, 97):
        f0 = np.where(np.arange(n) % 40 < 30, 130.0 + 15 * np.sin(np.arange(n) / 7), 0.0).astype(np.float32)
        frames.append(features.Frames(f0=f0, mel=(np.log(0.05) + rng.normal(0, 0.5, (n, features.N_MELS))).astype(np.float32)))
    cv = CapturedVocoder("cpu", frame_step=64)
    rows, span = cv.bucket([len(f.f0) for f in frames])
    assert (rows, span) == (4, 192) and span >= 151 + vocoder.TAIL
    for f, y in zip(frames, cv(frames)):
        alone = harmonic_griffin_lim([f])[0]
        assert len(y) == len(f.f0) * features.HOP
        np.testing.assert_allclose(y, alone, atol=1e-5)
    c = Codec(DualCodebookTokenizer.load(SHIPPED_TOKENIZER))
    c.capture_vocoder()
    assert c.vocoder_graphs is None


def test_a_killed_codec_run_resumes_to_the_weights_of_one_that_was_not(trained, shards, cache_dir, tmp_path):
    """The joint stage (encoders and decoder) killed after a checkpoint and resumed with resume=true ends
    with exactly the weights of an unbroken run; other settings are refused; a finished run resumed
    trains nothing more. The pipelines keep their checkpoint beside the artifact."""
    assert (trained[0] / "editor" / "decoder-tiny.checkpoints" / "checkpoint.pt").is_file()
    e = OmegaConf.to_container(make_cfg(["pipeline=train_tokenizer", *TINY]).editor, resolve=True)
    # minutes far beyond the run: the rate schedule follows the steps alone, as in any run that ends on steps
    tc = {**e["train"], **e["joint"], "steps": 12, "log_every": 2, "ckpt_every": 4, "max_minutes": 1e6}
    c = corpus.build(shards, cache_dir, block_frames(e["tokenizer"]))
    train_c, val_c = c.select(lambda m: m["speaker"] != HELD_OUT), c.select(lambda m: m["speaker"] == HELD_OUT)
    dec = {**e["decoder"], "kind": "regression"}

    def run(ckpt, resume=False, cfg=tc, kill_at=None):
        torch.manual_seed(0)                            # the encoders' first weights, as the pipeline seeds them
        tok = DualCodebookTokenizer(e["tokenizer"])

        def log(line):
            if kill_at and line.startswith("{") and json.loads(line)["step"] == kill_at:
                raise KeyboardInterrupt
        model, curve = train_decoder.train(train_c, val_c, tok, dec, cfg, "cpu", joint=True, log=log,
                                           ckpt=ckpt, resume=resume)
        return {**{f"tok.{k}": v for k, v in tok.state_dict().items()}, **model.state_dict()}, curve

    whole, curve = run(tmp_path / "a.pt")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b.pt", kill_at=6)                  # killed after the checkpoint of step 4
    assert torch.load(tmp_path / "b.pt", weights_only=False)["step"] == 4
    resumed, curve_b = run(tmp_path / "b.pt", resume=True)
    assert [r["step"] for r in curve_b] == [r["step"] for r in curve] == [2, 4, 6, 8, 10, 12]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole), "the resumed run drifted"
    assert curve_b[-1]["val_total"] == curve[-1]["val_total"]
    again, curve_c = run(tmp_path / "b.pt", resume=True)     # finished: nothing left to train
    assert curve_c == curve_b and all(torch.equal(again[k], resumed[k]) for k in whole)
    with pytest.raises(ValueError, match="other inputs or settings"):
        run(tmp_path / "b.pt", resume=True, cfg={**tc, "lr": tc["lr"] * 2})
    with pytest.raises(ValueError, match="ckpt_every=0"):
        train_decoder.check_settings({**tc, "ckpt_every": 0})
