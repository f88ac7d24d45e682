"""Silero VAD (the model in the wheel, 16 kHz) finds the speech in src; tgt is the speech
segments joined with short padding. The timestamps and padding are recorded as a recipe step."""
import numpy as np

from core import audio, augment
from stages.base import Reject, Resources, Stage


class VadTrim(Stage):
    name = "vad_trim"
    resources = Resources(cpus=1)
    batch_size = 8

    def setup(self):
        import torch
        from silero_vad import load_silero_vad
        torch.set_num_threads(1)
        # the ONNX build: silero's wrapper already gives its onnxruntime session one thread
        self.model = load_silero_vad(onnx=True)

    def segments(self, x: np.ndarray, sr: int) -> list[list[float]]:
        import torch
        from silero_vad import get_speech_timestamps
        x16 = audio.resample(x, sr, 16000)
        ts = get_speech_timestamps(torch.from_numpy(x16), self.model, sampling_rate=16000,
                                   min_silence_duration_ms=self.params["min_silence_ms"],
                                   speech_pad_ms=self.params["speech_pad_ms"], return_seconds=True)
        return [self._refine(x16, t["start"], t["end"]) for t in ts]

    def _refine(self, x16, start: float, end: float) -> list[float]:
        """Silero's probabilities lag the audio by a window or two, so a segment edge can sit 100+ ms
        inside a pause: move each edge to the first/last frame of real level within 200 ms of it."""
        hop = 160  # 10 ms at 16 kHz
        n = len(x16) // hop
        db = 10 * np.log10(np.mean(x16[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
        loud = np.flatnonzero(db > db.max() - self.params.get("edge_db", 40.0))
        a, b = int(start * 100), int(end * 100)
        first = loud[(loud >= a - 20) & (loud <= b)]
        last = loud[(loud >= a) & (loud <= b + 20)]
        if len(first) and len(last):
            a, b = first[0], last[-1] + 1
        pad = self.params["speech_pad_ms"] / 1000
        return [round(max(0.0, a / 100 - pad), 3), round(min(len(x16) / 16000, b / 100 + pad), 3)]

    def process(self, row):
        x, sr = audio.decode(row["members"]["src.flac"], f"{row['key']}.src.flac")
        segs = self.segments(x, sr)
        if not segs:
            raise Reject("no_speech", "VAD found no speech in the source", 0.0)
        join = augment.JoinSegments(segs, self.params["padding_s"], float(self.params.get("align_s") or 0.0))
        row["members"]["tgt.flac"] = audio.encode_flac(join(x, sr), sr)
        row["meta"]["vad_segments_s"] = segs
        row["meta"]["recipe"] = row["meta"]["recipe"] + [augment.to_dict(join)]
        return row
