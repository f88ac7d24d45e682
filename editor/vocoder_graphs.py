"""The default vocoder (harmonic_gl) replayed as CUDA graphs, one per (rows, frames) bucket.

Rendering a batch issues about 2,400 torch operations (the source-filter start, its three corrections and
eight Griffin-Lim iterations, each a short STFT or inverse STFT); on a GPU each is a launch from Python,
and in a server the codec's thread must win the interpreter back from the decode loop's for every one of
them. A captured graph launches them all in one call. A graph has fixed shapes, so a batch is padded to
the next power of two of rows and the next multiple of `frame_step` frames: a clip's waveform does not
depend on its batchmates or on the padding after it (editor/vocoder.py), so what comes back is each clip's
own rendering, to float rounding. A bucket is captured the first time a batch needs it (a warm-up run and
the capture: a fraction of a second), and all graphs share one memory pool: they never run at once (a
lock), and each one's output is read before the next replays. Off CUDA the same padded rendering runs
eagerly (what the tests check).
"""
import threading
from dataclasses import dataclass

import numpy as np
import torch

from editor import graph_capture
from editor.features import HOP, N_MELS
from editor.vocoder import (_basis_on, _envelope_on, _pinv_on, _span, _unbatch, _window_on, render_harmonic_gl, render_inputs,
                            shared_noise)

FRAME_STEP = 50           # 0.5 s: a clip decodes at most that much padding


@dataclass
class _Graph:
    graph: "torch.cuda.CUDAGraph"
    f0: torch.Tensor          # the static inputs the graph reads, filled before each replay
    mel: torch.Tensor
    samples: torch.Tensor
    out: torch.Tensor         # what it writes, (rows, span * HOP)
    held: tuple               # the other tensors it reads (its noise, the vocoder's cached constants), kept alive


class CapturedVocoder:
    """harmonic_gl (n_iter, momentum and seed as editor/vocoder.py's defaults) on `device`;
    call it with a batch of Frames, as VOCODERS["harmonic_gl"]."""

    def __init__(self, device, n_iter: int = 8, momentum: float = 0.99, seed: int = 0, frame_step: int = FRAME_STEP):
        self.device = torch.device(device)
        self.n_iter, self.momentum, self.seed, self.frame_step = n_iter, momentum, seed, frame_step
        self.graphs: dict[tuple[int, int], _Graph] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.device.type == "cuda" else None
        self._lock = threading.Lock()

    def bucket(self, lengths: list[int]) -> tuple[int, int]:
        """(rows, frames) a batch of clips of these lengths (in frames) is rendered as."""
        return 1 << (len(lengths) - 1).bit_length(), -(-_span(lengths) // self.frame_step) * self.frame_step

    def __call__(self, frames: list) -> list[np.ndarray]:
        lengths = [len(f.f0) for f in frames]
        rows, span = self.bucket(lengths)
        host = render_inputs(frames, span, rows)
        with self._lock:
            if self.device.type != "cuda":
                f0, mel, samples = (torch.from_numpy(x).to(self.device) for x in host)
                return _unbatch(self._render(f0, mel, samples, shared_noise(span * HOP, self.seed, self.device)), lengths)
            g = self.graphs.get((rows, span)) or self._capture(rows, span)
            for static, x in zip((g.f0, g.mel, g.samples), host):
                static.copy_(torch.from_numpy(x), non_blocking=True)
            g.graph.replay()
            return _unbatch(g.out[:len(frames)], lengths)      # read (a copy to the host) before the lock goes

    def _render(self, f0, mel, samples, noise) -> torch.Tensor:
        return render_harmonic_gl(f0, mel, samples, noise, self.n_iter, self.momentum)

    def _capture(self, rows: int, span: int) -> _Graph:
        dev = self.device
        f0 = torch.zeros(rows, span, device=dev)
        mel = torch.full((rows, span + 1, N_MELS), -np.inf, device=dev)
        samples = torch.zeros(rows, dtype=torch.long, device=dev)
        noise = shared_noise(span * HOP, self.seed, dev)
        # a graph reads memory by address: every tensor it reads is held with it (the noise, and the cached
        # constants its warm-up run makes, which their caches may later drop), never freed under it
        # (taken before and after: a constant dropped from its cache in between is remade, and the graph may read either)
        consts = lambda: (_window_on(dev), _pinv_on(dev), _basis_on(dev), _envelope_on(span + 1, dev))
        before = consts()
        graph, out = graph_capture.capture(lambda: self._render(f0, mel, samples, noise), dev, warmup=1, pool=self._pool)
        held = (noise, *before, *consts())
        self.graphs[(rows, span)] = g = _Graph(graph, f0, mel, samples, out, held)
        return g
