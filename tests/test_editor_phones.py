"""Issue 7: frame phone labels by forced alignment (editor/phones.py), carried by the editor's corpus."""
import numpy as np
import pytest

from editor import corpus, features, phones
from editor.evaluate import heldout_clips


@pytest.fixture(scope="module")
def shards(emotion_run):
    return str(emotion_run[0] / "shards")


def test_alignment_labels_speech_and_silence(shards):
    x, meta = heldout_clips(shards, {"en_m1"}, 1)[0]
    padded = np.concatenate([np.zeros(features.SAMPLE_RATE // 2, np.float32), x])   # half a second of silence first
    fr = features.analyze(padded)
    labels = phones.align(padded, meta["text"], len(fr))
    assert len(labels) == len(fr) and phones.coverage(labels) > 0.9
    assert len(set(labels[labels > 0])) >= 10                          # many different phones, not one
    assert np.mean(labels[:40] == 0) > 0.9                              # the added silence is SIL
    level = fr.mel.mean(1)
    assert level[labels == 0].mean() < level[labels > 0].mean() - 2    # SIL frames are the quiet ones
    # the labels follow the speech: without the added half second they come 50 frames earlier
    plain = phones.align(x, meta["text"], len(features.analyze(x)))
    n = min(len(plain), len(labels) - 50)
    assert phones.coverage(plain) > 0.9 and np.mean(labels[50:50 + n] == plain[:n]) > 0.8


def test_unalignable_text_is_unknown_not_an_error(shards):
    x, _ = heldout_clips(shards, {"en_m1"}, 1)[0]
    n = len(x) // features.HOP
    for text in ("", "？！", "qzxv wrrbl", "hello qzxv"):   # no words; words (or one) missing from the dictionary
        assert (phones.align(x, text, n) == phones.UNKNOWN).all()


def test_corpus_keeps_labels_through_select_warp_and_save(shards, cache_dir, tmp_path):
    c = corpus.build(shards, cache_dir, 12)
    assert len(c.phones) == len(c.f0)
    by_lang = {lang: [phones.coverage(c.phone_labels(i)) for i in range(len(c)) if c.meta[i]["language"] == lang]
               for lang in ("en", "zh")}
    assert np.median(by_lang["en"]) > 0.9 and max(by_lang["zh"]) == 0.0  # English aligned; no Mandarin model
    en = c.select(lambda m: m["speaker"] == "en_m1")
    warped = corpus.with_warped_voices(en, [1.1])
    assert np.array_equal(warped.phones, np.concatenate([en.phones, en.phones]))
    en.save(tmp_path / "c.npz")
    back = corpus.load_npz(tmp_path / "c.npz")
    assert np.array_equal(back.phones, en.phones) and np.array_equal(back.offsets, en.offsets)
    # a random pick: labels go with their clips
    cut = corpus.subset(corpus.with_splits(c, {"test": ["en_m2"]}), 0.05, 3)
    for i in range(len(cut)):
        j = next(k for k in range(len(c)) if c.meta[k]["member"] == cut.meta[i]["member"]
                 and c.meta[k]["shard"] == cut.meta[i]["shard"])
        assert np.array_equal(cut.phone_labels(i), c.phone_labels(j))
    # a corpus file from before phone labels loads as unlabelled
    z = dict(np.load(tmp_path / "c.npz"))
    del z["phones"]
    np.savez(tmp_path / "old.npz", **z)
    assert (corpus.load_npz(tmp_path / "old.npz").phones == phones.UNKNOWN).all()
    with pytest.raises(ValueError, match="frame counts"):
        corpus.from_frames([en.frames(0)], [en.meta[0]], [en.phone_labels(0)[:-1]])


@pytest.mark.parametrize("head", ["local", "context"])
def test_phone_head_reads_what_it_is_configured_to(head):
    """local: the phone logits depend only on nearby tokens; context: on the whole sequence."""
    import torch

    from editor.decoder import DecoderConfig, TokenDecoder
    torch.manual_seed(0)
    model = TokenDecoder(DecoderConfig(ling_levels=[4, 4], sem_levels=[4, 4, 2], hidden=32, layers=1, heads=2,
                                       ff_mult=2, n_phones=len(phones.PHONES), phone_head=head)).eval()
    ling, sem = torch.randint(0, 16, (1, 20)), torch.randint(0, 32, (1, 30))
    ref = torch.randn(1, model.config.ref_dim)
    _, logits = model(ling, sem, ref, with_phones=True)
    assert logits.shape == (1, 120, len(phones.PHONES))
    far = ling.clone()
    far[0, -1] = (far[0, -1] + 1) % 16                          # change only the last linguistic token
    _, moved = model(far, sem, ref, with_phones=True)
    early_changed = (moved[0, :60] - logits[0, :60]).abs().max() > 1e-5
    assert early_changed == (head == "context")                 # a local head cannot see 1 s away
    assert (moved[0, -6:] - logits[0, -6:]).abs().max() > 1e-5    # but both see the token under the frame
    target = torch.randint(-1, len(phones.PHONES), (1, 120))
    mask, frames = torch.ones(1, 120, dtype=torch.bool), torch.rand(1, 120, model.config.out_dim)
    terms = model.training_terms(ling, sem, ref, mask, frames, target, phone_weight=0.1)
    plain = model.training_terms(ling, sem, ref, mask, frames, target, phone_weight=0.0)
    assert "phone" not in plain and torch.isfinite(terms["phone"])
    assert torch.isclose(terms["total"] - plain["total"], 0.1 * terms["phone"], atol=1e-5)
    # unknown frames add nothing: all unknown gives no phone term's worth of loss
    unknown = model.training_terms(ling, sem, ref, mask, frames, torch.full((1, 120), -1), phone_weight=0.1)
    assert float(unknown["phone"]) == 0.0
    with pytest.raises(ValueError, match="phone_head=nearby"):
        DecoderConfig(n_phones=4, phone_head="nearby")
    with pytest.raises(ValueError, match="kind=flow"):
        DecoderConfig(n_phones=4, phone_head="context", kind="flow")


def test_subset_caps_each_language_and_names_a_bad_cap():
    # 40 training clips of 1 s per language, 2 held out: each language's cap binds under a looser total
    parts, meta = [], []
    for lang in ("en", "zh"):
        for i in range(42):
            parts.append(features.Frames(np.full(100, 120.0, np.float32), np.zeros((100, features.N_MELS), np.float32)))
            meta.append({"language": lang, "speaker": f"{lang}_{i % 4}", "split": "train" if i < 40 else "test"})
    c = corpus.from_frames(parts, meta)
    hour = 1 / 3600

    def hours(cut, lang):
        return sum(m["language"] == lang and m["split"] == "train" for m in cut.meta) * hour

    caps = corpus.language_caps(f"en={20.5 * hour},zh={10.5 * hour}")
    cut = corpus.subset(c, 35 * hour, 2, language_hours=caps)
    assert hours(cut, "en") == pytest.approx(20 * hour) and hours(cut, "zh") == pytest.approx(10 * hour)
    assert sum(m["split"] == "test" for m in cut.meta) == 2
    even = corpus.subset(c, 30 * hour, 0)                   # no caps: a random pick of either language
    assert 0 < hours(even, "en") < 30 * hour
    for bad in ("en", "en=x", "=1", "en=-1"):
        with pytest.raises(ValueError, match="--language-hours"):
            corpus.language_caps(bad)


def test_room_voices_add_a_decaying_tail_and_a_noise_floor():
    # a clip of 0.5 s of loud broadband frames, then 1 s of near silence: the room's tail shows after it
    mel = np.full((150, features.N_MELS), np.log(1e-4), np.float32)
    mel[:50] = np.log(1.0)
    f0 = np.where(np.arange(150) < 50, 120.0, 0.0).astype(np.float32)
    c = corpus.from_frames([features.Frames(f0, mel)] * 2,
                           [{"language": "en", "speaker": s, "split": "train"} for s in ("en_a", "en_b")])
    room = corpus.with_room_voices(c, 2, rt60_s=(0.5, 0.5), drr_db=(3.0, 3.0), noise_below_db=(70.0, 70.0), seed=1)
    assert len(room) == 6 and {"en_a~room1", "en_a~room2", "en_b~room1"} <= set(room.speakers())
    wet = room.frames(2)
    assert np.array_equal(wet.f0, f0) and wet.mel.shape == mel.shape
    assert (wet.mel >= mel - 1e-4).all()                       # power is only added
    after = wet.mel[50:90] - mel[50:90]                        # the tail: above the silence, decaying
    assert after[0].min() > 3.0 and (np.diff(wet.mel[51:80, 5]) < 0).all()
    low, high = wet.mel[70, 2], wet.mel[70, -3]                # high bands die out sooner
    assert low > high + 0.5
    # the low band's tail loses 60 dB over its RT60 (0.5 s = 50 frames)
    db = (wet.mel[51, 0] - wet.mel[101, 0]) * 20 * np.log10(np.e)
    assert 50 < db < 70
    again = corpus.with_room_voices(c, 2, rt60_s=(0.5, 0.5), drr_db=(3.0, 3.0), noise_below_db=(70.0, 70.0), seed=1)
    assert np.array_equal(again.mel, room.mel) and corpus.with_room_voices(c, 0) is c
