"""Resemblyzer similarity of the two clips of a pair (stored; filters and the scorer decide)."""
from core import audio
from stages.base import Resources, Stage


class SpeakerSimilarity(Stage):
    name = "speaker_similarity"
    resources = Resources(cpus=1)
    batch_size = 8

    def setup(self):
        from resemblyzer import VoiceEncoder
        self.encoder = VoiceEncoder("cpu", verbose=False)

    def process(self, row):
        from scorers.margin import speaker_similarity
        src, sr = audio.decode(row["members"]["src.flac"], f"{row['key']}.src.flac")
        tgt, _ = audio.decode(row["members"]["tgt.flac"], f"{row['key']}.tgt.flac")
        row["meta"]["speaker_sim"] = round(speaker_similarity(src, tgt, sr, self.encoder), 4)
        return row
