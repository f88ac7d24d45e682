"""The judge's own data for naming a paralinguistic event (which of the ten vocalizations a sound is).

Training clips: each vocalization alone (tts/vocalizations.py), rendered in the judge pool's voices
with several seeds, with a little silence either side and a random level (the paralinguistic scorer
cuts an event out of an edit with imprecise edges). Evaluation clips: what the scorer itself cuts
out of a tagged utterance in a held-out voice, a judge sentence with the tag at a random word
boundary, aligned against the same sentence without it (scorers/judge/paralinguistic.py) - the
path a benchmark event takes. Neither uses a default-pool voice or a training sentence of the editor.
"""
import numpy as np

from core.nvspeech import is_chinese
from scorers.judge.labels import TASKS

SR = 16000


def _ref_f0(engine, speaker, text: str) -> float:
    """The base voice's median F0 in a sentence: where the speaker's F0 shift starts from."""
    f0 = engine.base_features(text, speaker.language, speaker.base_voice)[1].f0
    f0 = f0[f0 > 0]
    return float(np.median(f0)) if len(f0) > 20 else 120.0


def training_clips(engine, speakers, sentence_of, per_tag: int, seed: int) -> list[dict]:
    """per_tag renderings of every tag in every speaker's voice: records {x, label, speaker, language, gender}."""
    from tts.vocalizations import Vocalizer
    voc, rng, out = Vocalizer(engine), np.random.default_rng(seed), []
    for s in speakers:
        ref = _ref_f0(engine, s, sentence_of(s.language))
        for t, tag in enumerate(TASKS["vocalization"]):
            for k in range(per_tag):
                y = voc.render(tag, s.language, s.timbre, s.base_voice, ref * 2 ** (rng.uniform(-1, 1) / 12),
                               seed=seed + 100 * k + t)
                pad = [np.zeros(int(rng.uniform(0, 0.12) * SR), np.float32) for _ in range(2)]
                gain = 10 ** (rng.uniform(-3, 3) / 20)
                out.append({"x": np.concatenate([pad[0], gain * y.astype(np.float32), pad[1]]), "label": tag,
                            "speaker": s.id, "language": s.language, "gender": s.gender})
    return out


def tagged_text(sentence: str, tag: str, language: str, rng) -> str:
    """The sentence with [tag] at a random word (or, in Chinese, character) boundary."""
    if is_chinese(language):   # after a character, so that no piece is punctuation alone
        han = [i for i, c in enumerate(sentence) if "\u4e00" <= c <= "\u9fff"]
        cuts = [0, *(i + 1 for i in han[:-1]), len(sentence)]
        cut = cuts[int(rng.integers(len(cuts)))]
        return f"{sentence[:cut]}[{tag}]{sentence[cut:]}"
    words = sentence.split()
    cut = int(rng.integers(0, len(words) + 1))
    return " ".join([*words[:cut], f"[{tag}]", *words[cut:]])


def scorer_cut_clips(engine, speakers, sentences_of, per_tag: int, seed: int) -> list[dict]:
    """Held-out clips as the scorer sees them: for each voice and tag, per_tag tagged utterances, each
    event cut where the scorer finds it. An event the scorer does not find is counted (`missed`)."""
    from scorers.judge.paralinguistic import detected_events
    from tts.vocalizations import Vocalizer, render_tagged
    voc, rng, out = Vocalizer(engine), np.random.default_rng(seed + 1), []
    for s in speakers:
        lines = sentences_of(s.language)
        for tag in TASKS["vocalization"]:
            for k in range(per_tag):
                sentence = lines[int(rng.integers(len(lines)))]
                text = tagged_text(sentence, tag, s.language, rng)
                plain = engine.render(sentence, s.language, s.timbre, s.base_voice, seed)
                tagged, _ = render_tagged(engine, text, s.language, s.timbre, s.base_voice, seed + k, vocalizer=voc)
                cut = detected_events(plain, tagged, text)
                rec = {"label": tag, "speaker": s.id, "language": s.language, "gender": s.gender, "text": text}
                out.append({**rec, "x": cut[0][1] if cut else None})
    return out
