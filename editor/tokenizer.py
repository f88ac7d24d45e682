"""Dual-codebook audio tokenizer: two learned token streams (finite scalar quantization), interleaved.

Default layout (the Step-Audio-EditX one): a linguistic stream at 16.7 Hz (60 ms, 1024 ids) and a
semantic stream at 25 Hz (40 ms, 4096 ids), interleaved 2:3 into 41.7 tokens per second.

Each stream is a small convolutional encoder over 10 ms frames, strided to its token rate and
quantized by FSQ; the encoders are trained jointly with a decoder to reconstruct the frames
(pipelines/train_tokenizer.py, editor/train_decoder.py). What each stream may carry is fixed by what it sees:
- linguistic (what is said): the mel cepstrum with the clip's speech mean removed (so entries are
  not spent on who speaks) and the level relative to the clip's loudest frame (pauses);
- semantic (how it is said): absolute log F0 and voicing, absolute level (energy, noise floor), the
  high-band share (breath, fricatives, noise) and the absolute low cepstrum (timbre, tilt).

Robust inputs (`inputs.floor_db`, `inputs.speech_db`; absent in tokenizer-v3): with tokenizer-v3's
inputs, white noise 60 dB under the clip's peak changed about half of the tokens in speech, and 0.5 s of
silence appended to a clip a fifth of its linguistic ones (the speech mean moves), so the same words
rarely give the same ids and an LLM cannot learn to copy them (bench/token_stability.py). With
floor_db, every log-mel value under the clip's loudest by more than floor_db is raised to that floor
(noise down there is invisible); with speech_db, the speech frames whose mean the linguistic stream
removes are those within speech_db of the loudest frame (not a percentile, which appended silence moves).

Why learned and not k-means on these features (tokenizer-v1): k-means codes of the same features
lost so much that even training speakers came back at +0.30 pocketsphinx WER
(bench/results/editor/roundtrip_v1_training_speakers.json).
"""
import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from editor import features
from editor.features import Frames
from editor.fsq import FSQ

DEFAULT = {
    "version": "tokenizer-v3",
    "linguistic": {"hop_frames": 6, "codebook": 1024, "levels": [8, 8, 4, 4], "content_dims": 24},
    "semantic": {"hop_frames": 4, "codebook": 4096, "levels": [8, 8, 8, 8], "timbre_dims": 12},
    "encoder": {"hidden": 256, "frame_layers": 2, "token_layers": 3},
}
SPEECH_PERCENTILE = 30  # frames above this level percentile count as speech for the clip mean
HIGH_BAND = features.N_MELS * 3 // 4  # mel bands above ~4.5 kHz
STREAMS = ("linguistic", "semantic")


def block_frames(cfg: dict) -> int:
    """Frames per interleaving block: the smallest span holding whole tokens of both streams."""
    a, b = cfg["linguistic"]["hop_frames"], cfg["semantic"]["hop_frames"]
    return a * b // math.gcd(a, b)


def level(mel: np.ndarray) -> np.ndarray:
    return mel.mean(1)


def speech_mask(mel: np.ndarray, speech_db: float | None = None) -> np.ndarray:
    """Frames that count as speech: above the level percentile, or (speech_db) within speech_db of the
    loudest frame."""
    lv = level(mel)
    if speech_db:
        return lv >= lv.max() - speech_db / features.NEPER_DB
    return lv >= np.percentile(lv, SPEECH_PERCENTILE)


def _inputs_option(cfg: dict, name: str):
    return (cfg.get("inputs") or {}).get(name)     # absent in tokenizer-v3


def floored_mel(mel: np.ndarray, cfg: dict) -> np.ndarray:
    """The log-mel as the encoders see it: floored floor_db under the clip's loudest value, if asked."""
    db = _inputs_option(cfg, "floor_db")
    return np.maximum(mel, mel.max() - db / features.NEPER_DB) if db else mel


def linguistic_inputs(fr: Frames, cfg: dict) -> np.ndarray:
    """(T, content_dims + 1) per frame: speaker-mean-removed cepstrum, level below the loudest frame."""
    mel = floored_mel(fr.mel, cfg)
    cep = features.cepstrum(mel, cfg["linguistic"]["content_dims"] + 1)[:, 1:]
    cep = cep - cep[speech_mask(mel, _inputs_option(cfg, "speech_db"))].mean(0)
    lv = level(mel) - level(mel).max()
    return np.concatenate([cep, lv[:, None]], 1).astype(np.float32)


def semantic_inputs(fr: Frames, cfg: dict) -> np.ndarray:
    """(T, 4 + timbre_dims) per frame: log F0, voicing, level, high-band share, absolute cepstrum."""
    mel = floored_mel(fr.mel, cfg)
    timbre = features.cepstrum(mel, cfg["semantic"]["timbre_dims"] + 1)[:, 1:]
    cols = [features.continuous_lf0(fr.f0), (fr.f0 > 0).astype(np.float32), level(mel),
            mel[:, HIGH_BAND:].mean(1) - mel[:, :HIGH_BAND].mean(1)]
    return np.concatenate([np.stack(cols, 1), timbre], 1).astype(np.float32)


