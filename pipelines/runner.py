"""Shared engine of every pipeline: Ray setup, the stage DAG, the writer, manifests, summary.

Output of a pipeline goes to output_dir/<pipeline>/. A run writes into <pipeline>.partial/ and
swaps it in only when complete, so a crash leaves the previous output intact and this run's
finished shards in .partial/ (never a half-written shard under a .tar name)."""
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from core.shards import ShardWriter
from stages.base import decode_row, encode_rows, map_stages

log = logging.getLogger("lms")
REPO = Path(__file__).resolve().parent.parent


def check_output_dir(output_dir: str) -> Path:
    root = Path(output_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"output_dir={output_dir} is not writable: {e}") from e
    return root


def init_ray(rcfg):
    import ray
    if not ray.is_initialized():
        _start_ray(rcfg)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # same config and seed -> same shard contents
    ctx.enable_progress_bars = bool(rcfg.progress)


def _start_ray(rcfg):
    import ray
    env = {"env_vars": {"PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}}
    if rcfg.address:
        ray.init(address=rcfg.address, runtime_env=env, log_to_driver=rcfg.log_to_driver)
    else:
        ray.init(num_cpus=rcfg.num_cpus, include_dashboard=False, runtime_env=env,
                 _node_ip_address=rcfg.node_ip, log_to_driver=rcfg.log_to_driver)


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for pkg in ("ray", "webdataset", "numpy", "pyworld", "piper-tts", "torch"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = None
    return out


def _flatten(sample: dict) -> dict:
    return {k: (json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, (dict, list)) else v)
            for k, v in sample.items()}


def execute(cfg, pipeline: str, rows: list[dict], stages: list[tuple[type, dict]], to_sample,
            pre_rejects: list[dict] | None = None, extra_run_info: dict | None = None, report=None) -> dict:
    """Run rows through stages on Ray and write the output contract.

    to_sample(row) -> (members, sample_json): members maps suffix ('src.flac') to bytes.
    report(manifest, rejects) -> (dict for run.json, summary lines), optional.
    """
    import ray

    t0 = time.time()
    root = check_output_dir(cfg.output_dir)
    final = root / pipeline
    partial = root / f"{pipeline}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    writer = ShardWriter(partial / "shards", pipeline, cfg.writer.max_samples_per_shard,
                         int(cfg.writer.max_mb_per_shard * 2**20))

    init_ray(cfg.ray)
    manifest, rejects = [], list(pre_rejects or [])
    timings, audio_s, kept = defaultdict(float), 0.0, 0
    limit = cfg.limit
    if rows:
        ds = ray.data.from_items(encode_rows(rows).to_dict("records"), override_num_blocks=min(len(rows), 256))
        ds = map_stages(ds, stages, cfg.ray.max_actors)
        for rec in ds.iter_rows():
            row = decode_row(rec)
            for name, sec in row["meta"].pop("_timings", {}).items():
                timings[name] += sec
            if row["reject"]:
                rejects.append({"key": row["key"], **row["reject"], "value": _num(row["reject"].get("value")),
                                "meta": json.dumps(row["meta"], ensure_ascii=False)})
                continue
            members, sample = to_sample(row)
            shard = writer.write(row["key"], {**members, "json": sample})
            manifest.append({"key": row["key"], "shard": shard, **_flatten(sample)})
            audio_s += sum(sample.get("durations", {}).values())
            kept += 1
            if limit and kept >= limit:
                break
    writer.close()
    wall = time.time() - t0

    pd.DataFrame(manifest).to_parquet(partial / "manifest.parquet", index=False)
    pd.DataFrame(rejects, columns=["key", "stage", "reason", "detail", "value", "meta"]).to_parquet(
        partial / "rejects.parquet", index=False)
    reasons = Counter(f"{r['stage']}:{r['reason']}" for r in rejects)
    info = {
        "pipeline": pipeline, "config": _plain(cfg), "versions": versions(),
        "counts": {"planned": len(rows) + len(pre_rejects or []), "kept": kept, "rejected": len(rejects),
                   "rejected_by_reason": dict(reasons), "shards": len(writer.published)},
        "audio_hours": round(audio_s / 3600, 4), "wall_s": round(wall, 2),
        "throughput_samples_per_s": round(kept / wall, 3) if wall else None,
        "stage_cpu_s": {k: round(v, 2) for k, v in timings.items()},
        "shards": [{k: v for k, v in s.items() if k != "keys"} for s in writer.published],
        **(extra_run_info or {}),
    }
    extra_lines = []
    if report:
        extra, extra_lines = report(manifest, rejects)
        info.update(extra)
    (partial / "run.json").write_text(json.dumps(info, indent=2, ensure_ascii=False, default=str))
    # publish: the previous output stays until the new one is complete
    old = root / f"{pipeline}.old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(partial, final)
    if old.exists():
        shutil.rmtree(old)
    _summary(info, final, extra_lines)
    return info


def _num(v):
    return float(v) if isinstance(v, (int, float)) else None


def _plain(cfg):
    from omegaconf import OmegaConf
    return OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg


def _summary(info: dict, where: Path, extra_lines=()):
    c = info["counts"]
    lines = [f"== {info['pipeline']}: {c['kept']} kept, {c['rejected']} rejected, {c['shards']} shards -> {where}",
             f"   audio {info['audio_hours'] * 60:.1f} min, wall {info['wall_s']:.1f} s, "
             f"{info['throughput_samples_per_s']} samples/s"]
    for reason, n in sorted(c["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"   rejected {reason}: {n}")
    if info["stage_cpu_s"]:
        lines.append("   stage CPU-s: " + ", ".join(f"{k} {v}" for k, v in info["stage_cpu_s"].items()))
    print("\n".join([*lines, *extra_lines]), flush=True)
