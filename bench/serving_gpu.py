"""Serving speed of the shipped editor on one GPU, bf16 and int8 side by side (issue: serving).

    python bench/serving_gpu.py CLIPS_DIR OUT_DIR [llm_dir]

CLIPS_DIR: a few 16 kHz clips (NAME.flac + NAME.json with "text"), bench/serving_clips.py makes them.
Per model: time to the first streamed audio chunk and RTF at batch 1 (codec included), throughput of
16 and 64 requests at once through Editor.edit_many (the batch an API replica forms from concurrent
clients) and of 16 and 64 "clients that keep sending" (`sustained`: waves of N analysed while the wave
before generates and the one before that decodes, up to 3N requests in flight; `closed_loop`, rows of
SERVING_ROWS=1: N clients that wait for their answers, as the API server batches them), peak GPU memory;
then a 2-minute edit (split at pauses, joined) with its seams measured:
the level and F0 step across each join against the same steps at other places of the same output.
Quality of int8 against bf16 without a judge here: greedy answers' token agreement and lengths.
"""
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.artifacts import SHIPPED_LLM, in_repo  # noqa: E402
from editor import codec as codec_mod  # noqa: E402
from editor.llm.editor import Editor  # noqa: E402
from editor.llm.quantize import weight_bytes  # noqa: E402
from editor.llm.generate import generate  # noqa: E402
from long_edit import energy_speech, load_clips, peak_mib, reset_peak, sync, warm_long_edit  # noqa: E402

SR = 16000
EDITS = [("emotion", "happy"), ("emotion", "sad"), ("style", "whisper"), ("speed", "faster")]


CUDA = torch.cuda.is_available()
SMOKE = bool(int(__import__("os").environ.get("SERVING_SMOKE", "0")))   # a quick CPU run of the script itself
# SERVING_F0_ONLY=1: bf16 alone, and only the rows that compare the F0 search at 16 kHz and on a 4 kHz
# copy (f0_decimation 1 and 4) in the same run, guided as shipped and unguided: a short call
F0_ONLY = bool(int(__import__("os").environ.get("SERVING_F0_ONLY", "0")))
# SERVING_AB=attention: bf16 alone, the F0 search on a 4 kHz copy, analysis in worker processes;
# batch 1, a wave of 64's parts, 16 and 64 clients, two ways of decoding in the same run (the first way
# twice, before and after the second): the decode step's attention as transformers' SDPA runs it (the
# cache copied per query head) and as editor/llm/decode_attention.py runs it
DECODE_AB = __import__("os").environ.get("SERVING_AB", "")
# SERVING_TIMELINE=1: bf16 alone, as the A/B runs it; 64 clients that keep sending, 2 waves, under the
# profiler: the trace (timeline_64.json.gz, for Perfetto or chrome://tracing) and how busy each GPU stream
# was, how much of that ran beside another stream and how long the GPU had nothing to do
TIMELINE = bool(int(__import__("os").environ.get("SERVING_TIMELINE", "0")))
# SERVING_ROWS=1: the served editor's rows (batch 1, a wave of 64's parts, 16 and 64 clients that keep
# sending and that wait for their answers, unguided and guided) for the editor of the tree this script sits
# in; bench/serving_before_after.sh runs it in two trees
ROWS = bool(int(__import__("os").environ.get("SERVING_ROWS", "0")))
SWITCH_S = float(__import__("os").environ.get("SERVING_SWITCH_S", "0"))   # with SERVING_ROWS: sys.setswitchinterval
# SERVING_CONTINUOUS=1: clients that wait for their answers (`closed_loop`, 16 and 64, unguided and guided)
# against the served editor decoding in batches and then continuously (editor/llm/continuous.py, 128 rows),
# in the same run; batch 1 continuously; then int8 continuously; peak GPU memory of each
CONTINUOUS = bool(int(__import__("os").environ.get("SERVING_CONTINUOUS", "0")))
# SERVING_BATCH1=1: a short call: per model (bf16, int8) the batch-1 rows (RTF, first streamed chunk), the
# 2-minute edit in the artifact's own pieces and peak GPU memory, then int8's agreement with bf16
BATCH1 = bool(int(__import__("os").environ.get("SERVING_BATCH1", "0")))


