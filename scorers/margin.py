"""Learned margin scorer: (neutral clip, edited clip, target tag) -> score in [1, 10].

Two learned layers over measurements (nothing hand-scored):
1. per tag, a ridge regression from the standardized pair features (acoustic change src -> tgt,
   timbre change, speaker similarity) to the score: how strongly *this* tag is expressed. It is
   fitted on pairs that keep the speaker, so it learns the tag, not speaker swaps;
2. a gradient-boosted regressor over the features and the tag's ridge score, which learns the
   failure modes (another speaker, the wrong attribute, no change) across tags.
For training rows the ridge scores are out-of-fold (grouped by speaker), so the second layer sees
ridge scores as noisy as on new data. Saved as a versioned directory (model.pkl + meta.json)."""
import json
import pickle
from dataclasses import dataclass, field
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


def _ridge(W: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Closed-form ridge with an unpenalized intercept; returns [coef..., intercept]."""
    mu_w, mu_y = W.mean(axis=0), y.mean()
    Wc = W - mu_w
    coef = np.linalg.solve(Wc.T @ Wc + alpha * np.eye(W.shape[1]), Wc.T @ (y - mu_y))
    return np.r_[coef, mu_y - mu_w @ coef]


@dataclass
class MarginScorer:
    version: str
    mean: np.ndarray
    std: np.ndarray
    ridges: dict              # tag -> [coef..., intercept] over standardized features
    model: object = None
    meta: dict = field(default_factory=dict)

    def standardize(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.mean) / self.std

    def tag_scores(self, W: np.ndarray, tags: list[str]) -> np.ndarray:
        out = np.empty(len(tags))
        for i, tag in enumerate(tags):
            r = self.ridges.get(tag)
            if r is None:
                raise ValueError(f"margin scorer {self.version} was not trained on tag {tag!r}")
            out[i] = W[i] @ r[:-1] + r[-1]
        return out

    def score_raw(self, raw: np.ndarray, tags: list[str]) -> np.ndarray:
        W = self.standardize(raw)
        return np.clip(self.model.predict(np.c_[W, self.tag_scores(W, tags)]), 1.0, 10.0)

    def score(self, acoustics: list[dict], tags: list[str], spk_sim) -> np.ndarray:
        return self.score_raw(raw_features(acoustics, spk_sim), tags)

    def save(self, path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / "model.pkl", "wb") as f:
            pickle.dump({"model": self.model, "mean": self.mean, "std": self.std,
                         "ridges": {k: v.tolist() for k, v in self.ridges.items()}}, f)
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
        return cls(meta["version"], d["mean"], d["std"], {k: np.array(v) for k, v in d["ridges"].items()},
                   d["model"], meta)


FEATURE_NAMES = list(NAMES) + ["speaker_sim"]


def raw_features(acoustics: list[dict], spk_sim) -> np.ndarray:
    return np.c_[np.array([pair_features(a) for a in acoustics]), np.asarray(spk_sim, dtype=float)]


def fit(raw: np.ndarray, tags: list[str], scores: np.ndarray, version: str, groups=None, same_speaker=None,
        meta: dict | None = None, alpha: float = 1.0, seed: int = 0) -> MarginScorer:
    """groups: e.g. speaker per row, for out-of-fold ridge scores; same_speaker: rows the per-tag
    ridges learn from (default all)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    tags = np.asarray(tags)
    groups = np.asarray(groups) if groups is not None else np.arange(len(tags)) % 5
    keep = np.ones(len(tags), bool) if same_speaker is None else np.asarray(same_speaker, bool)
    mean, std = raw.mean(axis=0), raw.std(axis=0) + 1e-6
    W = (raw - mean) / std
    ridges = {t: _ridge(W[(tags == t) & keep], scores[(tags == t) & keep], alpha) for t in sorted(set(tags))}
    oof = np.empty(len(tags))
    for g in np.unique(groups):
        out = groups == g
        for t in set(tags[out]):
            fit_rows = (tags == t) & keep & ~out
            r = _ridge(W[fit_rows], scores[fit_rows], alpha) if fit_rows.sum() > 3 else ridges[t]
            rows = out & (tags == t)
            oof[rows] = W[rows] @ r[:-1] + r[-1]
    model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, max_leaf_nodes=15,
                                          l2_regularization=1.0, random_state=seed).fit(np.c_[W, oof], scores)
    return MarginScorer(version, mean, std, ridges, model, {"features": FEATURE_NAMES, "ridge_alpha": alpha,
                                                             **(meta or {})})
