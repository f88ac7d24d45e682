"""Dual-codebook audio tokenizer: two k-means token streams over WORLD frames, interleaved.

Default layout (the Step-Audio-EditX one): a linguistic stream at 16.7 Hz (60 ms, 1024 entries) and a
semantic stream at 25 Hz (40 ms, 4096 entries), interleaved 2:3 into 41.7 tokens per second.

- linguistic: what is said. The mel cepstrum with the clip's mean removed (so the code does not
  spend entries on who speaks) stacked over the window, PCA-reduced, plus the level relative to the
  clip's loudest frame (silence and pauses).
- semantic: how it is said. Absolute log F0 contour, voicing, absolute level (energy, noise floor),
  the high-band share (breath, fricatives, noise) and the low-order absolute cepstrum (timbre, tilt).

Each feature group is standardized and weighted so that a group's share of the k-means distance is
set by config, not by its number of dimensions.
"""
import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from editor import features, kmeans
from editor.features import Frames

DEFAULT = {
    "version": "tokenizer-v1",
    "linguistic": {"hop_frames": 6, "codebook": 1024, "content_dims": 24, "pca_dim": 64,
                   "weights": {"content": 1.0, "level": 0.5}},
    "semantic": {"hop_frames": 4, "codebook": 4096, "timbre_dims": 12,
                 "weights": {"lf0": 1.5, "vuv": 0.8, "energy": 1.0, "noise": 0.6, "timbre": 0.8}},
    "kmeans_iters": 30,
    "max_train_vectors": 400000,
    "seed": 0,
}
SPEECH_PERCENTILE = 30  # frames above this level percentile count as speech for the clip mean


def block_frames(cfg: dict) -> int:
    """Frames per interleaving block: the smallest span holding whole tokens of both streams."""
    a, b = cfg["linguistic"]["hop_frames"], cfg["semantic"]["hop_frames"]
    return a * b // math.gcd(a, b)


HIGH_BAND = features.N_MELS * 3 // 4  # mel bands above ~4.5 kHz


def level(mel: np.ndarray) -> np.ndarray:
    return mel.mean(1)


def speech_mask(mel: np.ndarray) -> np.ndarray:
    lv = level(mel)
    return lv >= np.percentile(lv, SPEECH_PERCENTILE)


def linguistic_groups(fr: Frames, cfg: dict) -> dict[str, np.ndarray]:
    hop, d = cfg["linguistic"]["hop_frames"], cfg["linguistic"]["content_dims"]
    n = len(fr) // hop
    mel = fr.mel[: n * hop]
    cep = features.cepstrum(mel, d + 1)[:, 1:]
    cep = cep - cep[speech_mask(mel)].mean(0)
    lv = level(mel) - level(mel).max()
    return {"content": cep.reshape(n, hop * d), "level": lv.reshape(n, hop)}


def semantic_groups(fr: Frames, cfg: dict) -> dict[str, np.ndarray]:
    hop, d = cfg["semantic"]["hop_frames"], cfg["semantic"]["timbre_dims"]
    n = len(fr) // hop
    cut = slice(0, n * hop)
    mel = fr.mel[cut]
    return {"lf0": features.continuous_lf0(fr.f0)[cut].reshape(n, hop),
            "vuv": (fr.f0[cut] > 0).astype(np.float32).reshape(n, hop),
            "energy": level(mel).reshape(n, hop),
            "noise": (mel[:, HIGH_BAND:].mean(1) - mel[:, :HIGH_BAND].mean(1)).reshape(n, hop),
            "timbre": features.cepstrum(mel, d + 1)[:, 1:].reshape(n, hop, d).mean(1)}


