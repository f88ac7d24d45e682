"""The codec's round trip on voices it has never heard, per engine: seen voices, unseen warps of a seen
engine, and whole engines it never saw.

    python bench/codec_by_engine.py [--tokenizer editor/artifacts/tokenizer-v10] [--decoder editor/artifacts/decoder-v10]
        [--texts 3] [--max-clips 24] [--work .bench_data/codec_by_engine] [--out bench/results/editor/codec_by_engine.json]

The clips are the neutral source clips of `pipeline=speed_triplets` over `voice_bank=generated_engines`
(English: Piper's joe, flite's and festival's voices, each with a drawn timbre), made by the factory into
--work (reused when there). Speakers are grouped by what the codec saw in training, read from its
tokenizer's training.json (its speakers and held-out speakers):
  seen             a training speaker (the same base voice and timbre)
  unseen_warp      a speaker of a base voice the codec trained on, with a timbre it never trained on
                   (the codec's own held-out speakers and the bank's drawn speakers on that voice)
  unseen_<engine>  a speaker of an engine none of whose voices the codec trained on
Each group goes through editor.evaluate (vocoder ceiling, self- and other-reference decodes; resemblyzer
similarity, pocketsphinx WER rise, F0 correlation, mel-cepstral distortion) against the targets the
in-domain held-out voices met (similarity >= 0.80, WER rise <= 0.10).
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.reader import Release  # noqa: E402
from editor import corpus  # noqa: E402
from editor.codec import Codec  # noqa: E402
from editor.evaluate import TARGETS, evaluate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENGINES_BANK = ["voice_bank=generated_engines", "languages=[en]"]


def _config(*overrides):
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose("config", overrides=[*ENGINES_BANK, *overrides])


def make_clips(work: Path, texts: int) -> Path:
    """The factory's neutral English sources of every generated_engines speaker (a release)."""
    from pipelines import speed_triplets
    speed_triplets.run(_config("pipeline=speed_triplets", f"source.texts_per_speaker={texts}",
                               "pipeline.factors_per_source=1", f"output_dir={work}", "splits.enabled=false",
                               "quality.wer.enabled=false", "ray.progress=false"))
    return work / "speed_triplets"


def base_voices() -> dict[str, str]:
    """speaker -> base voice of the generated_engines bank."""
    from tts.voice_bank import make_voice_bank
    cfg = _config()
    return {s.id: s.base_voice for s in make_voice_bank(cfg.voice_bank, ["en"], cfg.sample_rate, cfg.seed).speakers}


def group_of(speaker: str, base_voice: str, trained: set[str], trained_voices: set[str]) -> str:
    if speaker in trained:
        return "seen"
    if base_voice in trained_voices:
        return "unseen_warp"
    return "unseen_" + base_voice.split(":")[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default="editor/artifacts/tokenizer-v10")
    ap.add_argument("--decoder", default="editor/artifacts/decoder-v10")
    ap.add_argument("--texts", type=int, default=3, help="source sentences per speaker")
    ap.add_argument("--max-clips", type=int, default=24, help="per group")
    ap.add_argument("--work", default=".bench_data/codec_by_engine")
    ap.add_argument("--out", default="bench/results/editor/codec_by_engine.json")
    a = ap.parse_args()
    t0 = time.time()
    release = Path(a.work) / "speed_triplets"
    if not (release / "latest").exists():
        make_clips(Path(a.work), a.texts)
    info = json.loads((Path(a.tokenizer) / "training.json").read_text())
    trained = {s.split("~")[0] for s in info["speakers"]}
    voices = base_voices()
    trained_voices = {voices[s] for s in trained if s in voices}
    groups: dict[str, list] = {}
    for raw, meta in corpus.audio_members(Release(release)):
        if meta["role"] != "src":   # the neutral source (tgt is its speed change, prompt the bank's clip)
            continue
        g = group_of(meta["speaker"], voices[meta["speaker"]], trained, trained_voices)
        groups.setdefault(g, []).append((corpus.decode_audio(raw), meta))
    codec = Codec.load(a.tokenizer, a.decoder)
    report = {"command": "python " + " ".join(sys.argv), "tokenizer": codec.tokenizer.cfg["version"],
              "decoder": codec.decoder.config.version, "targets": TARGETS, "groups": {}}
    for g in sorted(groups):
        clips = groups[g][: a.max_clips]
        r = evaluate(codec, clips, log=lambda *_: None)
        speakers = sorted({m["speaker"] for _, m in clips})
        report["groups"][g] = {"clips": len(clips), "speakers": speakers,
                               "base_voices": sorted({voices[s] for s in speakers}),
                               **{k: v for k, v in r.items() if k != "per_clip"}}
        print(g, json.dumps({k: v for k, v in report["groups"][g].items() if k not in ("speakers",)}), flush=True)
    report["seconds"] = round(time.time() - t0, 1)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
