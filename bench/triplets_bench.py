"""Throughput of the triplet pipelines: per stage and whole, on Ray and as a plain loop.

    .venv/bin/python bench/triplets_bench.py --emotions 4 --out bench/RESULTS.md

Reports triplets/s and audio seconds produced per CPU-second for each stage (plain loop, one
process) and for the whole pipeline on a local Ray (all cores), and Ray's overhead against the
loop. The voice bank is rendered first and timed separately (it is cached in normal use)."""
import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from loop_vs_ray import report_lines  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--emotions", type=int, default=4)
    ap.add_argument("--languages", default="en,zh")
    ap.add_argument("--out", default=None)
    ap.add_argument("--workdir", default="/tmp/lms-bench")
    a = ap.parse_args()
    os.environ.setdefault("LMS_CACHE_DIR", f"{a.workdir}/cache")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from core.sample import SAMPLE_VERSION, Sample, prompt_info
    from core.tags import EMOTIONS
    from pipelines import triplets
    from pipelines.runner import execute, init_ray
    from tts.voice_bank import make_voice_bank
    emotions = list(EMOTIONS[: a.emotions])
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            f"output_dir={a.workdir}/out", f"languages=[{a.languages}]", f"emotions=[{','.join(emotions)}]",
            "texts_per_tag=1", "ray.progress=false"])
    langs = list(cfg.languages)
    bank = make_voice_bank(cfg.voice_bank, langs, cfg.sample_rate, cfg.seed)
    n_clips = len(bank.missing(emotions))
    t = time.time()
    triplets.build_voice_bank(cfg, bank, emotions)
    bank_s = time.time() - t
    rows, _ = triplets.plan(cfg, "emotion", bank, emotions, langs)
    tts_cfg = OmegaConf.to_container(cfg.tts, resolve=True)
    from stages.basic_filter import BasicFilter
    from stages.clone_pair import ClonePair
    from stages.measure_pair import MeasurePair
    stages = [(ClonePair, {"sample_rate": cfg.sample_rate, "tts": tts_cfg}), (MeasurePair, {}),
              (BasicFilter, OmegaConf.to_container(cfg.filters))]

    # plain loop, one process: per-stage CPU time
    import copy
    loop_rows = copy.deepcopy(rows)
    per_stage = []
    t_loop = time.time()
    for cls, params in stages:
        s = cls(**params)
        s.setup()
        c0, w0 = time.process_time(), time.time()
        loop_rows = s.process_rows(loop_rows)
        per_stage.append((cls.name, time.process_time() - c0, time.time() - w0))
    loop_wall = time.time() - t_loop
    kept = [r for r in loop_rows if not r["reject"]]
    audio_s = sum(sum(r["meta"]["durations"].values()) for r in kept)

    # Ray, all cores
    init_ray(cfg.ray)
    import ray
    cores = int(ray.cluster_resources().get("CPU", 1))
    t = time.time()

    def to_sample(row):
        # this chain stops before loudness and quality, so a row is written as what it is complete
        # for: the clone example of its neutral side (prompt.flac, and the neutral clone as tgt.flac)
        m, mem = row["meta"], row["members"]
        members = {"prompt.flac": mem["prompt.flac"], "tgt.flac": mem["src.flac"]}
        return Sample(row["key"], {
            "task": "clone", "sample_version": SAMPLE_VERSION, "text": m["text"], "language": m["language"],
            "speaker": m["speaker"], "split": m["split"], "sample_rate": cfg.sample_rate,
            "durations": {"tgt": m["durations"]["src"]}, "provenance": {"bench": "triplets_bench"},
            "source_key": None, "prompt": prompt_info(members, m["prompt_src"]["text"], "tgt.flac")}, members)
    info = execute(cfg, "bench_triplets", copy.deepcopy(rows), stages, to_sample)
    ray_wall = time.time() - t

    n = len(kept)
    lines = [
        f"### emotion triplets: {n} triplets ({len(emotions)} emotions x {len(bank.speakers)} speakers, "
        f"languages {a.languages}), {cores} cores",
        "",
        f"Command: `.venv/bin/python bench/triplets_bench.py --emotions {a.emotions} --languages {a.languages}`",
        "",
        f"Voice bank: {n_clips} prompt clips rendered in {bank_s:.1f} s wall on Ray "
        f"({n_clips / bank_s if bank_s and n_clips else 0:.2f} clips/s; cached afterwards).",
        "",
    ]
    lines += report_lines("triplets", n, per_stage, loop_wall, ray_wall, info["counts"]["kept"], cores, audio_s,
                          "src + tgt")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
