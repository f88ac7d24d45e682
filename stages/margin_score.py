"""Score each pair's margin (1-10) with the learned scorer; the version goes into provenance."""
from stages.base import Resources, Stage


class MarginScore(Stage):
    name = "margin_score"
    resources = Resources(cpus=1)
    batch_size = 8

    def setup(self):
        from scorers.margin import MarginScorer
        self.scorer = MarginScorer.load(self.params.get("artifact"))

    def process(self, row):
        m = row["meta"]
        m["margin"] = round(float(self.scorer.score([m["acoustics"]], [m["edit_info"]], [m["speaker_sim"]])[0]), 3)
        m["margin_scorer"] = self.scorer.version
        return row
