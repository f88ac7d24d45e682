"""Zero-shot clone of the tag-free transcript (src), prompted by the tagged recording with the
tag-free text as prompt text, as the seed does; and, optionally, of the substitution baseline's
text (tags spoken as words) with the same prompt, as the member sub.flac.

cut_events: where the events' spans are known (rendered corpus), they are cut out of the prompt.
A prompt analysis reads vocalizations as speech: the local engine's clones came out 10-25% slower,
and their F0 and formant estimates moved with the interjections' pitch. A real corpus's
recording (no spans) is always the prompt as it is."""
import numpy as np

from core import audio
from stages.base import Reject, Resources, Stage


class CloneTagFree(Stage):
    name = "clone_tag_free"
    resources = Resources(cpus=1)
    batch_size = 2

    def setup(self):
        from omegaconf import OmegaConf
        from tts.backends import make_backend
        self.sr = self.params["sample_rate"]
        self.backend = make_backend(OmegaConf.create(self.params["tts"]), self.sr)

    def _clone(self, prompt, m, text, what):
        x = self.backend.clone(prompt, m["text"], text, m["language"], None, m.get("base_voice"), m["seed"])
        if len(x) < 0.3 * self.sr:
            raise Reject("tts_empty", f"{what} clone is {len(x) / self.sr:.2f} s", len(x) / self.sr)
        return audio.encode_flac(x, self.sr)

    def process(self, row):
        m = row["meta"]
        prompt, sr = audio.decode(row["members"]["tgt.flac"], f"{row['key']}.tgt.flac")
        prompt = audio.resample(prompt, sr, self.sr)
        spans = [(e["start_s"], e["end_s"]) for e in m["events"] if e["start_s"] is not None]
        if self.params.get("cut_events") and spans:
            keep = np.ones(len(prompt), bool)
            for a, b in spans:
                keep[int(a * self.sr): int(b * self.sr)] = False
            prompt = prompt[keep]
        m["prompt_events_cut"] = bool(self.params.get("cut_events") and spans)
        row["members"]["src.flac"] = self._clone(prompt, m, m["text"], "tag-free")
        sub = m.get("substitution_text")
        if sub is not None and sub != m["text"]:
            row["members"]["sub.flac"] = self._clone(prompt, m, sub, "substitution")
        return row
