"""Replicas sharing one GPU, as `pipeline.replicas=R pipeline.gpus_per_replica=1/R` runs them: R processes,
each the served editor (bench/serving_gpu.py's served_editor) decoding continuously with 128/R rows, each
answering CLIENTS/R clients that wait for their answers (bench/serving_gpu.py's closed_loop: batches as the
server forms them, two in flight), all measured over the same seconds.

    python bench/serving_replicas.py CLIPS_DIR OUT_JSON [R ...]      # default R: 1 2 4

Why: one replica is one Python process, and everything a request costs the host (analysis, the prompts,
the prefill, the decode loop, the codec's calls) takes turns on its one interpreter lock; a second
process on the same GPU has its own. Per R, the audio of all replicas over the window from the first
replica's start to the last one's end. Guided as the LLM's inference.json says. SERVING_SMOKE=1: a quick
CPU run. SERVING_LLM (default the shipped editor/artifacts/editor-llm-v12) with SERVING_TOKENIZER and
SERVING_DECODER serves another LLM and its codec.

Two continuous decoders on one H100 crashed before the stream and graph fixes and ran after them
(docs/serving.md, "Two replicas on one GPU", "After the fixes"); switches that test what is behind it: SERVING_ROWS_PER_REPLICA=0 runs the replicas with batch decoding (no continuous
decoder), SERVING_OWN_INDUCTOR_CACHE=1 gives each replica its own torch.compile cache directory (the
replicas compile the same steps at the same moment), SERVING_CUDA_GRAPHS=0 decodes and vocodes eagerly (no
captured graph anywhere). CUDA_LAUNCH_BLOCKING=1 names the kernel at fault.
"""
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.artifacts import SHIPPED_LLM, in_repo  # noqa: E402
SMOKE = bool(int(os.environ.get("SERVING_SMOKE", "0")))
# SERVING_CLIENTS: all replicas' clients together; one replica with 32 is the control of two sharing 64
# (the same batch, prefill and codec shapes per replica)
CLIENTS = int(os.environ.get("SERVING_CLIENTS", 4 if SMOKE else 64))
ROUNDS = 2 if SMOKE else 6
ROWS = os.environ.get("SERVING_ROWS_PER_REPLICA")      # default: 128 / R (8 / R in a smoke run), at least 8
GRAPHS = os.environ.get("SERVING_CUDA_GRAPHS", "1") == "1"


def replica(k, replicas, barrier, results, clips_dir, llm):
    if os.environ.get("SERVING_OWN_INDUCTOR_CACHE") == "1":       # read when torch compiles, after this
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"/tmp/torchinductor_replica_{k}"
    from editor.llm.editor import Editor
    Editor.cuda_graphs = GRAPHS
    try:
        results.put((k, serve_clients(k, replicas, barrier, clips_dir, llm)))
    except BaseException as e:       # the parent raises it, rather than waiting for a result that never comes
        import traceback
        results.put((k, {"error": "".join(traceback.format_exception(e))}))
        barrier.abort()


def say(k, what):
    print(f"replica {k}: {what} at {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)


def serve_clients(k, replicas, barrier, clips_dir, llm) -> dict:
    import importlib.util

    import serving_gpu as sg
    say(k, "started")
    res = {"vad": "silero" if importlib.util.find_spec("silero_vad") else "energy"}
    clips = sg.load_clips(Path(clips_dir))
    ed = sg.served_editor(llm, res)
    sg.warm_up(ed, clips)
    rows = int(ROWS) if ROWS is not None else max(8, (8 if SMOKE else 128) // replicas)
    if rows:
        ed.use_continuous(rows, 1024)
        sg.warm_up(ed, clips)
    say(k, "ready")
    barrier.wait()
    out = {"closed_loop": sg.closed_loop(ed, clips, CLIENTS // replicas, rounds=ROUNDS)}
    say(k, f"{out['closed_loop']['x_real_time']}x")
    out["peak_gpu_mib"] = sg.peak_mib()
    ed.close()
    sg.codec_mod.use_analysis_processes(False)      # the worker processes stopped, or this one never exits
    return out


def main():
    clips_dir, out_json = sys.argv[1], Path(sys.argv[2])
    counts = [int(r) for r in sys.argv[3:]] or [1, 2, 4]
    llm = os.environ.get("SERVING_LLM", in_repo(SHIPPED_LLM))
    ctx = mp.get_context("spawn")
    res = {"clients": CLIENTS, "rounds": ROUNDS, "llm": llm, "rows_per_replica": ROWS or "128/R",
           "own_inductor_cache": os.environ.get("SERVING_OWN_INDUCTOR_CACHE") == "1",
           "cuda_graphs": GRAPHS, "cuda_launch_blocking": os.environ.get("CUDA_LAUNCH_BLOCKING") == "1"}
    for n in counts:
        t = time.perf_counter()
        barrier, results = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=replica, args=(k, n, barrier, results, clips_dir, llm)) for k in range(n)]
        for p in procs:
            p.start()
        got = dict(results.get(timeout=900) for _ in procs)
        for p in procs:         # a replica that failed may keep its analysis workers, and so never exit
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
        r = res[f"replicas_{n}"] = {"per_replica": [got[k] for k in range(n)], "wall_s": round(time.perf_counter() - t, 1)}
        failed = [k for k in range(n) if "error" in got[k]]
        for k in failed:
            print(f"replica {k} of {n} failed:\n{got[k]['error']}", file=sys.stderr, flush=True)
        rows = [got[k]["closed_loop"] for k in range(n) if k not in failed]
        if not rows:
            out_json.write_text(json.dumps(res, indent=1))
            continue
        start, end = min(x["at"][0] for x in rows), max(x["at"][1] for x in rows)
        audio = sum(x["audio_s"] for x in rows)
        r["all"] = {"audio_s": round(audio, 1), "window_s": round(end - start, 3), "x_real_time": round(audio / (end - start), 1),
                    "replicas_failed": len(failed)}
        print(f"replicas {n}", r["all"], flush=True)
        out_json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
