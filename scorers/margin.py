"""Learned margin scorer: (neutral clip, edited clip, target tag) -> score in [1, 10].

Features (all from measurements, nothing hand-scored):
- the standardized acoustic change src -> tgt (scorers/features.py);
- its alignment with the tag's learned prototype (the mean change of well-scored training pairs of
  that tag): projection, cosine, and the part of the change that is off-prototype;
- speaker similarity of the two clips (resemblyzer), so that a changed speaker scores low.
A gradient-boosted regressor maps them to the score. Saved as a versioned directory
(model.pkl + meta.json), loaded by path."""
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scorers.features import NAMES, pair_features

DEFAULT_ARTIFACT = Path(__file__).resolve().parent / "artifacts" / "margin-v1"


def speaker_similarity(src: np.ndarray, tgt: np.ndarray, sr: int, encoder=None) -> float:
    from resemblyzer import VoiceEncoder, preprocess_wav
    enc = encoder or VoiceEncoder("cpu", verbose=False)
    a = enc.embed_utterance(preprocess_wav(src, source_sr=sr))
    b = enc.embed_utterance(preprocess_wav(tgt, source_sr=sr))
    return float(a @ b)


@dataclass
class MarginScorer:
    version: str
    mean: np.ndarray
    std: np.ndarray
    prototypes: dict          # tag -> unit vector in standardized delta space
    model: object
    meta: dict

    def features(self, deltas: np.ndarray, tags: list[str], spk_sim: np.ndarray) -> np.ndarray:
        z = (deltas - self.mean) / self.std
        out = []
        for zi, tag, sim in zip(z, tags, spk_sim):
            p = self.prototypes.get(tag)
            if p is None:
                raise ValueError(f"margin scorer {self.version} has no prototype for tag {tag!r}")
            proj = float(zi @ p)
            norm = float(np.linalg.norm(zi))
            off = float(np.linalg.norm(zi - proj * p))
            out.append(np.r_[zi, proj, proj / (norm + 1e-6), off, norm, sim])
        return np.array(out)

    def score(self, acoustics: list[dict], tags: list[str], spk_sim) -> np.ndarray:
        deltas = np.array([pair_features(a) for a in acoustics])
        y = self.model.predict(self.features(deltas, tags, np.asarray(spk_sim, dtype=float)))
        return np.clip(y, 1.0, 10.0)

    def save(self, path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / "model.pkl", "wb") as f:
            pickle.dump({"model": self.model, "mean": self.mean, "std": self.std,
                         "prototypes": {k: v.tolist() for k, v in self.prototypes.items()}}, f)
        (path / "meta.json").write_text(json.dumps({**self.meta, "version": self.version}, indent=2))
        return path

    @classmethod
    def load(cls, path=None) -> "MarginScorer":
        path = Path(path or DEFAULT_ARTIFACT)
        if not (path / "model.pkl").is_file():
            raise ValueError(f"margin scorer artifact {path} not found (train one: python run.py "
                             f"pipeline=train_margin_scorer)")
        with open(path / "model.pkl", "rb") as f:
            d = pickle.load(f)
        meta = json.loads((path / "meta.json").read_text())
        return cls(meta["version"], d["mean"], d["std"], {k: np.array(v) for k, v in d["prototypes"].items()},
                   d["model"], meta)


def fit(deltas: np.ndarray, tags: list[str], spk_sim: np.ndarray, scores: np.ndarray, version: str,
        meta: dict | None = None, seed: int = 0) -> MarginScorer:
    from sklearn.ensemble import HistGradientBoostingRegressor
    mean, std = deltas.mean(axis=0), deltas.std(axis=0) + 1e-6
    z = (deltas - mean) / std
    protos = {}
    for tag in sorted(set(tags)):
        idx = [i for i, t in enumerate(tags) if t == tag]
        w = np.clip(scores[idx] - 5.0, 0, None)  # pairs that show the tag well define its direction
        v = (z[idx] * w[:, None]).sum(0) if w.sum() > 0 else z[idx].mean(0)
        protos[tag] = v / (np.linalg.norm(v) + 1e-9)
    sc = MarginScorer(version, mean, std, protos, None, {"features": list(NAMES), **(meta or {})})
    X = sc.features(deltas, tags, spk_sim)
    sc.model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, max_leaf_nodes=15,
                                             l2_regularization=1.0, random_state=seed).fit(X, scores)
    return sc
