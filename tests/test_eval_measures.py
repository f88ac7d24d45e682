"""The evaluation's denoise measures (bench/editor_llm_eval.py), on signals whose answer is known: the
pause SNR reads the noise between the words and ignores the waveform's phase; the waveform SNR does not."""
import numpy as np

from bench.editor_llm_eval import pause_snr, snr

SR = 16000


def speech_with_pauses(seed=0):
    """0.3 s tone bursts (a stand-in for words) between 0.2 s of digital silence, 3 s in all."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.3 * SR)) / SR
    parts = []
    for _ in range(6):
        parts += [0.3 * np.sin(2 * np.pi * rng.uniform(120, 300) * t) * np.hanning(len(t)) ** 0.2,
                  np.zeros(int(0.2 * SR))]
    return np.concatenate(parts)


def test_pause_snr_reads_the_noise_between_the_words():
    clean = speech_with_pauses()
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(len(clean))
    speech_power = np.mean(clean[np.abs(clean) > 0] ** 2)
    for want_db in (5.0, 15.0):
        noisy = clean + noise * np.sqrt(speech_power / 10 ** (want_db / 10))
        # speech frames hold speech + noise, pause frames noise alone
        assert abs(pause_snr(noisy, clean) - 10 * np.log10(10 ** (want_db / 10) + 1)) < 1.0
    assert pause_snr(clean, clean) > 60                       # quiet pauses: at the 100 dB floor's side
    quieter = clean + noise * np.sqrt(speech_power / 10 ** 3.0)
    assert pause_snr(quieter, clean) > pause_snr(clean + noise * np.sqrt(speech_power / 10), clean) + 15


def test_pause_snr_is_phase_free_where_the_waveform_snr_is_not():
    clean = speech_with_pauses()
    # the same magnitudes, other phases: what a vocoder's resynthesis does to a clean answer
    spec = np.fft.rfft(clean.reshape(-1, 400), axis=1)
    rephased = np.fft.irfft(np.abs(spec) * np.exp(1j * np.random.default_rng(2).uniform(0, 2 * np.pi, spec.shape)),
                            n=400, axis=1).ravel()
    m = snr(rephased, clean)
    assert m["snr_db"] < 3                                    # the waveform measure sees only noise
    assert m["pause_snr_db"] > 40                             # the pauses are still quiet


def test_pause_snr_needs_pauses_and_speech_in_the_reference():
    clean = speech_with_pauses()
    assert pause_snr(clean, np.zeros_like(clean)) is None   # a silent reference
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(3 * SR) / SR)
    assert pause_snr(tone, tone) is None                      # no pause to read the noise in
    assert pause_snr(clean[:1000], clean[:1000]) is None      # under 10 frames


def test_floor_snr_needs_no_reference_and_no_alignment():
    from bench.editor_llm_eval import floor_snr
    clean = speech_with_pauses()
    noise = np.random.default_rng(3).standard_normal(len(clean))
    noisy = clean + 0.03 * noise
    k = SR // 7                                                      # the words 143 ms later, noise all along
    late = np.r_[np.zeros(k), clean[:-k]] + 0.03 * noise
    assert floor_snr(clean) > floor_snr(noisy) + 30                  # the pauses' noise is read
    assert abs(floor_snr(late) - floor_snr(noisy)) < 1.0             # wherever the words fall
    assert floor_snr(clean[:1000]) is None


def test_decoding_options_are_checked_by_argparse(capsys):
    import pytest

    from bench.editor_llm_eval import duration_window, guidance, main
    assert guidance("emotion=1.5,style=2") == {"emotion": 1.5, "style": 2.0}
    assert guidance("clone=3") == {"clone": 3.0} and guidance("off") == {}
    assert duration_window("off") == "off" and duration_window("0.08") == 0.08
    for option, value in (("--guidance", "happy=1.5"), ("--guidance", "style=-1"), ("--guidance", "style"),
                          ("--duration-window", "2"), ("--guided-iterations", "-1")):
        with pytest.raises(SystemExit):
            main(["--llm", "x", "--data", "y", option, value])
        assert f"argument {option}: invalid" in capsys.readouterr().err


def test_denoise_gains_report_their_share_over_10_db():
    """Per clip the pause SNR gain is bimodal: its median can sit between the modes, the share cannot."""
    from bench.editor_llm_eval import checks, summarize_task
    keys = ("src_snr_db", "edited_snr_db", "edited_gain", "snr_gain_db", "ceiling_snr_db", "src_snr_mag_db",
            "edited_snr_mag_db", "snr_mag_gain_db", "ceiling_snr_mag_db", "src_pause_snr_db", "edited_pause_snr_db",
            "ceiling_pause_snr_db", "src_floor_snr_db", "edited_floor_snr_db", "floor_snr_gain_db", "ceiling_floor_snr_db")
    gains = [60.0, 55.0, 66.0, -5.0, -12.0, -3.0]          # half the edits quiet in the pauses, half not
    rows = [{"edited_s": [1.0], "speaker_sim": 0.8, "speaker_sim_data": 0.9, "speaker_sim_roundtrip": 0.9,
             "pause_snr_gain_db": g, **{k: 1.0 for k in keys}} for g in gains]
    d = summarize_task("denoise", rows)
    assert d["pause_snr_gain_db"]["frac_ge_10"] == 0.5 and d["pause_snr_gain_db"]["median"] == 26.0
    share = [c for c in checks({"denoise": d, "clone": {"n": 0}}, rows) if c["check"].endswith(">=10 dB share")]
    assert share == [{"check": "denoise: (diag) pause SNR gain >=10 dB share", "value": 0.5,
                      "target": "(reference)", "pass": None}]


def test_an_oracle_mask_raises_the_snr_of_added_noise_and_not_of_a_room():
    """bench/denoise_mask_bound.py's bound: the ideal ratio mask removes added noise (SNR up by several
    dB) but cannot take a room's reverberation out of the source's phase (SNR against the dry clean
    reference stays where it was)."""
    from bench.denoise_mask_bound import ratio_masked
    clean = speech_with_pauses()
    rng = np.random.default_rng(2)
    noisy = clean + 0.1 * rng.standard_normal(len(clean))
    gain = snr(ratio_masked(noisy, clean), clean)["snr_db"] - snr(noisy, clean)["snr_db"]
    assert gain > 5, gain
    room = np.exp(-np.arange(int(0.4 * SR)) / (0.08 * SR)) * rng.standard_normal(int(0.4 * SR))
    wet = np.convolve(clean, room / np.sqrt((room ** 2).sum()))[:len(clean)]
    assert abs(snr(ratio_masked(wet, clean), clean)["snr_db"] - snr(wet, clean)["snr_db"]) < 2
    assert np.allclose(ratio_masked(noisy, noisy), noisy, atol=1e-6)   # its own magnitude: unchanged
