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
        return [[round(t["start"], 3), round(t["end"], 3)] for t in ts]

    def process(self, row):
        x, sr = audio.decode(row["src"], f"{row['key']}.src")
        segs = self.segments(x, sr)
        if not segs:
            raise Reject("no_speech", "VAD found no speech in the source", 0.0)
        join = augment.JoinSegments(segs, self.params["padding_s"])
        row["tgt"] = audio.encode_flac(join(x, sr), sr)
        row["meta"]["vad_segments_s"] = segs
        row["meta"]["recipe"] = row["meta"]["recipe"] + [augment.to_dict(join)]
        return row
