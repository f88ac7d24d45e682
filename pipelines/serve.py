"""pipeline=serve: the editor's HTTP API on Ray Serve (editor/serve/app.py; docs/serving.md).

    python run.py pipeline=serve                                   # 127.0.0.1:8000, local Ray, shipped editor
    python run.py pipeline=serve ray.address=auto pipeline.host=0.0.0.0 \\
        pipeline.replicas=4 pipeline.gpus_per_replica=1             # on a running Ray cluster

Blocks until Ctrl-C (or SIGTERM), then takes the app down; pipeline.blocking=false returns the URL
once every replica is up."""
import logging
import signal
import threading
from pathlib import Path

from omegaconf import OmegaConf

from editor.features import check_f0_decimation
from editor.serve.cli import SHIPPED_LLM
from editor.serve.schema import Limits
from pipelines.runner import init_ray

log = logging.getLogger("lms")


def _dir(value, default, marker: str, key: str) -> str | None:
    """An artifact dir checked here, so a typo is one error line rather than replicas failing on Ray."""
    if value is None and default is None:
        return None
    d = Path(value or default)
    if not (d / marker).is_file():
        raise ValueError(f"pipeline.{key}={d}: not an artifact directory (no {marker})")
    return str(d.resolve())


def gpu_share_note(gpus) -> str | None:
    """A warning for replicas that share a GPU (None for whole GPUs or none); a bad value is refused."""
    try:
        gpus = float(gpus)
    except (TypeError, ValueError):
        raise ValueError(f"pipeline.gpus_per_replica={gpus}: a number of GPUs, 0 or more") from None
    if gpus < 0:
        raise ValueError(f"pipeline.gpus_per_replica={gpus}: a number of GPUs, 0 or more")
    if 0 < gpus < 1:
        # Measured on one H100 (docs/serving.md, 'Two replicas on one GPU'): two replicas of 32 clients each
        # served 413x real time together, one replica of the same 32 clients 428x, one of 64 clients 707x.
        return (f"pipeline.gpus_per_replica={gpus}: replicas sharing a GPU take turns on it and serve no more "
                "than one replica does; one replica per GPU with more rows (pipeline.continuous_rows) serves more")
    return None


def start(cfg) -> str:
    """Deploy the app on Ray (started here unless it is up already); the base URL."""
    p = cfg.pipeline
    llm = _dir(p.llm, SHIPPED_LLM, "llm_vocab.json", "llm")
    tokenizer, decoder = _dir(p.tokenizer, None, "config.json", "tokenizer"), _dir(p.decoder, None, "config.json", "decoder")
    limits = OmegaConf.to_container(p.limits, resolve=True)
    Limits(**limits)      # its checks, before Ray starts
    if p.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"pipeline.device={p.device!r}: use auto, cpu or cuda")
    if p.device == "cuda" and not p.gpus_per_replica:
        raise ValueError("pipeline.device=cuda needs pipeline.gpus_per_replica > 0 (Ray hides GPUs from a replica without)")
    try:
        check_f0_decimation(p.f0_decimation)
    except ValueError as e:
        raise ValueError(f"pipeline.{e}") from None
    rows = p.continuous_rows
    if rows != "auto" and (not isinstance(rows, int) or rows == 1 or rows < 0):
        raise ValueError(f"pipeline.continuous_rows={rows!r}: auto, 0 (batch decoding) or a number of rows >= 2")
    share = gpu_share_note(p.gpus_per_replica)
    if share:
        log.warning(share)
    if int(p.continuous_cache_len) < 64:
        raise ValueError(f"pipeline.continuous_cache_len={p.continuous_cache_len}: at least 64")
    if p.max_ongoing_requests < p.max_batch_size:
        raise ValueError(f"pipeline.max_ongoing_requests={p.max_ongoing_requests} < pipeline.max_batch_size="
                         f"{p.max_batch_size}: batches could never fill")
    init_ray(cfg.ray)
    from ray import serve

    from editor.serve.app import EditorServer
    serve.start(http_options={"host": p.host, "port": int(p.port)})
    app = EditorServer.options(
        num_replicas=int(p.replicas), max_ongoing_requests=int(p.max_ongoing_requests),
        ray_actor_options={"num_cpus": p.cpus_per_replica, "num_gpus": p.gpus_per_replica},
    ).bind(llm, tokenizer, decoder, p.device, limits, int(p.max_batch_size), float(p.batch_wait_timeout_s),
           bool(p.analysis_processes), int(p.f0_decimation), rows, int(p.continuous_cache_len))
    serve.run(app, name="editor", route_prefix="/")
    url = f"http://{p.host}:{p.port}"
    log.info("editor API up at %s (%d replica(s) of %s): POST /clone, POST /edit, GET /health", url, p.replicas, llm)
    return url


def run(cfg):
    url = start(cfg)
    if not cfg.pipeline.blocking:
        return {"url": url}
    from ray import serve
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"serving on {url}; Ctrl-C stops", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping (Ray Serve takes up to 30 s to take its controller down)", flush=True)
        serve.shutdown()
        print(f"stopped; {url} no longer answers", flush=True)
    return {"url": url}
