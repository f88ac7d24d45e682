"""The serving bench's timeline summary: each GPU stream's busy time, the time streams ran at once,
and the time no stream ran (bench/serving_gpu.py, SERVING_TIMELINE=1)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from serving_gpu import stream_overlap  # noqa: E402


def kernel(ts_us, dur_us, stream):
    return {"ph": "X", "cat": "kernel", "ts": ts_us, "dur": dur_us, "args": {"stream": stream}}


def test_busy_overlap_and_idle_of_two_streams():
    trace = {"traceEvents": [
        kernel(0, 10, 7), kernel(5, 10, 9),        # 5 µs side by side
        kernel(30, 10, 7), kernel(32, 4, 7),       # nested on one stream: counted once
        {"ph": "X", "cat": "cpu_op", "ts": 0, "dur": 1000},   # host work: not GPU time
    ]}
    r = stream_overlap(trace)
    assert r["window_ms"] == 0.04
    assert r["gpu_busy_ms"] == 0.025 and r["gpu_idle_ms"] == 0.015
    assert r["beside_another_stream_ms"] == 0.005
    assert r["streams"] == {"7": {"kernels": 3, "busy_ms": 0.02}, "9": {"kernels": 1, "busy_ms": 0.01}}


def test_a_trace_without_kernels_says_so():
    assert stream_overlap({"traceEvents": [{"ph": "X", "cat": "cpu_op", "ts": 0, "dur": 5}]}) == {"kernels": 0}
