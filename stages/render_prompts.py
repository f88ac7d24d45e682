"""Render the generated voice bank's missing prompt clips (run once, cached on disk)."""
from stages.base import Resources, Stage


class RenderPrompts(Stage):
    name = "render_prompts"
    resources = Resources(cpus=1)
    batch_size = 2
    concurrency = (1, 2)

    def setup(self):
        from tts.engine import LocalEngine
        self.engine = LocalEngine(self.params["sample_rate"], self.params.get("frame_period", 5.0))

    def process(self, row):
        from tts.voice_bank import GeneratedVoiceBank
        GeneratedVoiceBank.render(self.engine, row["meta"])
        return row
