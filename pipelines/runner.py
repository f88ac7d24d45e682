"""Shared engine of every pipeline: Ray setup, the stage DAG, the writer, manifests, summary.

Output of a pipeline goes to output_dir/<pipeline>/. A run writes into <pipeline>.partial/ and
swaps it in only when complete, so a crash leaves the previous output intact and this run's
finished shards in .partial/ (never a half-written shard under a .tar name)."""
import errno
import hashlib
import importlib.util
import json
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from core.reader import Release, flatten
from core.releases import PipelineDir
from core.sample import SAMPLE_VERSION, Sample, SampleError
from core.shards import ShardWriter
from pipelines.report import audio_span, write_report
from stages.base import TTS_UNAVAILABLE, decode_row, local_rows, map_stages, rows_dataset

log = logging.getLogger("lms")
REPO = Path(__file__).resolve().parent.parent


def quality_stages(cfg) -> list[tuple[type, dict]]:
    """The configured quality measurements and the filter that decides on them."""
    from omegaconf import OmegaConf

    from stages.asr_wer import AsrWer
    from stages.prompt_similarity import PromptSimilarity
    from stages.quality_filter import QualityFilter
    q = OmegaConf.to_container(cfg.quality, resolve=True)
    out = []
    if q["wer"]["enabled"]:
        out.append((AsrWer, {"roles": q["wer"]["roles"]}))
    if q["prompt_similarity"]["enabled"]:
        out.append((PromptSimilarity, {}))
    return out + [(QualityFilter, q)]


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


def check_not_input(output_dir, name: str, input_roots) -> None:
    """The output pipeline folder must not hold the input release: publishing into it would move the
    input out of `latest` and, releases later, delete it."""
    out = (Path(output_dir) / name).resolve()
    for root in input_roots:
        root = Path(root).resolve()
        if root == out or out in root.parents:
            raise ValueError(f"output_dir={output_dir} with output name {name!r} is the input's own folder ({root}): "
                             "choose another pipeline.out_name or output_dir")


def use_ray(rcfg) -> bool:
    """ray.enabled: true (Ray, a named error when it is not installed), false (this process), auto
    (Ray where it is installed: the GPU machine, where it cannot be carried, runs in process)."""
    want = rcfg.get("enabled", "auto")
    if want == "auto":
        return importlib.util.find_spec("ray") is not None
    if want not in (True, False):
        raise ValueError(f"ray.enabled={want!r}: use true, false or auto")
    if want and importlib.util.find_spec("ray") is None:
        raise ValueError("ray.enabled=true but Ray is not installed here (pip install 'ray[data]'); "
                         "ray.enabled=false runs the stages in this process")
    return want


def stream_rows(rcfg, rows: list[dict], stages: list[tuple[type, dict]], max_blocks: int = 256):
    """The rows through the stages, decoded, in order: (iterator, close). On Ray (GPU stages on GPU
    actors where the cluster has GPUs) or, per use_ray, in this process with the same stage code.
    close() stops the work early (call it while Ray is up: at exit its shutdown would hang)."""
    if not use_ray(rcfg):
        log.info("running %s in this process (ray.enabled=%s)", "+".join(c.name for c, _ in stages),
                 rcfg.get("enabled", "auto"))
        gen = local_rows(rows, stages)
        return gen, gen.close
    init_ray(rcfg)
    source = iter(map_stages(rows_dataset(rows, max_blocks), stages, rcfg.max_actors).iter_rows())
    return map(decode_row, source), source.close


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


def execute(cfg, pipeline: str, rows: list[dict], stages: list[tuple[type, dict]], to_sample,
            pre_rejects: list[dict] | None = None, extra_run_info: dict | None = None, report=None,
            plan_identity=None, finish=None, reuse_if=None) -> dict:
    """Run rows through stages on Ray and release the output contract (core/releases.py).

    to_sample(row) -> core.sample.Sample (key, JSON, members by suffix). The writer validates each
    sample against its task's schema: one that breaks it is a bug in the pipeline, and stops the run
    with an error naming the key and the field (finished shards are kept).
    report(manifest, rejects) -> (dict for run.json, summary lines), optional.
    finish(release_dir) -> (dict for run.json, summary lines), optional: writes files derived from the
    whole release (a table over all its samples) into it before it is published, so they appear with it.
    plan_identity: what else makes the samples, when the keys do not say it (a tokenizer version):
    a partial run of another identity is never resumed.
    reuse_if(manifest row of the latest release) -> bool, optional: which of its samples may be copied
    (a token release: those of this run's tokenizer weights); the others are made again.

    Rows are written in plan order. Samples (and rejects) whose key is already in the latest
    release are copied from it instead of recomputed: keys hash everything that makes a sample, so
    a refresh with added texts or speakers computes only the new ones. A run interrupted after
    some shards resumes after the last finished shard.
    """
    t0 = time.time()
    out = PipelineDir(check_output_dir(cfg.output_dir), pipeline)
    out.lock()
    try:
        return _execute(cfg, pipeline, out, rows, stages, to_sample, pre_rejects or [], extra_run_info or {},
                        report, t0, plan_identity, finish, reuse_if)
    except OSError as e:
        if not _about_output(e, cfg.output_dir):
            raise
        raise ValueError(_output_error(cfg.output_dir, e)) from e
    finally:
        out.unlock()


