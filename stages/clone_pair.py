"""Zero-shot clone the same text twice from one speaker: with the neutral prompt (src) and with
the emotional/styled prompt plus the instruction (tgt). The neutral prompt goes along as
prompt.flac, the voice prompt of the sample's clone example (core/sample.py)."""
from core import audio
from stages.base import Reject, Resources, Stage, prompt_flac


class ClonePair(Stage):
    name = "clone_pair"
    resources = Resources(cpus=1)
    batch_size = 2

    def setup(self):
        from omegaconf import OmegaConf
        from tts.backends import make_backend
        self.sr = self.params["sample_rate"]
        self.backend = make_backend(OmegaConf.create(self.params["tts"]), self.sr)
        self._prompts = {}

    def _prompt(self, path):
        if path not in self._prompts:
            if len(self._prompts) > 64:
                self._prompts.clear()
            self._prompts[path] = audio.load(path, self.sr)
        return self._prompts[path]

    def process(self, row):
        m = row["meta"]
        out = {}
        base_voice = m.get("base_voice")
        if base_voice is None and hasattr(self.backend, "choose_base_voice"):
            # one base voice for both clones, chosen on the neutral prompt: the pair then differs only
            # where its prompts do, not in the voice the engine started from
            base_voice = self.backend.choose_base_voice(self._prompt(m["prompt_src"]["path"]),
                                                        m["prompt_src"]["text"], m["language"])
        for role, prompt in (("src", m["prompt_src"]), ("tgt", m["prompt_tgt"])):
            instruction = m["instruction"] if role == "tgt" else None
            x = self.backend.clone(self._prompt(prompt["path"]), prompt["text"], m["text"], m["language"],
                                   instruction, base_voice, m["seed"])
            if len(x) < 0.3 * self.sr:
                raise Reject("tts_empty", f"{role} clone is {len(x) / self.sr:.2f} s", len(x) / self.sr)
            out[role] = audio.encode_flac(x, self.sr)
        row["members"].update({"src.flac": out["src"], "tgt.flac": out["tgt"],
                               "prompt.flac": prompt_flac(m["prompt_src"]["path"], self.sr)})
        return row