def batch1(ed, clips, reps=3):
    """Each clip edited alone, reps times: RTF of the whole edit and time to the first streamed chunk.
    Every run twice, in alternating order: with a lone clip's F0 search split over the analysis
    threads (as shipped) and in one piece (as before), so the two are compared on the same runs."""
    runs = {"split": [], "one_piece": []}
    threads = codec_mod._threads
    for k in range(reps):
        for j, (name, wav, text) in enumerate(clips):
            for mode in (("split", "one_piece") if (k + j) % 2 == 0 else ("one_piece", "split")):
                codec_mod._threads = threads if mode == "split" else (lambda: 1)
                try:
                    runs[mode].append(one_edit(ed, wav, text, k))
                finally:
                    codec_mod._threads = threads

    def summary(rs):
        rtf, ttfa, audio_s, same_len = (np.array(v) for v in zip(*rs))
        return {"rtf_median": float(np.median(rtf)), "rtf_p90": float(np.percentile(rtf, 90)),
                "first_chunk_s_median": float(np.median(ttfa)), "first_chunk_s_p90": float(np.percentile(ttfa, 90)),
                "audio_s_median": float(np.median(audio_s)), "runs": len(rtf),
                "stream_length_equals_edit": float(np.mean(same_len))}
    return summary(runs["split"]), summary(runs["one_piece"])


def one_edit(ed, wav, text, seed):
    sync(); t0 = time.perf_counter()
    out = ed.edit(wav, text, "emotion", "happy", seed=seed)[0]
    sync(); dt = time.perf_counter() - t0
    sync(); t0 = time.perf_counter()
    it = ed.edit_stream(wav, text, "emotion", "happy", seed=seed, chunk_s=0.5)
    first = next(it)
    sync(); ttfa = time.perf_counter() - t0
    rest = sum(len(c) for c in it)
    return dt / max(len(out) / SR, 1e-3), ttfa, len(out) / SR, len(first) + rest == len(out)


def edit_requests(clips, n, first_seed=0):
    """n edit requests over the clips and the four EDITS in turn, seeds first_seed, first_seed + 1, ..."""
    return [dict(wav=clips[i % len(clips)][1], text=clips[i % len(clips)][2], edit_type=EDITS[i % 4][0],
                 edit_info=EDITS[i % 4][1], seed=first_seed + i) for i in range(n)]


def throughput(ed, clips, n):
    reqs = edit_requests(clips, n)
    ed.edit_many(reqs)     # the batch shapes of this size compiled and captured once, not timed
    sync(); t0 = time.perf_counter()
    outs = ed.edit_many(reqs)
    sync(); dt = time.perf_counter() - t0
    total = sum(len(o[0]) for o in outs) / SR
    return {"requests": n, "seconds": round(dt, 3), "audio_s": round(total, 1), "x_real_time": round(total / dt, 1)}


def sustained(ed, clips, clients, waves=4):
    """`clients` requests at a time, `waves` times over, the way the API server runs them with two
    batches in flight: each wave is analysed (Editor.analyse: F0 and mel on CPU threads) while the
    wave before it generates (Editor.start: tokenizer, LLM), and its audio is decoded (the codec's
    thread and stream) while the next wave generates."""
    from concurrent.futures import ThreadPoolExecutor

    def wave(w):
        return edit_requests(clips, clients, w * clients)
    ed.edit_many(wave(0))     # shapes compiled and captured, not timed
    helper = ThreadPoolExecutor(1)
    # host seconds per wave: an analysis (helper thread) and two of its parts (the F0 and mel analysis; the
    # tokenizer and prompts, where the editor has that phase), the main thread waiting for it, start, finish
    host = {"analyse": [], "analyze_many": [], "prepare": [], "wait_for_analysis": [], "start": [], "finish": []}

    def timed(key, fn, *args):
        t = time.perf_counter()
        r = fn(*args)
        host[key].append(time.perf_counter() - t)
        return r
    parts = [("analyze_many", ed.codec, "analyze_many"), ("prepare", ed, "_prepare")]
    for key, obj, attr in parts:        # instance attributes over the methods, removed below
        if hasattr(obj, attr):
            setattr(obj, attr, partial(timed, key, getattr(obj, attr)))
    sync(); t0 = time.perf_counter()
    nxt, total, finish = helper.submit(timed, "analyse", ed.analyse, "edit", wave(0)), 0.0, None
    audio_s = lambda outs: sum(len(o[0]) for o in outs) / SR
    for w in range(waves):
        a = timed("wait_for_analysis", nxt.result)
        if w + 1 < waves:
            nxt = helper.submit(timed, "analyse", ed.analyse, "edit", wave(w + 1))
        started = timed("start", ed.start, a)
        if finish is not None:
            total += audio_s(timed("finish", finish))
        finish = started
    total += audio_s(timed("finish", finish))
    sync(); dt = time.perf_counter() - t0
    helper.shutdown()
    for key, obj, attr in parts:
        if attr in vars(obj):
            delattr(obj, attr)
    return {"clients": clients, "waves": waves, "llm_batch": ed.batch_size, "seconds": round(dt, 3),
            "audio_s": round(total, 1), "x_real_time": round(total / dt, 1),
            "host_s_median": {k: round(float(np.median(v)), 4) for k, v in host.items() if v}}