def _about_output(e: OSError, output_dir: str) -> bool:
    """A full disk, or any failure on a file of output_dir: the condition of the machine, not a bug.
    (Shard writes report no file name, hence the errno test.)"""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return bool(e.filename) and Path(os.path.abspath(e.filename)).is_relative_to(os.path.abspath(output_dir))


def _output_error(output_dir: str, e: OSError) -> str:
    keep = "the previous release and `latest` are untouched, finished shards are kept: rerun to resume"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on {output_dir} ({e}); free some space, {keep}"
    return f"cannot write to output_dir={output_dir}: {e}; {keep}"


def _execute(cfg, pipeline, out, rows, stages, to_sample, pre_rejects, extra_run_info, report, t0, plan_identity,
             finish, reuse_if=None):
    keys = [r["key"] for r in rows]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"{pipeline}: the plan has duplicate keys")
    plan = [pipeline, keys, cfg.writer.max_samples_per_shard, cfg.writer.max_mb_per_shard, cfg.limit, SAMPLE_VERSION]
    plan += [plan_identity] if plan_identity is not None else []
    fingerprint = hashlib.sha1(json.dumps(plan).encode()).hexdigest()[:12]
    # what makes the samples beyond their keys: a killed run of another plan with the same may be salvaged
    identity = {"plan_identity": plan_identity, "sample_version": SAMPLE_VERSION}
    partial = out.partial(fingerprint, identity, salvage=True)
    done = out.progress(partial)
    manifest = [m for rec in done for m in rec["manifest"]]
    # a row the TTS server was unavailable for is retried, first, by a resume too
    retry = _still_unavailable(done)
    rejects = list(pre_rejects) + [r for rec in done for r in rec["rejects"] if r["reason"] != TTS_UNAVAILABLE]
    start = done[-1]["plan_pos"] + 1 if done else 0
    if done:
        print(f"resuming {pipeline}: {len(done)} finished shards kept, continuing at plan row {start}"
              + (f" after retrying {len(retry)} rows the TTS server was unavailable for" if retry else ""),
              flush=True)
    writer = ShardWriter(partial / "shards", pipeline, cfg.writer.max_samples_per_shard,
                         int(cfg.writer.max_mb_per_shard * 2**20), start_index=len(done))

    prev_kept, prev_rejects = _previous(out, reuse_if)
    current = _current_version_keys(out)
    prev_kept = {k: load for k, load in prev_kept.items() if k in current}
    finished = {m["key"] for m in manifest}
    salvaged = {k: load for k, load in _salvage(out, partial).items()
                if k not in prev_kept and k not in finished}
    prev_kept.update(salvaged)
    order = [pos for pos in range(start) if keys[pos] in retry] + list(range(start, len(rows)))
    todo = [rows[pos] for pos in order if keys[pos] not in prev_kept and keys[pos] not in prev_rejects]
    results, close = iter(()), None
    if todo:
        results, close = stream_rows(cfg.ray, todo, stages)
    unavailable = Unavailable(cfg.tts.get("unavailable_window"), len(todo))

    # since: (index in order, reject) of the rows rejected after the last finished shard
    timings, kept, reused, since, last_written = defaultdict(float), len(manifest), 0, [], -1
    from_killed = 0
    limit = cfg.limit
    try:
        for i, pos in enumerate(order):
            if limit and kept >= limit:
                break
            key = keys[pos]
            if key in prev_kept:
                members, sample_json, entry = prev_kept[key]()
                sample = Sample(key, sample_json, members)
                reused += 1
                from_killed += key in salvaged
            elif key in prev_rejects:
                since.append((i, prev_rejects[key]))
                reused += 1
                continue
            else:
                row = next(results)
                assert row["key"] == key, f"order broken: {row['key']} != {key}"
                for name, sec in row["meta"].pop("_timings", {}).items():
                    timings[name] += sec
                if unavailable.add(i, row["reject"]):
                    cut = unavailable.first
                    _keep_before(out, partial, writer, manifest, since, cut, last_written,
                                 max(order[cut] - 1, start - 1))
                    raise ValueError(f"{row['reject']['detail']}; {unavailable.count} requests in a row failed, "
                                     f"so the run stopped; finished shards are kept in {partial}, rerun to resume")
                if row["reject"]:
                    since.append((i, {"key": key, **row["reject"], "value": _num(row["reject"].get("value")),
                                      "meta": json.dumps(row["meta"], ensure_ascii=False)}))
                    continue
                sample = to_sample(row)
                if sample.key != key:
                    raise SampleError(f"sample {sample.key}: built from row {key}: to_sample must keep the row's key")
                entry = flatten(sample.json)  # the manifest row, as the reader reads it back
            n_pub = len(writer.published)
            try:
                shard = writer.write(sample)
            except SampleError as e:
                raise SampleError(f"{e} -- a bug in pipeline {pipeline} (schemas: docs/samples.md): the run stopped, "
                                  f"finished shards are kept in {partial}, the previous release is unchanged") from e
            manifest.append({"key": key, "shard": shard, **entry})
            kept, last_written = kept + 1, i
            if len(writer.published) > n_pub or (limit and kept >= limit) or i == len(order) - 1:
                writer.flush()
                rejects += [r for _, r in since]
                _record(out, partial, writer, manifest, since, max(pos, start - 1))
                since = []
    except BaseException:
        writer.abort()
        raise
    finally:
        if close is not None:  # stop the work now, while Ray is up: at exit its shutdown would hang
            close()
    writer.close()
    rejects += [r for _, r in since]
    wall = time.time() - t0
    audio_s = sum(sum(json.loads(m["durations"]).values()) if isinstance(m.get("durations"), str) else 0
                  for m in manifest)

    # a run that kept nothing still writes a manifest a reader (and the next run) can read
    (pd.DataFrame(manifest) if manifest else pd.DataFrame(columns=["key", "shard"])).to_parquet(
        partial / "manifest.parquet", index=False)
    pd.DataFrame(rejects, columns=["key", "stage", "reason", "detail", "value", "meta"]).to_parquet(
        partial / "rejects.parquet", index=False)
    reasons = Counter(f"{r['stage']}:{r['reason']}" for r in rejects)
    shards = sorted({m["shard"] for m in manifest})
    info = {
        "pipeline": pipeline, "config": _plain(cfg), "versions": versions(),
        "counts": {"planned": len(rows) + len(pre_rejects), "kept": kept, "rejected": len(rejects),
                   "rejected_by_reason": dict(reasons), "shards": len(shards), "reused_from_previous": reused,
                   "salvaged_from_killed_run": from_killed,
                   "resumed_shards": len(done)},
        "audio_hours": round(audio_s / 3600, 4), "wall_s": round(wall, 2),
        "throughput_samples_per_s": round(kept / wall, 3) if wall else None,
        "stage_cpu_s": {k: round(v, 2) for k, v in timings.items()},
        "shards": [{"shard": s, "samples": sum(m["shard"] == s for m in manifest)} for s in shards],
        **extra_run_info,
    }
    extra_lines = []
    if report:
        extra, extra_lines = report(manifest, rejects)
        info.update(extra)
    if finish:
        extra, lines = finish(partial)
        info.update(extra)
        extra_lines = [*extra_lines, *lines]
    (partial / "run.json").write_text(json.dumps(info, indent=2, ensure_ascii=False, default=str))
    write_report(partial, info, manifest, rejects)
    release_id = time.strftime("%Y%m%d-%H%M%S") + "-" + fingerprint[:6]
    final = out.publish(partial, release_id, cfg.release.keep)
    info["release"] = final.name
    _summary(info, final, extra_lines)
    return info