class DualCodebookTokenizer:
    def __init__(self, cfg: dict, state: dict[str, torch.Tensor]):
        self.cfg = cfg
        self.state = state
        self.block = block_frames(cfg)
        self.n_ling = self.block // cfg["linguistic"]["hop_frames"]
        self.n_sem = self.block // cfg["semantic"]["hop_frames"]

    # ---- features in the normalized, weighted space -------------------------------------------
    def _project(self, stream: str, groups: dict[str, np.ndarray], device) -> torch.Tensor:
        parts = []
        for name, x in groups.items():
            x = torch.as_tensor(x, dtype=torch.float32, device=device)
            if f"{stream}.{name}.pca" in self.state:
                x = (x - self.state[f"{stream}.{name}.pca_mean"].to(device)) @ self.state[f"{stream}.{name}.pca"].to(device)
            mean, scale = self.state[f"{stream}.{name}.mean"].to(device), self.state[f"{stream}.{name}.scale"].to(device)
            parts.append((x - mean) * scale)
        return torch.cat(parts, 1)

    def project_frames(self, frames: list[Frames], device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        ling = self._project("linguistic", _stack([linguistic_groups(f, self.cfg) for f in frames]), device)
        sem = self._project("semantic", _stack([semantic_groups(f, self.cfg) for f in frames]), device)
        return ling, sem

    # ---- tokens ---------------------------------------------------------------------------------
    def encode(self, frames: list[Frames], device="cpu") -> list[tuple[np.ndarray, np.ndarray]]:
        """Frames of several clips -> (linguistic ids, semantic ids) per clip, one batched quantization."""
        for f in frames:
            if len(f) % self.block:
                raise ValueError(f"{len(f)} frames is not a whole number of {self.block}-frame blocks: "
                                 "analyse with features.analyze(..., block_frames=tokenizer.block)")
        ling, sem = self.project_frames(frames, device)
        li = kmeans.nearest(ling, self.state["linguistic.codebook"].to(device)).cpu().numpy()
        si = kmeans.nearest(sem, self.state["semantic.codebook"].to(device)).cpu().numpy()
        out, a, b = [], 0, 0
        for f in frames:
            nl, ns = len(f) // self.cfg["linguistic"]["hop_frames"], len(f) // self.cfg["semantic"]["hop_frames"]
            out.append((li[a:a + nl], si[b:b + ns]))
            a, b = a + nl, b + ns
        return out

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

    # ---- fitting and artifacts --------------------------------------------------------------------
    @classmethod
    def fit(cls, frames: list[Frames], cfg: dict, device="cpu") -> "DualCodebookTokenizer":
        state: dict[str, torch.Tensor] = {}
        g = torch.Generator().manual_seed(cfg["seed"])
        for stream, groups_fn in (("linguistic", linguistic_groups), ("semantic", semantic_groups)):
            groups = _stack([groups_fn(f, cfg) for f in frames])
            n = len(next(iter(groups.values())))
            pick = torch.randperm(n, generator=g)[: cfg["max_train_vectors"]].numpy()
            weights = cfg[stream]["weights"]
            for name, x in groups.items():
                x = torch.as_tensor(x[pick], dtype=torch.float32, device=device)
                if name == "content":
                    mean = x.mean(0)
                    _, _, v = torch.linalg.svd(x - mean, full_matrices=False)
                    state[f"{stream}.{name}.pca_mean"] = mean.cpu()
                    state[f"{stream}.{name}.pca"] = v[: cfg[stream]["pca_dim"]].T.contiguous().cpu()
                    x = (x - mean) @ state[f"{stream}.{name}.pca"].to(device)
                mean = x.mean(0)
                total_std = float(((x - mean) ** 2).sum(1).mean().sqrt()) or 1.0
                state[f"{stream}.{name}.mean"] = mean.cpu()
                state[f"{stream}.{name}.scale"] = torch.tensor(weights[name] / total_std)
            tok = cls(cfg, state)
            x = tok._project(stream, {k: v[pick] for k, v in groups.items()}, device)
            state[f"{stream}.codebook"] = kmeans.fit(x, cfg[stream]["codebook"], cfg["kmeans_iters"], cfg["seed"]).cpu()
        return cls(cfg, state)

    def save(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state.items()}, str(path / "model.safetensors"))
        info = {**self.cfg, "kind": "dual_codebook_tokenizer", "tokens_per_second": self.tokens_per_second()}
        (path / "config.json").write_text(json.dumps(info, indent=1))

    @classmethod
    def load(cls, path) -> "DualCodebookTokenizer":
        path = Path(path)
        cfg_file, weights = path / "config.json", path / "model.safetensors"
        if not cfg_file.is_file() or not weights.is_file():
            raise ValueError(f"tokenizer={path}: not a tokenizer artifact (needs config.json and model.safetensors)")
        cfg = json.loads(cfg_file.read_text())
        if cfg.get("kind") != "dual_codebook_tokenizer":
            raise ValueError(f"tokenizer={path}: config.json is not a dual-codebook tokenizer's")
        return cls(cfg, load_file(str(weights)))


def _stack(groups: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([g[k] for g in groups]) for k in groups[0]}
