"""Audio <-> tokens with a trained tokenizer and decoder, loaded by path: the editor's codec."""
import json
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch

from editor import features
from editor.decoder import TokenDecoder, reference_stats
from editor.features import Frames
from editor.tokenizer import DualCodebookTokenizer, encoder_inputs
from editor.vocoder import DEFAULT_VOCODER, VOCODERS
from editor.vocoder_graphs import CapturedVocoder


def check_tokenizer_digest(tokenizer_dir, decoder_dir) -> str | None:
    """A decoder that recorded the bytes of the tokenizer it was trained on (training.json
    "tokenizer_digest") decodes only that tokenizer's ids: another tokenizer under the same version
    name is refused. Returns the tokenizer's digest where it was computed (None where nothing asked)."""
    from editor.artifacts import weights_digest
    made = Path(decoder_dir) / "training.json"
    want = json.loads(made.read_text()).get("tokenizer_digest") if made.is_file() else None
    if not (want and (Path(tokenizer_dir) / "config.json").is_file()):
        return None
    got = weights_digest(tokenizer_dir)
    if got != want:
        raise ValueError(f"decoder={decoder_dir} was trained on another tokenizer than {tokenizer_dir} (same version "
                         f"name, other weights: digest {got}, recorded {want})")
    return got


class Codec:
    """f0_decimation: how the clips it encodes are analysed (features.f0_track): 1, as every tokenizer so
    far was trained, or more for a faster F0 search at a few cents' difference (a server's choice)."""

    def __init__(self, tokenizer: DualCodebookTokenizer, decoder: TokenDecoder | None = None, device="cpu",
                 f0_decimation: int = 1):
        self.tokenizer, self.device = tokenizer, torch.device(device)
        self.f0_decimation = features.check_f0_decimation(f0_decimation)
        self.decoder = decoder.to(self.device).eval() if decoder is not None else None
        # the default vocoder replayed as CUDA graphs (editor/vocoder_graphs.py): capture_vocoder()
        self.vocoder_graphs: CapturedVocoder | None = None
        self.tokenizer_digest: str | None = None   # the tokenizer's weights digest, where load computed it
        if decoder is not None and decoder.config.tokenizer_version != tokenizer.cfg["version"]:
            raise ValueError(f"decoder {decoder.config.version} was trained on tokenizer "
                             f"{decoder.config.tokenizer_version}, not {tokenizer.cfg['version']}")

    @classmethod
    def load(cls, tokenizer_dir, decoder_dir=None, device="cpu", f0_decimation: int = 1) -> "Codec":
        dec = None
        if decoder_dir:
            if not (Path(decoder_dir) / "config.json").is_file():
                raise ValueError(f"decoder={decoder_dir}: not a decoder artifact (no config.json)")
            dec = TokenDecoder.from_pretrained(str(decoder_dir)).float()
        tok = DualCodebookTokenizer.load(tokenizer_dir)
        digest = None
        if dec is not None and dec.config.tokenizer_version == tok.cfg["version"]:   # else __init__ names the versions
            digest = check_tokenizer_digest(tokenizer_dir, decoder_dir)
        codec = cls(tok, dec, device, f0_decimation)
        codec.tokenizer_digest = digest      # Editor.load checks it too: hashed once
        return codec

    def capture_vocoder(self, on: bool = True) -> None:
        """On CUDA, decode() renders with the default vocoder's captured graphs from now on (off: eagerly).
        A server's choice: the same waveforms to float rounding, one launch per batch instead of
        thousands; each new batch shape costs a capture the first time."""
        self.vocoder_graphs = CapturedVocoder(self.device) if on and self.device.type == "cuda" else None

    def analyze(self, wav: np.ndarray) -> Frames:
        return features.analyze(wav, self.tokenizer.block, f0_decimation=self.f0_decimation)

    def analyze_many(self, wavs: list[np.ndarray]) -> list[Frames]:
        """analyze() of every clip, in order, on threads: WORLD's F0 search is most of the CPU time
        of an edit (~15 ms per second of audio) and releases the GIL, so a batch of requests is
        analysed on all the machine's cores at once instead of one after the other. With fewer clips
        than threads (a lone request), each clip's F0 search is split over the threads instead."""
        return [fr for fr, _ in self.analyze_for_encoding(wavs, inputs=False)]

    def analyze_for_encoding(self, wavs: list[np.ndarray], inputs: bool = True) -> list[tuple[Frames, dict | None]]:
        """analyze_many's frames, each with its encoder inputs (tokenizer.encoder_inputs; None when
        inputs=False), made where the clip was analysed: in worker processes, that numpy work stays off
        the interpreter a GPU server's decode loop needs."""
        wavs = list(wavs)
        cfg = self.tokenizer.cfg if inputs else None
        pool, threads = _analysis_pool(), _threads()
        if len(wavs) < threads and threads > 1:
            return [_with_inputs(features.analyze(w, self.tokenizer.block, f0_pieces=threads // len(wavs), map_fn=pool.map,
                                                  f0_decimation=self.f0_decimation), cfg) for w in wavs]
        one = partial(_analyze_with_inputs, block_frames=self.tokenizer.block, f0_decimation=self.f0_decimation, cfg=cfg)
        if len(wavs) < 2:
            return [one(w) for w in wavs]
        # a module function, not a method: worker processes are sent the function, not the codec
        return list(pool.map(one, wavs))

    def encode(self, wavs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """16 kHz clips -> (linguistic ids, semantic ids) per clip."""
        return self.encode_frames(self.analyze_many(wavs))

    def encode_frames(self, frames: list[Frames], inputs: list[dict] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.tokenizer.encode(frames, self.device, inputs)

    def decode_frames(self, tokens: list[tuple[np.ndarray, np.ndarray]], references: list[Frames],
                      batch_size: int = 16) -> list[Frames]:
        """Token streams plus each item's reference voice -> predicted frames, in the input order.
        Items go through in batches of similar length (bounded memory, little padding)."""
        if self.decoder is None:
            raise ValueError("this codec has no decoder: load it with decoder_dir")
        out: list[Frames | None] = [None] * len(tokens)
        for idx in _length_batches([len(l) for l, _ in tokens], batch_size):
            for i, fr in zip(idx, self._decode_batch([tokens[i] for i in idx], [references[i] for i in idx])):
                out[i] = fr
        return out

    @torch.no_grad()
    def _decode_batch(self, tokens: list[tuple[np.ndarray, np.ndarray]], references: list[Frames]) -> list[Frames]:
        c = self.decoder.config
        n_frames = [len(l) * c.ling_hop for l, _ in tokens]
        t_max = max(n_frames)
        ling = torch.zeros(len(tokens), t_max // c.ling_hop, dtype=torch.long)  # padding: masked in the decoder
        sem = torch.zeros(len(tokens), t_max // c.sem_hop, dtype=torch.long)
        for i, (l, s) in enumerate(tokens):
            ling[i, :len(l)], sem[i, :len(s)] = torch.as_tensor(l), torch.as_tensor(s)
        mask = torch.arange(t_max)[None, :] < torch.as_tensor(n_frames)[:, None]
        ref = torch.as_tensor(np.stack([reference_stats(r) for r in references]))
        dev = self.device
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            pred = self.decoder.predict(ling.to(dev), sem.to(dev), ref.to(dev), mask.to(dev))
        return [f.crop(n) for f, n in zip(self.decoder.to_frames(pred), n_frames)]

    def decode(self, tokens, references: list[Frames], vocoder: str = DEFAULT_VOCODER,
               batch_size: int = 16) -> list[np.ndarray]:
        """Tokens + references -> 16 kHz waveforms (the vocoder runs on the codec's device)."""
        frames = self.decode_frames(tokens, references, batch_size)
        out: list[np.ndarray | None] = [None] * len(frames)
        graphed = self.vocoder_graphs is not None and vocoder == DEFAULT_VOCODER
        for idx in _length_batches([len(f) for f in frames], batch_size):
            batch = [frames[i] for i in idx]
            for i, y in zip(idx, self.vocoder_graphs(batch) if graphed else synthesize(batch, vocoder, self.device)):
                out[i] = y
        return out


def _analyze_with_inputs(wav: np.ndarray, block_frames: int, f0_decimation: int, cfg: dict | None):
    return _with_inputs(features.analyze(wav, block_frames, f0_decimation=f0_decimation), cfg)


def _with_inputs(fr: Frames, cfg: dict | None) -> tuple[Frames, dict | None]:
    return fr, (encoder_inputs(fr, cfg) if cfg is not None else None)


_POOL: Executor | None = None


def _threads() -> int:
    """Analysis threads: the cores this process may use, less two on a larger machine, where they stay
    free for the threads that feed the GPU (the LLM's decode loop, the codec's decode): a server
    analyses one batch while the other decodes, and a starved feeding thread leaves the GPU idle."""
    n = len(os.sched_getaffinity(0))
    return n - 2 if n > 4 else max(1, n)


def _analysis_pool() -> Executor:
    """One pool per process, _threads() wide: threads unless use_analysis_processes() was called."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_threads(), thread_name_prefix="codec-analyze")
    return _POOL


def use_analysis_processes(on: bool = True) -> None:
    """Analyse in _threads() worker processes from now on (on=False: threads again). A GPU server's
    choice: pyworld releases the GIL, but the Python around its calls does not, and a dozen analysis
    threads slow the one thread that feeds the GPU. Workers start from a clean forkserver, never forked
    from a process that holds CUDA; each costs a Python with torch (~0.3 GB) and a few seconds to start, once."""
    global _POOL
    if _POOL is not None and isinstance(_POOL, ProcessPoolExecutor) == on:
        return
    old = _POOL
    _POOL = ProcessPoolExecutor(_threads(), mp_context=multiprocessing.get_context("forkserver"),
                                initializer=_one_torch_thread) if on else None
    if old is not None:
        old.shutdown(wait=False)


def _one_torch_thread() -> None:
    torch.set_num_threads(1)


def _length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]


def synthesize(frames: list[Frames], vocoder: str, device="cpu") -> list[np.ndarray]:
    if vocoder not in VOCODERS:
        raise ValueError(f"vocoder={vocoder}: choose one of {sorted(VOCODERS)}")
    return VOCODERS[vocoder](frames, device)
