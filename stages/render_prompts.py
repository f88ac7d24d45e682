"""Render the generated voice bank's missing prompt clips (run once, cached on disk)."""
from stages.base import Resources, Stage


class RenderPrompts(Stage):
    name = "render_prompts"
    resources = Resources(cpus=1)
    batch_size = 2

    def setup(self):
        from tts.engine import LocalEngine
        self.engine = LocalEngine(self.params["sample_rate"], self.params.get("frame_period", 5.0),
                                  cache_dir=self.params.get("cache_dir"))

    def process(self, row):
        from core import audio
        from tts.voice_bank import GeneratedVoiceBank
        from tts.voicing import VoicingRejected
        job = row["meta"]
        GeneratedVoiceBank.render(self.engine, job)
        if self.params.get("cache_dir"):  # analyse the published clip once, for every later clone
            try:
                self.engine.prompt_voicing(audio.load(job["path"], self.engine.sr), job["text"], job["language"],
                                           job["base_voice"])
            except VoicingRejected as e:
                # The clip is published and its rejection cached: every clone of it is rejected with this
                # reason in the release's rejects. Failing the bank here would stop the first run only (a
                # rerun finds the clip rendered), so both runs now make the same release.
                row["meta"]["voicing_rejected"] = str(e)
        return row
