"""Throughput of the paralinguistic quadruplets: per stage and whole, on Ray and as a plain loop.

    .venv/bin/python bench/paralinguistic_bench.py --speakers en_f1,zh_m1 --tags 10 --out bench/RESULTS.md

Reports quadruplets/s and audio seconds produced (tgt + src + sub) per CPU-second for each stage
(plain loop, one process) and for the whole pipeline on a local Ray (all cores), and Ray's
overhead against the loop. The voice bank is rendered first and timed separately (it is cached
in normal use). The Ray pass finds the loop's prompt analyses in the prompt cache (tts.cache_dir),
as a re-run would: its clone stage is the cheaper for it."""
import argparse
import copy
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from loop_vs_ray import report_lines  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--speakers", default="en_f1,zh_m1", help="voice-bank speakers (comma-separated)")
    ap.add_argument("--tags", type=int, default=10, help="the first N of the ten tags")
    ap.add_argument("--texts-per-tag", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--workdir", default="/tmp/lms-bench")
    a = ap.parse_args()
    os.environ.setdefault("LMS_CACHE_DIR", f"{a.workdir}/cache")
    from hydra import compose, initialize_config_dir

    from core.tags import PARALINGUISTIC_TAGS
    from pipelines import paralinguistic_quadruplets as pq
    from pipelines.runner import execute, init_ray
    tags = list(PARALINGUISTIC_TAGS[: a.tags])
    speakers = a.speakers.split(",")
    languages = sorted({s.split("_")[0] for s in speakers})
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "pipeline=paralinguistic_quadruplets", f"output_dir={a.workdir}/out", f"languages=[{','.join(languages)}]",
            f"pipeline.tags=[{','.join(tags)}]", f"pipeline.speakers=[{a.speakers}]",
            f"pipeline.texts_per_tag={a.texts_per_tag}", "ray.progress=false"])
    t = time.time()
    rows, _, bank = pq.plan(cfg, languages)  # renders the bank's missing neutral clips
    plan_s = time.time() - t
    stages = pq.stages(cfg)

    # plain loop, one process: per-stage CPU time
    loop_rows, per_stage = copy.deepcopy(rows), []
    t_loop = time.time()
    for cls, params in stages:
        s = cls(**params)
        s.setup()
        c0, w0 = time.process_time(), time.time()
        loop_rows = s.process_rows(loop_rows)
        per_stage.append((cls.name, time.process_time() - c0, time.time() - w0))
    loop_wall = time.time() - t_loop
    kept = [r for r in loop_rows if not r["reject"]]
    audio_s = sum(sum(r["meta"]["durations"].values()) + r["meta"].get("sub_duration_s", 0) for r in kept)

    # Ray, all cores, through the runner (shards written)
    init_ray(cfg.ray)
    import ray
    cores = int(ray.cluster_resources().get("CPU", 1))

    # the runner reuses samples of a previous release: start from none, so everything is computed
    shutil.rmtree(Path(cfg.output_dir) / "bench_paralinguistic", ignore_errors=True)
    t = time.time()
    info = execute(cfg, "bench_paralinguistic", copy.deepcopy(rows), stages, pq.sample_builder(cfg, bank))
    ray_wall = time.time() - t

    n = len(kept)
    lines = [
        f"### paralinguistic quadruplets: {n} quadruplets ({len(tags)} tags x {len(speakers)} speakers x "
        f"{a.texts_per_tag} texts), {cores} cores",
        "",
        f"Command: `.venv/bin/python bench/paralinguistic_bench.py --speakers {a.speakers} --tags {a.tags} "
        f"--texts-per-tag {a.texts_per_tag}`",
        "",
        f"Plan (incl. voice bank {bank.id} check/render): {plan_s:.1f} s.",
        "",
    ]
    lines += report_lines("quadruplets", n, per_stage, loop_wall, ray_wall, info["counts"]["kept"], cores, audio_s,
                          "tgt + src + sub")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
