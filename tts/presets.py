"""Emotion and speaking-style presets: documented prosodic renderings at intensity 1.

These are proxies for acted speech: each preset moves the acoustic correlates that the
literature associates with the category (F0 level and range, contour, rate, energy, spectral
tilt, breathiness, tremor, vocal-tract length). `docs/presets.md` is generated from this table.
"""
from core.tags import EMOTIONS, STYLES
from tts.voicing import Voicing as V

PRESETS: dict[str, tuple[V, str]] = {
    # emotions
    "happy": (V(f0_shift_st=3, f0_range=1.5, f0_final_st=1, tempo=1.1, gain_db=3, tilt_db_oct=2), "higher, wider pitch, a bit faster and brighter"),
    "angry": (V(f0_shift_st=2, f0_range=1.3, tempo=1.12, gain_db=6, tilt_db_oct=4, jitter_st=0.3), "loud, pressed (bright tilt), fast, rough"),
    "sad": (V(f0_shift_st=-2.5, f0_range=0.55, f0_slope_st=-2, tempo=0.8, gain_db=-5, tilt_db_oct=-4, breath=0.3), "low, flat, slow, soft, dark and breathy, falling"),
    "fear": (V(f0_shift_st=4, f0_range=0.8, tempo=1.15, gain_db=-2, tremor_st=0.6, jitter_st=0.3, breath=0.3), "high, trembling, fast, breathy"),
    "surprised": (V(f0_shift_st=5, f0_range=1.8, f0_final_st=4, gain_db=3, tilt_db_oct=1), "very high, wide pitch, rising end"),
    "confusion": (V(f0_shift_st=1, f0_range=1.2, f0_final_st=5, tempo=0.88), "slower, question-like rising end"),
    "empathy": (V(f0_shift_st=-1, f0_range=0.8, tempo=0.88, gain_db=-3, tilt_db_oct=-2, breath=0.2), "lower, softer, slower, warm"),
    "embarrass": (V(f0_shift_st=1.5, f0_range=0.7, tempo=0.92, gain_db=-4, breath=0.25, jitter_st=0.2), "quiet, hesitant, narrow pitch, breathy"),
    "excited": (V(f0_shift_st=5, f0_range=1.7, tempo=1.2, gain_db=5, tilt_db_oct=3), "very high, wide, fast and loud"),
    "depressed": (V(f0_shift_st=-4, f0_range=0.4, f0_slope_st=-3, tempo=0.75, gain_db=-7, tilt_db_oct=-5, breath=0.35), "very low, monotone, slow, quiet, dark"),
    "admiration": (V(f0_shift_st=2, f0_range=1.4, f0_final_st=-1, tempo=0.9, breath=0.15), "raised, wide, unhurried, airy"),
    "coldness": (V(f0_shift_st=-1.5, f0_range=0.35, f0_final_st=-2, tilt_db_oct=1), "flat monotone, clipped falling ends"),
    "disgusted": (V(f0_shift_st=-2, f0_range=1.2, f0_final_st=-3, tempo=0.85, tilt_db_oct=2, jitter_st=0.25), "low, drawn out, rough, falling"),
    "humour": (V(f0_shift_st=2.5, f0_range=1.6, tempo=1.08, gain_db=2, tremor_st=0.3), "playful wide pitch with a laughing wobble"),
    # speaking styles
    "serious": (V(f0_shift_st=-1.5, f0_range=0.6, f0_final_st=-2, tempo=0.9), "lower, narrow, measured, falling ends"),
    "arrogant": (V(f0_shift_st=-1, f0_range=1.3, f0_final_st=-3, tempo=0.85, gain_db=2), "drawn out, falling, condescending"),
    "child": (V(f0_shift_st=7, warp=1.2, f0_range=1.5, tempo=1.05, tilt_db_oct=2), "very high pitch, short vocal tract"),
    "older": (V(f0_shift_st=-2, warp=0.95, tremor_st=0.8, jitter_st=0.4, tempo=0.78, breath=0.3), "slow, trembling, breathy, lower"),
    "girl": (V(f0_shift_st=6, warp=1.15, f0_range=1.3, tempo=1.08), "high, light, short vocal tract"),
    "pure": (V(f0_shift_st=4, warp=1.08, f0_range=1.1, gain_db=-2, tilt_db_oct=-1, breath=0.2), "high, soft, airy"),
    "sister": (V(f0_shift_st=2, warp=1.08, tempo=0.95, tilt_db_oct=-1), "mature feminine: raised pitch and formants, calm"),
    "sweet": (V(f0_shift_st=4, warp=1.06, f0_range=1.4, f0_final_st=1.5, breath=0.15), "high, lilting, rising ends"),
    "exaggerated": (V(f0_shift_st=3, f0_range=2.2, tempo=0.85, gain_db=4), "extreme pitch range, slow, loud"),
    "ethereal": (V(f0_shift_st=3, f0_range=0.8, tempo=0.85, gain_db=-6, tilt_db_oct=-5, breath=0.6), "airy, very breathy, soft, dreamy"),
    "whisper": (V(whisper=1.0, gain_db=-10, tempo=0.95), "no voicing at all, quiet"),
    "generous": (V(f0_shift_st=-1, warp=0.96, f0_range=1.3, tempo=1.05, gain_db=4, tilt_db_oct=1.5), "hearty: fuller, louder, lively"),
    "recite": (V(f0_range=1.4, f0_final_st=-2, tempo=0.78), "slow, wide, poetic falling cadence"),
    "act_coy": (V(f0_shift_st=5, warp=1.07, f0_range=1.6, f0_final_st=3, breath=0.2), "high, playful rises, breathy"),
    "warm": (V(f0_shift_st=-0.5, f0_range=1.1, tempo=0.92, tilt_db_oct=-2, breath=0.1), "darker, soft, friendly"),
    "shy": (V(f0_shift_st=2, f0_range=0.6, tempo=0.88, gain_db=-6, breath=0.35, jitter_st=0.15), "quiet, timid, narrow, breathy"),
    "comfort": (V(f0_shift_st=-1, f0_range=0.9, tempo=0.85, gain_db=-3, tilt_db_oct=-3, breath=0.15), "slow, soft, dark, reassuring"),
    "authority": (V(f0_shift_st=-3, warp=0.96, f0_range=0.9, f0_final_st=-3, tempo=0.92, gain_db=5, tilt_db_oct=2), "low, loud, firm falling ends"),
    "chat": (V(f0_shift_st=1, f0_range=1.25, tempo=1.15), "casual, quick, lively"),
    "radio": (V(f0_shift_st=-1, f0_range=1.2, tempo=1.05, gain_db=3, tilt_db_oct=3), "bright, projected broadcast voice"),
    "soulful": (V(f0_shift_st=-1, f0_range=1.3, tempo=0.8, tremor_st=0.4, breath=0.2), "slow, heartfelt, vibrato"),
    "gentle": (V(f0_range=0.8, tempo=0.9, gain_db=-4, tilt_db_oct=-3, breath=0.2), "soft, slow, dark"),
    "story": (V(f0_range=1.5, tempo=0.9), "narrative: wide pitch, unhurried"),
    "vivid": (V(f0_shift_st=2, f0_range=1.8, tempo=1.1, gain_db=2), "lively, wide pitch"),
    "program": (V(f0_shift_st=1.5, f0_range=1.4, tempo=1.08, gain_db=3, tilt_db_oct=2), "presenter: bright, energetic"),
    "news": (V(f0_range=0.75, f0_final_st=-2, tempo=1.1, tilt_db_oct=1.5), "brisk, controlled, falling ends"),
    "advertising": (V(f0_shift_st=-1, warp=0.97, f0_range=1.3, tempo=0.95, gain_db=2, tilt_db_oct=1, breath=0.1), "polished voiceover: low, smooth"),
    "roar": (V(f0_shift_st=-3, warp=0.93, f0_range=1.1, gain_db=8, tilt_db_oct=6, jitter_st=0.3), "loud, deep, rough"),
    "murmur": (V(f0_shift_st=-2, f0_range=0.5, tempo=0.9, gain_db=-8, tilt_db_oct=-4, breath=0.4), "quiet, low, mumbled"),
    "shout": (V(f0_shift_st=5, f0_range=1.1, tempo=1.05, gain_db=8, tilt_db_oct=6), "loud, high, sharp"),
    "deeply": (V(f0_shift_st=-5, warp=0.92, f0_range=0.8, tempo=0.88), "deep: low pitch, long vocal tract"),
    "loudly": (V(f0_shift_st=4, f0_range=1.2, gain_db=7, tilt_db_oct=4), "loud and high"),
}

assert set(PRESETS) == set(EMOTIONS) | set(STYLES), "every tag needs a preset"


def preset(tag: str, intensity: float = 1.0) -> V:
    if tag == "neutral":
        return V()
    if tag not in PRESETS:
        raise ValueError(f"unknown tag {tag!r}")
    return PRESETS[tag][0].at(intensity)


def markdown_table() -> str:
    rows = ["| tag | kind | what changes from neutral | parameters at intensity 1 |", "|---|---|---|---|"]
    for tag, (v, doc) in PRESETS.items():
        params = ", ".join(f"{k}={val:g}" for k, val in v.to_dict().items() if val != getattr(V(), k))
        rows.append(f"| {tag} | {'emotion' if tag in EMOTIONS else 'style'} | {doc} | {params} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print("# Emotion and style presets\n\nGenerated by `python -m tts.presets > docs/presets.md`. "
          "Prosodic renderings (proxies for acted speech); see tts/voicing.py for each parameter.\n")
    print(markdown_table())
