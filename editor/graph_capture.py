"""Capturing CUDA graphs safely in a process whose threads share one GPU.

The editor captures in two threads: the LLM's decode steps in the request thread, the vocoder in the
codec's thread. Two captures must not overlap: torch hands every `torch.cuda.graph` that names no stream
the same class-wide capture stream, so a second capture would begin on a stream already capturing, fail
after making that stream current, and leave its thread issuing work into the other graph (work that
graph would later replay against memory long freed). So captures take turns under one lock, and the
thread's stream is restored whatever happens.

The capture stream must also carry nothing else: capture records every launch into that stream, from any
thread. `torch.cuda.Stream()` hands out the streams of a small pool in turn (32 per priority), so a new
low-priority stream can be one that the codec's or the prefill's thread already works on. Captures take a
high-priority stream, a pool that nothing else in the editor draws from.
"""
import threading

import torch

_LOCK = threading.Lock()


def capture(fn, warmup: int = 3, pool=None):
    """(graph, fn's result in the capture) for one call of fn captured as a CUDA graph, after `warmup`
    calls on a side stream (compilation, cuBLAS workspaces, cuFFT plans: nothing of that may happen
    during capture). pool: a memory pool shared with other graphs that never run at the same time."""
    with _LOCK, torch.cuda.stream(torch.cuda.current_stream()):     # the caller's stream, restored on exit
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the other threads keep decoding and vocoding on their own streams meanwhile
        with torch.cuda.graph(graph, pool=pool, stream=torch.cuda.Stream(priority=-1), capture_error_mode="thread_local"):
            out = fn()
        return graph, out