INPUTS = {"linguistic": linguistic_inputs, "semantic": semantic_inputs}


def encoder_inputs(fr: Frames, cfg: dict) -> dict[str, np.ndarray]:
    """One clip's inputs to both encoders (what `encode` batches), from the frames and the tokenizer's cfg."""
    return {s: INPUTS[s](fr, cfg) for s in STREAMS}


def input_dim(stream: str, cfg: dict) -> int:
    return cfg["linguistic"]["content_dims"] + 1 if stream == "linguistic" else 4 + cfg["semantic"]["timbre_dims"]


def check_config(cfg: dict) -> None:
    for s in STREAMS:
        levels, size = cfg[s]["levels"], cfg[s]["codebook"]
        if math.prod(levels) != size:
            raise ValueError(f"editor.tokenizer.{s}: levels {list(levels)} give {math.prod(levels)} ids, "
                             f"codebook says {size}")


class ResidualConv(nn.Module):
    """Pre-norm 1-D convolution block; replicate padding, so a clip's edges look like its edge frames."""

    def __init__(self, hidden: int, kernel: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.conv = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2, padding_mode="replicate")
        self.mix = nn.Linear(hidden, hidden)

    def forward(self, x):
        return x + self.mix(torch.nn.functional.gelu(self.conv(self.norm(x).transpose(1, 2)).transpose(1, 2)))


