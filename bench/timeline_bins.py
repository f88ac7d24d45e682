"""A profiler trace of bench/serving_gpu.py's timeline mode, read in time bins: what each GPU stream ran
and what each host thread asked of CUDA, bin by bin, and the kernels per captured decode step.

    python bench/timeline_bins.py TIMELINE.json.gz [BIN_MS]

Per bin (default 10 ms, from the first kernel): each stream's busy percentage and each thread's CUDA
calls. Then, over the trace: graph launches (one per decode step) and the kernels of the stream that
launched them per launch.
"""
import collections
import gzip
import json
import sys


def main():
    trace = json.load(gzip.open(sys.argv[1]))
    bin_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    events = trace["traceEvents"]
    kernels = [e for e in events if e.get("cat") == "kernel"]
    calls = [e for e in events if e.get("cat") in ("cuda_runtime", "cuda_driver")]
    t0 = min(e["ts"] for e in kernels)
    end = max(e["ts"] + e["dur"] for e in kernels)
    n = int((end - t0) / 1000 / bin_ms) + 1
    busy = collections.defaultdict(lambda: [0.0] * n)
    asked = collections.defaultdict(lambda: [0] * n)
    for e in kernels:
        busy[e["args"].get("stream")][int((e["ts"] - t0) / 1000 / bin_ms)] += e["dur"] / 1000
    for e in calls:
        b = int((e["ts"] - t0) / 1000 / bin_ms)
        if 0 <= b < n:
            asked[e["tid"]][b] += 1
    print(f"ms from the first kernel: stream busy % | thread: CUDA calls (bins of {bin_ms:g} ms)")
    for b in range(n):
        streams = {s: round(100 * v[b] / bin_ms) for s, v in busy.items() if v[b]}
        threads = {str(t)[-4:]: v[b] for t, v in asked.items() if v[b]}
        print(f"{b * bin_ms:7.0f} {streams} {threads}")
    launches = [e for e in calls if e["name"] == "cudaGraphLaunch"]
    if launches:
        by_stream = collections.Counter(e["args"].get("stream") for e in kernels)
        step_stream, step_kernels = by_stream.most_common(1)[0]
        print(f"graph launches {len(launches)}; stream {step_stream}: {step_kernels} kernels, "
              f"{step_kernels / len(launches):.0f} per launch (its few non-step kernels included)")


if __name__ == "__main__":
    main()
