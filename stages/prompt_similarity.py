"""Speaker similarity (resemblyzer) of the generated src clip to the speaker's prompt clip."""
from core import audio
from stages.base import Resources, Stage


class PromptSimilarity(Stage):
    name = "prompt_similarity"
    resources = Resources(cpus=1)
    batch_size = 8

    def setup(self):
        from resemblyzer import VoiceEncoder
        self.encoder = VoiceEncoder("cpu", verbose=False)
        self._prompt = (None, None)

    def process(self, row):
        from scorers.margin import speaker_similarity
        m = row["meta"]
        prompt = m.get("prompt_src") or m.get("prompt")
        if not prompt:  # a user's recording: there is no prompt to compare with
            return row
        if self._prompt[0] != prompt["path"]:
            self._prompt = (prompt["path"], audio.load(prompt["path"], 16000))
        x, sr = audio.decode(row["members"]["src.flac"], f"{row['key']}.src.flac")
        m.setdefault("quality", {})["prompt_sim"] = round(
            speaker_similarity(audio.resample(x, sr, 16000), self._prompt[1], 16000, self.encoder), 4)
        return row
