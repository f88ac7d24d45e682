"""Stage: the machine rater (scorers/candidate_rater.py) over one prompt's answers: each answer's
1-10 score against the prompt's source round trip (`src.flac`), into meta["answers"]. A prompt of a
task without a rater keeps its answers unscored (score None) with the reason in meta["unrated"]."""
from core import audio
from stages.base import Resources, Stage


class RateCandidates(Stage):
    name = "rate_candidates"
    resources = Resources(cpus=1)
    batch_size = 2

    def setup(self):
        from scorers.candidate_rater import CandidateRater
        self.rater = CandidateRater(self.params.get("margin_scorer"))

    def process(self, row):
        m = row["meta"]
        task, info = m["task"], m["info"]
        m["unrated"] = self.rater.skip_reason(task, info)
        rater = None if m["unrated"] else self.rater.rater_id(task)
        if rater is None:
            for a in m["answers"]:
                a.update(score=None, rater=None)
            return row
        src, _ = audio.decode(row["members"]["src.flac"], f"{row['key']}.src.flac")
        answers = [audio.decode(row["members"][a["member"]], f"{row['key']}.{a['member']}")[0]
                   for a in m["answers"]]
        for a, (score, detail) in zip(m["answers"], self.rater.rate(task, src, answers, info)):
            a.update(score=round(float(score), 4), rater=rater, detail=detail)
        return row