def closed_loop(ed, clips, clients, rounds=4, batches_in_flight=2):
    """`clients` clients that each send a request, wait for its answer and send the next, against one
    replica as the API server runs it (editor/serve/app.py): at most `batches_in_flight` batches at once,
    each analysed without the lock, generated under it (Editor.start), then decoded. So at most `clients`
    requests are in flight, in batches of clients // batches_in_flight. (`sustained` keeps the next
    wave's analysis and the last wave's decode beside the current wave's generation: up to three waves
    of `clients` requests in flight, the load of more clients than its name says.)"""
    import contextlib
    import threading
    from concurrent.futures import ThreadPoolExecutor
    per = max(1, clients // batches_in_flight)
    lock = contextlib.nullcontext() if ed.concurrent_start else threading.Lock()   # as the server

    phases = {"analyse": [], "wait_for_model": [], "start": [], "finish": []}   # host seconds per batch

    def batch(group, k):
        t = [time.perf_counter()]
        a = ed.analyse("edit", edit_requests(clips, per, (k * batches_in_flight + group) * per))
        t.append(time.perf_counter())
        with lock:
            t.append(time.perf_counter())
            finish = ed.start(a)
            t.append(time.perf_counter())
        outs = finish()
        t.append(time.perf_counter())
        for key, since, until in zip(phases, t, t[1:]):
            phases[key].append(until - since)
        return sum(len(o[0]) for o in outs) / SR

    ed.batch_size = per
    batch(0, rounds)          # this batch shape compiled and captured, not timed
    for v in phases.values():
        v.clear()
    sync(); t0 = time.perf_counter()
    with ThreadPoolExecutor(batches_in_flight) as pool:
        total = sum(pool.map(lambda g: sum(batch(g, k) for k in range(rounds)), range(batches_in_flight)))
    sync(); dt = time.perf_counter() - t0
    return {"clients": clients, "batches_in_flight": batches_in_flight, "batch": per, "rounds": rounds,
            "seconds": round(dt, 3), "audio_s": round(total, 1), "x_real_time": round(total / dt, 1),
            "at": [round(time.time() - dt, 3), round(time.time(), 3)],
            "host_s_median": {k: round(float(np.median(v)), 4) for k, v in phases.items()}}


def breakdown(ed, clips, n):
    """Where the time of n requests at once goes: analysis (F0 and mel, CPU threads), tokenizer,
    the LLM's decode loop (batches of ed.batch_size; unguided, with no partner rows, whatever the
    Editor's guidance), codec decode; each part timed alone."""
    reqs = edit_requests(clips, n)
    wavs = [r["wav"] for r in reqs]

    def timed(fn):
        sync(); t0 = time.perf_counter()
        r = fn()
        sync()
        return r, time.perf_counter() - t0
    out = {}
    for rep in range(2):        # the first pass compiles and captures the decode steps of these shapes
        frames, t_an = timed(lambda: ed.codec.analyze_many(wavs))
        toks, t_tok = timed(lambda: [ed.codec.tokenizer.interleave(l, s) for l, s in ed.codec.encode_frames(frames)])
        prompts = [ed._edit_prompt(r["edit_type"], r["edit_info"], r["text"], t) for r, t in zip(reqs, toks)]
        limits = [ed._limit(2 * len(t)) for t in toks]
        ans, t_gen = timed(lambda: ed._generate(prompts, limits, [r["seed"] for r in reqs], [0.7] * n))
        ys, t_dec = timed(lambda: ed._decode(ans, frames))
        audio_s = sum(len(y) for y in ys) / SR
        out = {"requests": n, "llm_batch": ed.batch_size, "analyze_s": round(t_an, 4), "tokenize_s": round(t_tok, 4),
               "generate_s": round(t_gen, 4), "decode_s": round(t_dec, 4), "audio_s": round(audio_s, 2),
               "answer_tokens": int(sum(len(a) for a in ans)), "longest_answer": int(max(len(a) for a in ans)),
               "limit_max": int(max(limits)),
               "x_real_time_sum_of_parts": round(audio_s / (t_an + t_tok + t_gen + t_dec), 1)}
    return out


def greedy_agreement(a, b, clips):
    agree, ratio = [], []
    for name, wav, text in clips:
        ta = a._analyze_encode([wav])[0][0]
        prompts = [ed._edit_prompt("emotion", "sad", text, ta) for ed in (a, b)]
        x = generate(a.model, a.vocab, [prompts[0]], [2 * len(ta) + 50], [0], 0.0, a.sample, a.layout)[0]
        y = generate(b.model, b.vocab, [prompts[1]], [2 * len(ta) + 50], [0], 0.0, b.sample, b.layout)[0]
        n = min(len(x), len(y))
        first_diff = next((i for i in range(n) if x[i] != y[i]), n)
        agree.append(first_diff / max(len(x), 1)); ratio.append(len(y) / max(len(x), 1))
    return {"greedy_shared_prefix_share": float(np.median(agree)), "greedy_length_ratio_int8_over_bf16": float(np.median(ratio))}


def f0_rows(ed, clips, r, save):
    """Both F0 searches in the same run: at 16 kHz (1) and on a 4 kHz copy (4)."""
    for dec in (1, 4):
        decimated_rows(ed, clips, r, dec, save)
    r["peak_gpu_mib"] = peak_mib()
    save()


def decimated_rows(ed, clips, r, dec, save=lambda: None):
    """With the F0 search on a copy decimated `dec` times: batch 1, and clients that keep sending with the
    analysis in threads and in worker processes; each row saved as it ends. Leaves threads and dec=1."""
    ed.codec.f0_decimation = dec
    r[f"batch1_f0_decimation_{dec}"], _ = batch1(ed, clips, reps=1 if SMOKE else 3)
    print("f0_decimation", dec, "batch1", r[f"batch1_f0_decimation_{dec}"], flush=True)
    save()
    rows_before = ed.batch_size
    if not SMOKE:     # where a wave of 64 goes with this search, each part alone
        ed.batch_size = 64
        r[f"breakdown_64_llm_batch_64_f0_decimation_{dec}"] = breakdown(ed, clips, 64)
        print("f0_decimation", dec, "breakdown 64", r[f"breakdown_64_llm_batch_64_f0_decimation_{dec}"], flush=True)
        save()
    for processes in (False, True):
        codec_mod.use_analysis_processes(processes)
        for n, rows in ((2, 16),) if SMOKE else ((16, 16), (64, 64)):
            ed.batch_size = rows
            key = f"sustained_{n}_llm_batch_{rows}_f0_decimation_{dec}" + ("_processes" if processes else "")
            r[key] = sustained(ed, clips, n, waves=2 if SMOKE else 4)
            print(key, r[key], flush=True)
            save()
    codec_mod.use_analysis_processes(False)
    ed.batch_size, ed.codec.f0_decimation = rows_before, 1


def load_editor(llm, res, quantize=None):
    """The editor under test, with the energy speech finder where silero-vad is missing (res["vad"])."""
    env = __import__("os").environ      # SERVING_TOKENIZER / SERVING_DECODER: a codec outside editor/artifacts
    ed = Editor.load(llm, env.get("SERVING_TOKENIZER"), env.get("SERVING_DECODER"), device="cuda" if CUDA else "cpu",
                     quantize=quantize)
    if res["vad"].startswith("energy"):
        ed._speech = energy_speech
    return ed


def served_editor(llm, res):
    """The editor as a throughput server runs it: F0 search on a 4 kHz copy, analysis in worker processes."""
    ed = load_editor(llm, res)
    ed.codec.f0_decimation = 4
    codec_mod.use_analysis_processes(True)
    return ed


def attention_ab(llm, clips, res, save):
    """The rows that decide the decode attention, both ways and the first way again (the machine's drift);
    each Editor loaded fresh (its decoders, graphs and attention are its own)."""
    from editor.llm import decode_attention
    packed = decode_attention.use
    for name in ("sdpa_repeat_kv", "decode_attention", "sdpa_repeat_kv_again"):
        decode_attention.use = packed if name == "decode_attention" else (lambda model: None)
        res[name] = {}
        served_rows(served_editor(llm, res), clips, res[name], save, name)
    decode_attention.use = packed


def warm_up(ed, clips):
    """One edit of every clip, not timed: the decode steps of their lengths compiled and captured (with
    continuous decoding on, the joiners' prefill shapes)."""
    for _, wav, text in clips:
        ed.edit(wav, text, "emotion", "happy")


def guided_ways(shipped: dict) -> tuple:
    """Unguided, then guided as the LLM ships (its inference.json); an LLM that ships unguided has one way."""
    return (False, True) if shipped else (False,)


def served_rows(ed, clips, r, save, name):
    """The served editor's rows: batch 1, a wave of 64's parts, 16 and 64 clients that keep sending,
    unguided and guided as shipped."""
    warm_up(ed, clips)
    r["batch1"], _ = batch1(ed, clips, reps=1 if SMOKE else 3)
    print(name, "batch1", r["batch1"], flush=True)
    shipped = ed.guidance
    for guided in guided_ways(shipped):
        ed.guidance = shipped if guided else {}
        tag = "_guided" if guided else ""
        ed.batch_size = 64
        if not SMOKE:
            r["breakdown_64" + tag] = breakdown(ed, clips, 64)
            print(name, "breakdown 64" + tag, r["breakdown_64" + tag], flush=True)
        for n in ((2,) if SMOKE else (16, 64)):
            ed.batch_size = min(n, 64)
            r[f"sustained_{n}{tag}"] = sustained(ed, clips, n, waves=2 if SMOKE else 4)
            print(name, f"sustained {n}{tag}", r[f"sustained_{n}{tag}"], flush=True)
        if ROWS and not SMOKE:    # the same clients for longer: nearer the steady state, where filling and
            ed.batch_size = 64    # draining the pipeline (the first analysis, the last decode) weigh less
            r[f"sustained_64{tag}_16_waves"] = sustained(ed, clips, 64, waves=16)
            print(name, f"sustained 64{tag}, 16 waves", r[f"sustained_64{tag}_16_waves"], flush=True)
        if ROWS:                  # clients that wait for their answers, as the API server batches them
            for n in ((2,) if SMOKE else (16, 64)):
                r[f"closed_loop_{n}{tag}"] = closed_loop(ed, clips, n, rounds=2 if SMOKE else 4)
                print(name, f"closed loop {n}{tag}", r[f"closed_loop_{n}{tag}"], flush=True)
        save()
    ed.guidance = shipped
    codec_mod.use_analysis_processes(False)
    r["peak_gpu_mib"] = peak_mib()
    save()


def llm_only(ed, clips, n_requests, group=64):
    """The LLM alone on the first decode rows of n_requests edits, in groups of `group`: one batch per
    group one after another (generate(), as Editor._generate), or every group queued at once to the
    continuous decoder when it is on. Answer tokens per second, and the audio seconds they stand for."""
    a = ed.analyse("edit", edit_requests(clips, n_requests))
    rows = ed._edit_rows(a, a.items, ed._encode(a.frames), 0)
    n = len(rows["prompts"])
    sync(); t0 = time.perf_counter()
    if ed.continuous is None:
        outs = []
        for k in range(0, n, group):
            outs += generate(ed.model, ed.vocab, rows["prompts"][k:k + group], rows["max_new"][k:k + group],
                             rows["seeds"][k:k + group], rows["temps"][k:k + group], ed.sample, ed.layout,
                             min_new_tokens=rows["min_new"][k:k + group], negatives=rows["negatives"][k:k + group],
                             guidance=rows["guidance"][k:k + group])
    else:
        steps = ed.continuous.steps
        outs = ed._generate(**rows)
    sync(); dt = time.perf_counter() - t0
    tokens = sum(len(o) for o in outs)
    tps = ed.codec.tokenizer.tokens_per_second()["interleaved"]
    r = {"requests": n, "seconds": round(dt, 3), "answer_tokens": tokens, "tokens_per_s": round(tokens / dt),
         "x_real_time": round(tokens / tps / dt, 1)}
    if ed.continuous is not None:
        r["steps"] = ed.continuous.steps - steps
    return r


def continuous_rows(llm, clips, res, save):
    """SERVING_CONTINUOUS: the same clients against batch decoding and continuous decoding, bf16, then
    continuous int8."""
    from editor.llm.continuous import Request
    rows, cache_len = (8, 1024) if SMOKE else (128, 1024)
    env = __import__("os").environ
    # SERVING_MODES, SERVING_FLIGHTS: a shorter call (e.g. "bf16" and "2")
    flights = tuple(int(f) for f in env.get("SERVING_FLIGHTS", "2 4").split())
    for mode in env.get("SERVING_MODES", "bf16 int8").split():
        reset_peak()
        ed = served_editor(llm, res)
        if mode == "int8":
            from editor.llm.quantize import quantize_int8
            quantize_int8(ed.model)
        warm_up(ed, clips)
        ways = ("batches", "continuous") if mode == "bf16" else ("continuous",)
        for way in ways:
            r = res[f"{mode}_{way}"] = {}
            if way == "continuous":
                ed.use_continuous(rows, cache_len)
                r["rows"], r["cache_len"] = rows, cache_len
                warm_up(ed, clips)
                a = ed.analyse("edit", edit_requests(clips, 64))
                first = ed._edit_rows(a, a.items, ed._encode(a.frames), 0)
                r["answers_that_fit"] = sum(ed.continuous.fits(Request(p, n)) for p, n in
                                            zip(first["prompts"], first["max_new"]))
                r["batch1"], _ = batch1(ed, clips, reps=1 if SMOKE else 3)
                print(mode, way, "batch1", r["batch1"], flush=True)
            shipped = ed.guidance
            for guided in guided_ways(shipped):
                ed.guidance = shipped if guided else {}
                tag = "_guided" if guided else ""
                for n in ((4,) if SMOKE else (64, 256)):
                    llm_only(ed, clips, n)      # shapes compiled, not timed
                    r[f"llm_only_{n}{tag}"] = llm_only(ed, clips, n)
                    print(mode, way, f"llm_only_{n}{tag}", r[f"llm_only_{n}{tag}"], flush=True)
                for n in ((2,) if SMOKE else (16, 64)):
                    for flight in (flights if way == "continuous" else (2,)):
                        key = f"closed_loop_{n}{tag}_in_flight_{flight}"
                        r[key] = closed_loop(ed, clips, n, rounds=2 if SMOKE else 4, batches_in_flight=flight)
                        print(mode, way, key, r[key], flush=True)
                save()
            ed.guidance = shipped
            if way == "continuous":
                r["decode_steps"], r["graph_mode"] = ed.continuous.steps, ed.continuous.mode
        r["peak_gpu_mib"] = peak_mib()
        ed.close()
        codec_mod.use_analysis_processes(False)
        save()


def busy(intervals) -> float:
    """The length that [(start, end), ...] cover, overlaps counted once."""
    merged = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return sum(b - a for a, b in merged)


def stream_overlap(trace: dict) -> dict:
    """From a chrome trace of the profiler: GPU kernels per stream, each stream's busy time, the time two
    or more streams ran at once, and the time no stream ran between the first kernel and the last."""
    per_stream = {}
    for e in trace.get("traceEvents", []):
        if e.get("cat") == "kernel" and "dur" in e:
            s = (e.get("args") or {}).get("stream", e.get("tid"))
            per_stream.setdefault(str(s), []).append((e["ts"] / 1e3, (e["ts"] + e["dur"]) / 1e3))   # µs -> ms
    if not per_stream:
        return {"kernels": 0}
    every = [iv for ivs in per_stream.values() for iv in ivs]
    window = max(b for _, b in every) - min(a for a, _ in every)
    union = busy(every)
    streams = {s: {"kernels": len(ivs), "busy_ms": round(busy(ivs), 3)} for s, ivs in per_stream.items()}
    return {"window_ms": round(window, 3), "gpu_busy_ms": round(union, 3), "gpu_idle_ms": round(window - union, 3),
            "beside_another_stream_ms": round(sum(v["busy_ms"] for v in streams.values()) - union, 3),
            "streams": streams}


def timeline(ed, clips, out_dir, res, save, clients=64, waves=2):
    """`sustained` once more under the profiler (after a run that compiled and captured every shape)."""
    import gzip
    from torch.profiler import ProfilerActivity, profile
    sustained(ed, clips, clients, waves)
    # the GPU side only (kernels, copies and the CUDA calls that launched them): profiling every host op
    # would slow the host, whose pace is part of what is measured, and the trace would not fit 16 MB
    with profile(activities=[ProfilerActivity.CUDA] if CUDA else [ProfilerActivity.CPU]) as prof:
        res["timeline_run"] = sustained(ed, clips, clients, waves)
    raw = out_dir / "timeline.json"
    prof.export_chrome_trace(str(raw))
    trace = json.loads(raw.read_text())
    raw.unlink()
    keep = ("kernel", "gpu_memcpy", "gpu_memset", "cuda_runtime", "cuda_driver")
    trace["traceEvents"] = [e for e in trace.get("traceEvents", []) if e.get("ph") == "M" or e.get("cat") in keep]
    with gzip.open(out_dir / f"timeline_{clients}.json.gz", "wt") as f:
        json.dump(trace, f)
    res["timeline"] = stream_overlap(trace)
    print("timeline", res["timeline_run"], res["timeline"], flush=True)
    save()


def two_minutes(ed, clips, r, mode, out_dir, upstream_too: bool):
    """A 2-minute edit and its seams, cut into the artifact's own pieces (piece_seconds) and, with
    upstream_too, into upstream's 30 s."""
    model_piece = ed.piece_s["emotion"]
    for piece_s in (model_piece, 30.0) if upstream_too else (model_piece,):
        ed.piece_s["emotion"] = piece_s
        r[f"two_minutes_pieces_{piece_s:g}s"], y = warm_long_edit(ed, clips, 40.0 if SMOKE else 120.0)
        print(mode, "2 min, pieces of", piece_s, r[f"two_minutes_pieces_{piece_s:g}s"], flush=True)
        sf.write(out_dir / f"two_minutes_{mode}_{piece_s:g}s.flac", y, SR)
    ed.piece_s["emotion"] = model_piece


def main():
    clips_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    llm = sys.argv[3] if len(sys.argv) > 3 else in_repo(SHIPPED_LLM)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = load_clips(clips_dir)
    res = {"gpu": torch.cuda.get_device_name(0) if CUDA else "cpu", "llm": llm, "clips": [(n, round(len(w) / SR, 2)) for n, w, _ in clips]}
    eds = {}
    import importlib.util
    res["vad"] = ("silero" if importlib.util.find_spec("silero_vad")
                  else "energy (silero-vad is not installed on this machine)")
    save = lambda: (out_dir / "serving_gpu.json").write_text(json.dumps(res, indent=1))  # noqa: E731
    if TIMELINE:
        ed = served_editor(llm, res)
        ed.batch_size = 2 if SMOKE else 64
        timeline(ed, clips, out_dir, res, save, clients=2 if SMOKE else 64)
        codec_mod.use_analysis_processes(False)
        return
    if ROWS:
        if SWITCH_S:      # the interpreter's switch interval (default 5 ms): how long a thread may keep the GIL
            sys.setswitchinterval(SWITCH_S)
            res["switch_interval_s"] = SWITCH_S
        res["rows"] = {}
        served_rows(served_editor(llm, res), clips, res["rows"], save, "rows")
        return
    if CONTINUOUS:
        continuous_rows(llm, clips, res, save)
        return
    if DECODE_AB:
        if DECODE_AB != "attention":
            raise SystemExit(f"SERVING_AB={DECODE_AB!r}: the one A/B is 'attention'")
        res["ab"] = DECODE_AB
        attention_ab(llm, clips, res, save)
        return
    for mode in ("bf16",) if F0_ONLY else ("bf16", "int8"):
        reset_peak()
        ed = load_editor(llm, res, quantize="int8" if mode == "int8" else None)
        eds[mode] = ed
        r = {"llm_weight_mib": round(weight_bytes(ed.model) / 2 ** 20, 2)}
        for name, wav, text in clips:        # warm-up: compile and capture the decode steps of every length
            ed.edit(wav, text, "emotion", "happy")
            list(ed.edit_stream(wav, text, "emotion", "happy", chunk_s=0.5))
        if F0_ONLY:
            res[mode] = r
            f0_rows(ed, clips, r, save)
            # the same rows unguided: the shipped LLM guides its emotion and style edits (a partner row
            # each, 3 of the 4 request kinds here); the earlier serving rows were an unguided LLM's
            shipped, ed.guidance = ed.guidance, {}
            res[mode + "_unguided"] = u = {}
            f0_rows(ed, clips, u, save)
            ed.guidance = shipped
            return
        r["batch1"], r["batch1_f0_one_piece"] = batch1(ed, clips, reps=1 if SMOKE else 3)
        print(mode, "batch1", r["batch1"], flush=True)
        print(mode, "batch1, F0 in one piece", r["batch1_f0_one_piece"], flush=True)
        if BATCH1:
            two_minutes(ed, clips, r, mode, out_dir, upstream_too=False)
            r["peak_gpu_mib"] = peak_mib()
            res[mode] = r
            save()
            continue
        default_rows = ed.batch_size
        ed.batch_size = 16          # rows of 16 first (the default before CUDA editors took 64), then 64
        for n in ((1, 2) if SMOKE else (1, 16, 64)):
            r[f"breakdown_{n}"] = breakdown(ed, clips, n)
            print(mode, "breakdown", r[f"breakdown_{n}"], flush=True)
        for n in ((2,) if SMOKE else (16, 64)):
            r[f"concurrent_{n}"] = throughput(ed, clips, n)
            print(mode, n, r[f"concurrent_{n}"], flush=True)
            r[f"sustained_{n}"] = sustained(ed, clips, n, waves=2 if SMOKE else 4)
            print(mode, "sustained", r[f"sustained_{n}"], flush=True)
        if not SMOKE:      # the same 64 requests with the LLM decoding all of them in one batch
            ed.batch_size = 64
            r["breakdown_64_llm_batch_64"] = breakdown(ed, clips, 64)
            print(mode, "breakdown", r["breakdown_64_llm_batch_64"], flush=True)
            r["concurrent_64_llm_batch_64"] = throughput(ed, clips, 64)
            print(mode, "64, LLM batch 64", r["concurrent_64_llm_batch_64"], flush=True)
            r["sustained_64_llm_batch_64"] = sustained(ed, clips, 64)
            print(mode, "sustained, LLM batch 64", r["sustained_64_llm_batch_64"], flush=True)
            ed.batch_size = default_rows
        if mode == "bf16":      # the same with the analysis in worker processes (codec.use_analysis_processes)
            codec_mod.use_analysis_processes()
            r["batch1_processes"], _ = batch1(ed, clips, reps=1 if SMOKE else 3)
            print(mode, "processes: batch1", r["batch1_processes"], flush=True)
            for n, rows in ((2, 16),) if SMOKE else ((16, 16), (64, 16), (64, 64)):
                ed.batch_size = rows
                r[f"sustained_{n}_llm_batch_{rows}_processes"] = sustained(ed, clips, n, waves=2 if SMOKE else 4)
                print(mode, f"processes: sustained {n}, LLM batch {rows}", r[f"sustained_{n}_llm_batch_{rows}_processes"], flush=True)
            ed.batch_size = default_rows
            codec_mod.use_analysis_processes(False)     # threads again
            # the F0 search on a 4 kHz copy (Codec.f0_decimation): the analysis bound of the rows above
            decimated_rows(ed, clips, r, 4)
        r["peak_gpu_mib"] = peak_mib()
        two_minutes(ed, clips, r, mode, out_dir, upstream_too=True)
        res[mode] = r
        save()
    res["int8_vs_bf16"] = greedy_agreement(eds["bf16"], eds["int8"], clips)
    print("int8 vs bf16", res["int8_vs_bf16"], flush=True)
    save()


if __name__ == "__main__":
    main()
