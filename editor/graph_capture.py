"""Capturing CUDA graphs safely in a process whose threads share one GPU.

The editor captures in two threads: the LLM's decode steps in the request thread, the vocoder in the
codec's thread. Two captures must not overlap: torch hands every `torch.cuda.graph` that names no stream
the same class-wide capture stream, so a second capture would begin on a stream already capturing, fail
after making that stream current, and leave its thread issuing work into the other graph (work that
graph would later replay against memory long freed). So captures take turns under one lock, and the
thread's stream is restored whatever happens.

The capture stream must also carry nothing else: capture records every launch into that stream, from any
thread. `torch.cuda.Stream()` hands out the streams of a small pool in turn (32 per priority), so a new
low-priority stream can be one that the codec's or the prefill's thread already works on. Captures use one
high-priority stream per device, a pool nothing else in the editor draws from, made once: graphs that
share a memory pool (the vocoder's buckets) reuse each other's freed blocks only when captured on the
same stream.
"""
import threading

import torch

_LOCK = threading.Lock()
_STREAMS: dict = {}     # device -> its capture stream


def capture(fn, device, warmup: int = 3, pool=None):
    """(graph, fn's result in the capture) for one call of fn captured as a CUDA graph on `device`, after
    `warmup` calls on a side stream (compilation, cuBLAS workspaces, cuFFT plans: nothing of that may
    happen during capture; they run outside the lock, so a long compile does not hold another thread's
    capture). pool: a memory pool shared with other graphs that never run at the same time."""
    device = torch.device(device)
    with torch.cuda.device(device), torch.cuda.stream(torch.cuda.current_stream(device)):   # restored on exit
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        with _LOCK:
            stream = _STREAMS.get(device)
            if stream is None:
                stream = _STREAMS[device] = torch.cuda.Stream(device, priority=-1)
            graph = torch.cuda.CUDAGraph()
            # thread_local: the other threads keep decoding and vocoding on their own streams meanwhile
            with torch.cuda.graph(graph, pool=pool, stream=stream, capture_error_mode="thread_local"):
                out = fn()
        return graph, out
