"""The tagged recording (the 'nv_source', tgt): a corpus file, or rendered by the local engine
from the tagged transcript with each tag's vocalization in its place (tts/vocalizations.py). A
rendered row's speaker has a neutral voice-bank clip: it goes along as prompt.flac, the voice prompt
of the sample's clone example (core/sample.py)."""
from core import audio
from stages.base import Reject, Resources, Stage, prompt_flac


class NvSource(Stage):
    name = "nv_source"
    resources = Resources(cpus=1)
    batch_size = 2

    def setup(self):
        self.sr = self.params["sample_rate"]
        self.engine = self.vocalizer = None
        self._voicings = {}

    def _engine(self):
        if self.engine is None:  # only for rendered rows: a real corpus needs no TTS here
            from tts.engine import LocalEngine
            from tts.vocalizations import Vocalizer
            self.engine = LocalEngine(self.sr, self.params.get("frame_period", 5.0),
                                      cache_dir=self.params.get("cache_dir"))
            self.vocalizer = Vocalizer(self.engine)
        return self.engine

    def _voicing(self, m):
        """The speaker's voicing: its timbre for a generated bank, else estimated from its neutral clip."""
        from tts.voicing import Voicing
        if m.get("timbre") is not None:
            return Voicing.from_dict(m["timbre"])
        p = m.get("prompt_neutral")
        if p is None:
            raise Reject("no_prompt", f"speaker {m['speaker']} has no neutral clip to take its voice from")
        if p["path"] not in self._voicings:
            v, gain = self._engine().prompt_voicing(audio.load(p["path"], self.sr), p["text"], m["language"],
                                                    m.get("base_voice"))
            self._voicings[p["path"]] = v.replace(gain_db=gain)
        return self._voicings[p["path"]]

    def process(self, row):
        m = row["meta"]
        if m.get("audio_path"):  # real data: events are known by tag, not by time
            try:  # judged from its header: a far too long file is never decoded
                x = audio.load(m["audio_path"], self.sr, self.params["max_duration_s"])
            except audio.TooLong as e:
                raise Reject("too_long", str(e), e.seconds) from e
            m["events"] = [{"tag": t, "start_s": None, "end_s": None} for t in m["tags"]]
        else:
            from tts.vocalizations import render_tagged
            engine = self._engine()
            x, m["events"] = render_tagged(engine, m["text_with_tags"], m["language"], self._voicing(m),
                                           m.get("base_voice"), m["render_seed"], tuple(self.params["pause_s"]),
                                           vocalizer=self.vocalizer)
        row["members"]["tgt.flac"] = audio.encode_flac(x, self.sr)
        if m.get("prompt_neutral"):
            row["members"]["prompt.flac"] = prompt_flac(m["prompt_neutral"]["path"], self.sr)
        return row
