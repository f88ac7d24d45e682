"""Word error rate of English clips against their text (pocketsphinx, model in the wheel)."""
from core import audio
from stages.base import Resources, Stage


class AsrWer(Stage):
    name = "asr_wer"
    resources = Resources(cpus=1)
    batch_size = 4

    def process(self, row):
        from scorers.asr import wer_of
        m = row["meta"]
        if m.get("language") != "en" or not m.get("text"):
            return row
        q = m.setdefault("quality", {})
        for role in self.params["roles"]:
            x, sr = audio.decode(row["members"][f"{role}.flac"], f"{row['key']}.{role}.flac")
            q[f"wer_{role}"] = round(wer_of(x, sr, m["text"]), 4)
        return row