def _current_version_keys(out) -> set[str]:
    """Keys of the latest release's samples written at this SAMPLE_VERSION: older ones lack members
    or fields of today's samples, so they are recomputed (same keys, same audio) instead of reused."""
    latest = out.latest()
    if latest is None or not (latest / "manifest.parquet").is_file():
        return set()
    import pyarrow.parquet as pq
    names = pq.read_schema(latest / "manifest.parquet").names
    if "sample_version" not in names:
        return set()
    m = pq.read_table(latest / "manifest.parquet", columns=["key", "sample_version"]).to_pydict()
    return {k for k, v in zip(m["key"], m["sample_version"]) if v == SAMPLE_VERSION}


def _record(out, partial, writer, manifest, since, pos):
    """After a shard is published: its manifest rows and the rejects since the last record."""
    last = writer.published[-1]
    rows = [m for m in manifest if m["shard"] == last["shard"]]
    out.record(partial, {"shard": last["shard"], "manifest": rows, "rejects": [r for _, r in since],
                         "plan_pos": pos})


def _keep_before(out, partial, writer, manifest, since, cut, last_written, plan_pos):
    """Publish the open shard when all of it comes before row `cut` (an index into the run's order),
    so a resume starts there; otherwise drop it and a resume starts after the last finished shard."""
    if last_written >= cut:  # a sample reused from the previous release follows the failures
        writer.abort()
        return
    n_pub = len(writer.published)
    writer.flush()
    if len(writer.published) > n_pub:
        _record(out, partial, writer, manifest, [(i, r) for i, r in since if i < cut], plan_pos)