class StreamEncoder(nn.Module):
    """(B, T, d_in) frames -> (B, T / hop, len(levels)) pre-quantization values."""

    def __init__(self, d_in: int, hop: int, n_out: int, hidden: int, frame_layers: int, token_layers: int):
        super().__init__()
        self.hop = hop
        self.inp = nn.Linear(d_in, hidden)
        self.frame = nn.Sequential(*[ResidualConv(hidden, 5) for _ in range(frame_layers)])
        self.down = nn.Linear(hop * hidden, hidden)
        self.token = nn.Sequential(*[ResidualConv(hidden, 3) for _ in range(token_layers)])
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, n_out))

    def forward(self, x, lengths: list[int] | None = None):
        """lengths: each clip's frames in a padded batch (whole hops). After every block a shorter
        clip's padding is set to its last real position again, so each convolution reads beyond the clip
        what it reads alone (replicate padding): a clip's ids do not depend on its batchmates."""
        b, t, _ = x.shape
        h = self._blocks(self.frame, self.inp(x), lengths)
        h = self.down(h.reshape(b, t // self.hop, self.hop * h.shape[-1]))
        return self.out(self._blocks(self.token, h, None if lengths is None else [n // self.hop for n in lengths]))

    @staticmethod
    def _blocks(blocks: nn.Sequential, h: torch.Tensor, lengths: list[int] | None) -> torch.Tensor:
        # position t of clip b reads position min(t, length_b - 1): its padding repeats its edge, on the
        # way in too (the token stage's input is the downsampling of padding, not a copy of the edge)
        edge = None if lengths is None or min(lengths) == h.shape[1] else torch.minimum(
            torch.arange(h.shape[1], device=h.device)[None, :],
            torch.as_tensor(lengths, device=h.device)[:, None] - 1)[..., None].expand(-1, -1, h.shape[-1])
        if edge is not None:
            h = h.gather(1, edge)
        for block in blocks:
            h = block(h)
            if edge is not None:
                h = h.gather(1, edge)
        return h


class DualCodebookTokenizer(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        check_config(cfg)
        self.cfg = cfg
        self.block = block_frames(cfg)
        self.n_ling = self.block // cfg["linguistic"]["hop_frames"]
        self.n_sem = self.block // cfg["semantic"]["hop_frames"]
        enc = cfg["encoder"]
        self.quantizers = nn.ModuleDict({s: FSQ(cfg[s]["levels"]) for s in STREAMS})
        self.encoders = nn.ModuleDict({
            s: StreamEncoder(input_dim(s, cfg), cfg[s]["hop_frames"], len(cfg[s]["levels"]), enc["hidden"],
                             enc["frame_layers"], enc["token_layers"]) for s in STREAMS})
        # input standardization, fitted on the training corpus
        for s in STREAMS:
            self.register_buffer(f"{s}_mean", torch.zeros(input_dim(s, cfg)))
            self.register_buffer(f"{s}_std", torch.ones(input_dim(s, cfg)))

    # ---- features ---------------------------------------------------------------------------------
    def inputs(self, fr: Frames) -> dict[str, np.ndarray]:
        return {s: INPUTS[s](fr, self.cfg) for s in STREAMS}

    def fit_normalization(self, inputs: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for s in STREAMS:
                getattr(self, f"{s}_mean").copy_(inputs[s].mean(0))
                getattr(self, f"{s}_std").copy_(inputs[s].std(0).clamp(min=1e-3))

    def latents(self, x: dict[str, torch.Tensor], lengths: list[int] | None = None) -> dict[str, torch.Tensor]:
        """Raw frame inputs per stream (B, T, d) -> the encoders' values before FSQ (B, T / hop, len(levels)).
        lengths: each clip's frames, when the batch is padded (StreamEncoder.forward)."""
        return {s: self.encoders[s]((x[s] - getattr(self, f"{s}_mean")) / getattr(self, f"{s}_std"), lengths)
                for s in STREAMS}

    def quantize(self, x: dict[str, torch.Tensor], lengths: list[int] | None = None) -> dict[str, torch.Tensor]:
        """Raw frame inputs per stream (B, T, d) -> quantized vectors (B, T / hop, len(levels))."""
        return {s: self.quantizers[s](z) for s, z in self.latents(x, lengths).items()}

    def vectors(self, stream: str, ids: torch.Tensor) -> torch.Tensor:
        return self.quantizers[stream].vectors(ids)

    # ---- tokens ---------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, frames: list[Frames], device="cpu", inputs: list[dict] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Frames of several clips -> (linguistic ids, semantic ids) per clip, one padded batch. inputs:
        each clip's encoder_inputs(frames[i], self.cfg) when already made (in the analysis workers)."""
        if inputs is not None and len(inputs) != len(frames):
            raise ValueError(f"inputs: {len(inputs)} for {len(frames)} clips")
        for f in frames:
            if len(f) % self.block:
                raise ValueError(f"{len(f)} frames is not a whole number of {self.block}-frame blocks: "
                                 "analyse with features.analyze(..., block_frames=tokenizer.block)")
        self.to(device).eval()
        t_max = max(len(f) for f in frames)
        batch = {}
        inputs = inputs or [encoder_inputs(f, self.cfg) for f in frames]
        for s in STREAMS:
            x = np.zeros((len(frames), t_max, input_dim(s, self.cfg)), np.float32)
            for i, clip in enumerate(inputs):
                v = clip[s]
                x[i, :len(v)] = v                          # the padding: StreamEncoder repeats the edge over it
            batch[s] = torch.as_tensor(x, device=device)
        q = self.quantize(batch, [len(f) for f in frames])
        ids = {s: self.quantizers[s].ids(q[s]).cpu().numpy() for s in STREAMS}
        hop = {s: self.cfg[s]["hop_frames"] for s in STREAMS}
        return [(ids["linguistic"][i, : len(f) // hop["linguistic"]], ids["semantic"][i, : len(f) // hop["semantic"]])
                for i, f in enumerate(frames)]

    def interleave(self, ling: np.ndarray, sem: np.ndarray) -> np.ndarray:
        """One sequence in a joint vocabulary: per block n_ling linguistic then n_sem semantic ids,
        semantic ids offset by the linguistic codebook size."""
        nb = len(ling) // self.n_ling
        if len(sem) != nb * self.n_sem or len(ling) != nb * self.n_ling:
            raise ValueError(f"streams of {len(ling)} and {len(sem)} tokens are not {nb} whole blocks")
        off = self.cfg["linguistic"]["codebook"]
        return np.concatenate([ling.reshape(nb, self.n_ling), sem.reshape(nb, self.n_sem) + off], 1).reshape(-1)

    def deinterleave(self, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        width = self.n_ling + self.n_sem
        if len(seq) % width:
            raise ValueError(f"a sequence of {len(seq)} tokens is not a whole number of {width}-token blocks")
        blocks = np.asarray(seq).reshape(-1, width)
        return blocks[:, :self.n_ling].reshape(-1), blocks[:, self.n_ling:].reshape(-1) - self.cfg["linguistic"]["codebook"]

    def tokens_per_second(self) -> dict[str, float]:
        fps = 1000.0 / features.FRAME_MS
        l = fps / self.cfg["linguistic"]["hop_frames"]
        s = fps / self.cfg["semantic"]["hop_frames"]
        return {"linguistic": l, "semantic": s, "interleaved": l + s}

    # ---- artifacts ----------------------------------------------------------------------------------
    def save(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(path / "model.safetensors"))
        info = {**self.cfg, "kind": "dual_codebook_tokenizer", "tokens_per_second": self.tokens_per_second()}
        (path / "config.json").write_text(json.dumps(info, indent=1))

    @classmethod
    def load(cls, path) -> "DualCodebookTokenizer":
        path = Path(path)
        cfg_file, weights = path / "config.json", path / "model.safetensors"
        if not cfg_file.is_file() or not weights.is_file():
            raise ValueError(f"tokenizer={path}: not a tokenizer artifact (needs config.json and model.safetensors)")
        cfg = json.loads(cfg_file.read_text())
        if cfg.get("kind") != "dual_codebook_tokenizer" or "encoder" not in cfg:
            raise ValueError(f"tokenizer={path}: config.json is not a learned dual-codebook tokenizer's")
        tok = cls(cfg)
        tok.load_state_dict(load_file(str(weights)))
        return tok.eval()
