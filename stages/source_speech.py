"""Clean source speech for the augmentation pipelines: a neutral clone from the voice bank, or a
user's recording. Output goes to src.flac; later stages derive the other side from it. A clone's
voice-bank prompt goes along as prompt.flac (core/sample.py); a recording has none."""
from core import audio
from stages.base import Reject, Resources, Stage, prompt_flac


class SourceSpeech(Stage):
    name = "source_speech"
    resources = Resources(cpus=1)
    batch_size = 2

    def setup(self):
        self.sr = self.params["sample_rate"]
        self.backend = None
        if self.params.get("tts"):
            from omegaconf import OmegaConf
            from tts.backends import make_backend
            self.backend = make_backend(OmegaConf.create(self.params["tts"]), self.sr)
        self._prompts = {}

    def process(self, row):
        m = row["meta"]
        if m.get("audio_path"):  # a user's recording
            try:  # judged from its header: a far too long file is never decoded, let alone measured
                x = audio.load(m["audio_path"], self.sr, self.params["max_duration_s"])
            except audio.TooLong as e:
                raise Reject("too_long", str(e), e.seconds) from e
        else:
            p = m["prompt"]
            if p["path"] not in self._prompts:
                self._prompts = {p["path"]: audio.load(p["path"], self.sr)}  # rows come grouped by speaker
            x = self.backend.clone(self._prompts[p["path"]], p["text"], m["text"], m["language"], None,
                                   m.get("base_voice"), m["seed"])
            row["members"]["prompt.flac"] = prompt_flac(p["path"], self.sr)
        row["members"]["src.flac"] = audio.encode_flac(x, self.sr)
        return row
