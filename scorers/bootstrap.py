"""Bootstrap margin labels from the embedded engine, until people have labelled.

A PROXY for human judgement: the label is a documented function of how the pair was made.
- Pairs rendered at known intensity i of the target tag's preset (0 = no change, two neutral
  renderings that differ only by small nuisance variation): label = clip(1 + 7 i, 1, 10), so
  i = 0 -> 1, 0.3 -> 3.1, 0.6 -> 5.2, 1.0 -> 8, 1.3 -> 10.
- Deliberate failures: the wrong tag rendered at full strength -> 2 (a change, but not the asked
  one); another speaker's voice as the target -> 1 (not a valid pair whatever the prosody).
"""
import hashlib

import numpy as np

from tts import texts
from tts.presets import PRESETS, preset
from tts.voicing import Voicing

LEVELS = (0.0, 0.3, 0.6, 1.0, 1.3)
WRONG_TAG_LABEL = 2.0
OTHER_SPEAKER_LABEL = 1.0


def label_for_intensity(i: float) -> float:
    return float(np.clip(1 + 7 * i, 1, 10))


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:8], 16))


def nuisance(*parts) -> Voicing:
    """Small take-to-take variation, so that 'no change' pairs are not bit-identical."""
    r = _rng("nuisance", *parts)
    return Voicing(f0_shift_st=r.uniform(-0.3, 0.3), tempo=r.uniform(0.97, 1.03), gain_db=r.uniform(-0.5, 0.5))


def _signature(tag: str) -> np.ndarray:
    v = PRESETS[tag][0]
    return np.array([v.f0_shift_st / 3, np.log(v.f0_range) * 3, v.gain_db / 3, v.tilt_db_oct / 3,
                     np.log(v.tempo) * 8, v.breath * 3 + v.whisper * 5, np.log(v.warp) * 20, v.tremor_st * 3])


def wrong_tag(tag: str, pool, seed) -> str:
    """A tag whose preset moves the voice in a clearly different direction."""
    s = _signature(tag)
    cands = [t for t in pool if t != tag and
             float(_signature(t) @ s) / (np.linalg.norm(_signature(t)) * np.linalg.norm(s) + 1e-9) < 0.0]
    cands = cands or [t for t in pool if t != tag]
    return cands[_rng("wrong", tag, seed).integers(len(cands))]


def jobs(speakers, tags, seed: int = 0, texts_per_tag: int = 1) -> list[dict]:
    """One row per pair to render: src/tgt voicings for a speaker and text, and the label."""
    out = []
    by_lang = {}
    for s in speakers:
        by_lang.setdefault(s.language, []).append(s)
    for spk in speakers:
        for tag in tags:
            sents = texts.sentences(spk.language, tag)
            for k in range(texts_per_tag):
                # different speakers get different sentences, so held-out speakers mean held-out texts
                text = sents[(_rng("text", spk.id, tag, seed).integers(len(sents)) + k) % len(sents)]
                src = spk.timbre + nuisance(spk.id, tag, text, "src")
                base = {"speaker": spk.id, "language": spk.language, "base_voice": spk.base_voice, "tag": tag,
                        "text": text, "src_voicing": src.to_dict(), "src_base_voice": spk.base_voice}

                def add(kind, tgt: Voicing, label, base_voice=spk.base_voice, **extra):
                    out.append({**base, "kind": kind, "tgt_voicing": tgt.to_dict(), "tgt_base_voice": base_voice,
                                "label": label, **extra})
                for i in LEVELS:
                    add(f"intensity_{i:g}", spk.timbre + preset(tag, i) + nuisance(spk.id, tag, text, i),
                        label_for_intensity(i), intensity=i)
                wt = wrong_tag(tag, tags, seed)
                add("wrong_tag", spk.timbre + preset(wt, 1.0) + nuisance(spk.id, tag, text, "w"), WRONG_TAG_LABEL,
                    rendered_tag=wt)
                others = [o for o in by_lang[spk.language] if o.id != spk.id]
                if others:
                    o = others[_rng("other", spk.id, tag, seed).integers(len(others))]
                    add("other_speaker", o.timbre + preset(tag, 1.0), OTHER_SPEAKER_LABEL, base_voice=o.base_voice,
                        other_speaker=o.id)
    return out
