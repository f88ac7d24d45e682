"""Render a pair from explicit voicings (bootstrap labels for the margin scorer)."""
from core import audio
from stages.base import Resources, Stage
from tts.voicing import Voicing


class RenderPair(Stage):
    name = "render_pair"
    resources = Resources(cpus=1)
    batch_size = 4

    def setup(self):
        from tts.engine import LocalEngine
        self.engine = LocalEngine(self.params["sample_rate"], self.params.get("frame_period", 5.0))
        self._last_src = (None, None)  # consecutive rows share their src rendering

    def process(self, row):
        m = row["meta"]
        for role in ("src", "tgt"):
            ident = (m["text"], m["language"], str(m[f"{role}_voicing"]), m[f"{role}_base_voice"])
            if role == "src" and self._last_src[0] == ident:
                row["members"]["src.flac"] = self._last_src[1]
                continue
            x = self.engine.render(m["text"], m["language"], Voicing.from_dict(m[f"{role}_voicing"]),
                                   m[f"{role}_base_voice"], seed=0)
            row["members"][f"{role}.flac"] = audio.encode_flac(x, self.engine.sr)
            if role == "src":
                self._last_src = (ident, row["members"]["src.flac"])
        return row
