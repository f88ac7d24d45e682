"""The project's own judge, in process: a clip in, class probabilities per task out. HttpJudge
(scorers/judge/http_client.py) has the same interface for a judge behind HTTP."""
from pathlib import Path

import numpy as np
import torch

from core import audio
from scorers.judge import artifact
from scorers.judge.labels import TASKS, check_task
from scorers.judge.logmel import SR, logmel

MAX_CLIP_S = 60.0   # a judged clip is an edit of a prompt-sized clip; longer input is refused


def waveform(clip, name: str = "clip") -> np.ndarray:
    """Mono float32 at 16 kHz from an audio file's bytes, a path, or an (array, sample_rate) pair;
    audio.BadAudio (a ValueError) naming the input when it is unusable."""
    if isinstance(clip, (bytes, bytearray)):
        if not clip:
            raise audio.BadAudio(f"{name}: empty audio")
        x, sr = audio.decode(bytes(clip), name)
    elif isinstance(clip, (str, Path)):
        return audio.load(clip, SR, MAX_CLIP_S, "judge max clip length")
    elif isinstance(clip, tuple) and len(clip) == 2:
        x, sr = np.asarray(clip[0], dtype=np.float32), int(clip[1])
        if sr <= 0:
            raise audio.BadAudio(f"{name}: sample rate {sr} is not positive")
    else:
        raise audio.BadAudio(f"{name}: expected audio file bytes, a path or (array, sample_rate); got {type(clip).__name__}")
    if x.ndim != 1:
        raise audio.BadAudio(f"{name}: not mono ({x.shape})")
    if len(x) > MAX_CLIP_S * sr:
        raise audio.BadAudio(f"{name}: {len(x) / sr:.1f} s, over the judge's limit of {MAX_CLIP_S:g} s")
    x = audio.resample(x, sr, SR)
    audio.check_waveform(x, SR, name)
    return x


def probabilities(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(logmel(x))[None]), dim=1)[0].numpy()


class LocalJudge:
    def __init__(self, config: dict, models: dict):
        self.version = config["version"]
        self.models = models

    @classmethod
    def load(cls, path: str | Path) -> "LocalJudge":
        return cls(*artifact.load(path))

    @property
    def tasks(self) -> dict[str, list[str]]:
        return {t: list(TASKS[t]) for t in self.models}

    def classify(self, clip, task: str) -> dict[str, float]:
        """{class: probability} for one clip (file bytes, path, or (array, sample_rate))."""
        check_task(task)
        if task not in self.models:
            raise ValueError(f"task {task!r}: this judge ({self.version}) has only {sorted(self.models)}")
        p = probabilities(self.models[task], waveform(clip))
        return {c: float(v) for c, v in zip(TASKS[task], p)}