def _still_unavailable(done: list[dict]) -> set[str]:
    """Keys whose latest outcome in the finished shards' records is a tts_unavailable reject."""
    latest = {}
    for rec in done:
        latest.update({r["key"]: r["reason"] for r in rec["rejects"]})
        latest.update({m["key"]: "kept" for m in rec["manifest"]})
    return {k for k, outcome in latest.items() if outcome == TTS_UNAVAILABLE}


class Unavailable:
    """Counts rows rejected as tts_unavailable in a row. `window` of them (or every row of a run
    shorter than that) means the server is down or broken: the run stops instead of rejecting the
    rest of the plan, and a rerun resumes."""

    def __init__(self, window: int | None, n_todo: int):
        if window is not None and window < 1:
            raise ValueError(f"tts.unavailable_window must be at least 1, got {window}")
        self.window = min(window or n_todo, n_todo)
        self.first, self.count = None, 0

    def add(self, i: int, reject: dict | None) -> bool:
        """Count the outcome of computed row i; True when the window is full."""
        if reject and reject["reason"] == TTS_UNAVAILABLE:
            self.first = i if self.count == 0 else self.first
            self.count += 1
        else:
            self.first, self.count = None, 0
        return self.count >= self.window


HEADER_JUDGED = ("llm_edit", "llm_clone")   # stages whose too_long rejects read only a file's header


def _salvage(out, mine: Path) -> dict:
    """Finished samples of killed runs of other plans that made their samples as this one does (the
    same plan identity and sample version: PipelineDir.partial kept only those; keys hash the rest):
    key -> loader, as _previous gives. Best effort: a partial that cannot be read is left to be redone."""
    kept = {}
    for stale in out.stale_partials(mine):
        try:
            done = out.progress(stale)
            if not done:
                continue
            release = Release(",".join(str(stale / "shards" / rec["shard"]) for rec in done))
            found = {row["key"]: _copier(release, row) for rec in done for row in rec["manifest"]}
        except (OSError, ValueError, KeyError) as e:
            print(f"not salvaging {stale.name}: {e}", flush=True)
            continue
        kept.update(found)
    if kept:
        print(f"salvaging up to {len(kept)} finished samples of killed runs of other plans", flush=True)
    return kept


def _previous(out, reuse_if=None) -> tuple[dict, dict]:
    """Kept samples (key -> loader of members; those reuse_if accepts) and rejects of the latest release."""
    latest = out.latest()
    if latest is None or not (latest / "manifest.parquet").is_file():
        return {}, {}
    release = Release(latest)
    rej = pd.read_parquet(latest / "rejects.parquet")
    # rejects caused by transient conditions are retried, and so are those judged against a limit from a
    # file's header (the limit may have changed; judging again reads a header); bad input stays rejected
    prev_rejects = {r["key"]: r for r in rej.to_dict("records")
                    if r["stage"] != "plan" and r["reason"] != TTS_UNAVAILABLE
                    and not (r["reason"] == "too_long" and r["stage"] in HEADER_JUDGED)}
    kept = {rec["key"]: _copier(release, rec) for rec in release.manifest.drop(columns="shard_path").to_dict("records")
            if reuse_if is None or reuse_if(rec)}
    return kept, prev_rejects


def _copier(release, row: dict):
    """A sample of an earlier run, loaded when it is copied: (members, JSON, manifest entry)."""
    def load():
        s = release.sample(row["key"], decode=False)  # raw members: copied byte for byte
        return s.members, s.json, {k: v for k, v in row.items() if k not in ("key", "shard")}
    return load


def _num(v):
    return float(v) if isinstance(v, (int, float)) else None


def _plain(cfg):
    from omegaconf import OmegaConf
    return OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg


def _summary(info: dict, where: Path, extra_lines=()):
    c = info["counts"]
    lines = [f"== {info['pipeline']}: {c['kept']} kept, {c['rejected']} rejected, {c['shards']} shards -> {where}",
             f"   audio {audio_span(info['audio_hours'])}, wall {info['wall_s']:.1f} s, "
             f"{info['throughput_samples_per_s']} samples/s"]
    for reason, n in sorted(c["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"   rejected {reason}: {n}")
    if info["stage_cpu_s"]:
        lines.append("   stage CPU-s: " + ", ".join(f"{k} {v}" for k, v in info["stage_cpu_s"].items()))
    print("\n".join([*lines, *extra_lines]), flush=True)
