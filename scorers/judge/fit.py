"""Training the judge's CNN on labelled clips, and scoring it on held-out clips the way the seed
reports its benchmark: accuracy per class averaged over speakers, plus a confusion matrix."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scorers.judge.cnn import LogMelCNN
from scorers.judge.logmel import logmel

SILENCE = float(np.log(1e-6))   # what an empty mel bin holds: padding of a short clip


def _crop(mel: np.ndarray, frames: int, rng) -> np.ndarray:
    if mel.shape[1] >= frames:
        start = int(rng.integers(mel.shape[1] - frames + 1))
        return mel[:, start:start + frames]
    return np.pad(mel, ((0, 0), (0, frames - mel.shape[1])), constant_values=SILENCE)


def save_checkpoint(path: Path, state: dict) -> None:
    """Written whole or not at all (temp file, rename): a kill never leaves a torn checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(clips: list[np.ndarray], labels: list[int], n_classes: int, *, epochs: int = 30, batch: int = 32,
          lr: float = 2e-3, width: int = 32, crop_s: float = 3.0, seed: int = 0, log=None,
          checkpoint: Path | None = None) -> LogMelCNN:
    """clips: 16 kHz waveforms; labels: class indices. Random crops of crop_s, class-weighted loss (the
    neutral class is as big as all the others together in triplet data).

    checkpoint: a file written after every epoch (weights, optimizer, schedule, epoch, both random
    generators); when it exists, training continues from it, so a killed run ends with the weights an
    uninterrupted one would have."""
    if len(clips) != len(labels) or not clips:
        raise ValueError(f"judge training needs clips with one label each (got {len(clips)} clips, {len(labels)} labels)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mels = [logmel(x) for x in clips]
    allv = np.concatenate([m.ravel() for m in mels])
    model = LogMelCNN(n_classes, width=width, mean=float(allv.mean()), std=float(allv.std()))
    y = np.asarray(labels)
    counts = np.bincount(y, minlength=n_classes).astype(float)
    weights = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0),
                           dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    steps = epochs * int(np.ceil(len(mels) / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    frames = int(crop_s * 100)
    first = 0
    # what the run is: its clips' samples and labels, in order, and every setting; a checkpoint of another
    # run (other clips or held-out speakers, another rate) is refused instead of continued
    h = hashlib.sha1(json.dumps([epochs, batch, lr, width, crop_s, seed, n_classes, list(map(int, labels))]).encode())
    for x in clips:
        h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    fingerprint = h.hexdigest()[:16]
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state.get("fingerprint") != fingerprint:
            raise ValueError(f"judge checkpoint {checkpoint}: made by a run with other clips, labels or settings "
                             f"({state.get('epochs')} epochs over {state.get('n')} clips; this run: {epochs} over "
                             f"{len(mels)}); delete it to start over")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        first = state["epoch"]
        if log:
            log(f"   resumed at epoch {first}/{epochs} from {checkpoint}")
    model.train()
    for ep in range(first, epochs):
        order, total = rng.permutation(len(mels)), 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            gain = rng.uniform(-0.35, 0.35, size=(len(idx), 1, 1))   # +-1.5 dB: levels vary a little between renderings
            xb = torch.from_numpy(np.stack([_crop(mels[j], frames, rng) for j in idx]) + gain.astype(np.float32))
            loss = loss_fn(model(xb), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if log and (ep % 5 == 4 or ep == epochs - 1):
            log(f"   epoch {ep + 1}/{epochs}: loss {total / len(mels):.3f}")
        if checkpoint is not None:
            save_checkpoint(Path(checkpoint), {"model": model.state_dict(), "opt": opt.state_dict(),
                                               "sched": sched.state_dict(), "epoch": ep + 1, "epochs": epochs,
                                               "n": len(mels), "fingerprint": fingerprint, "rng": rng.bit_generator.state,
                                               "torch_rng": torch.get_rng_state()})
    return model.eval()


def predict(model: LogMelCNN, clips: list[np.ndarray]) -> np.ndarray:
    """Class probabilities (n, classes), each clip whole."""
    with torch.no_grad():
        return np.stack([torch.softmax(model(torch.from_numpy(logmel(x))[None]), 1)[0].numpy() for x in clips])


def evaluate(probs: np.ndarray, labels: list[int], speakers: list[str], classes) -> dict:
    """Accuracy overall, per class (recall) and per class averaged over speakers (the seed's rule:
    a category's accuracy is the mean over speakers), and the confusion matrix (rows: true class,
    columns: predicted; counts)."""
    y, pred = np.asarray(labels), probs.argmax(1)
    n = len(classes)
    conf = np.zeros((n, n), dtype=int)
    for t, p in zip(y, pred):
        conf[t, p] += 1
    per_class, per_class_by_speaker = {}, {}
    for c, name in enumerate(classes):
        m = y == c
        if not m.any():
            continue
        per_class[name] = float((pred[m] == c).mean())
        spk = sorted({s for s, mm in zip(speakers, m) if mm})
        per_class_by_speaker[name] = float(np.mean([
            (pred[m & (np.asarray(speakers) == s)] == c).mean() for s in spk]))
    tagged = [c for c in per_class_by_speaker if c != "neutral"]
    return {"n": int(len(y)), "accuracy": float((pred == y).mean()), "per_class": per_class,
            "per_class_mean_over_speakers": per_class_by_speaker,
            "tagged_accuracy_mean_over_classes": float(np.mean([per_class_by_speaker[c] for c in tagged])) if tagged else None,
            "classes": list(classes), "confusion": conf.tolist()}


def confusion_text(ev: dict) -> str:
    """The confusion matrix as a Markdown table (rows true, columns predicted)."""
    cls = ev["classes"]
    lines = ["| true \\ predicted | " + " | ".join(cls) + " | recall |", "|---" * (len(cls) + 2) + "|"]
    for name, row in zip(cls, ev["confusion"]):
        recall = ev["per_class"].get(name)
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {'' if recall is None else f'{recall:.2f}'} |")
    return "\n".join(lines)
