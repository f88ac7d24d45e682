"""Stage: one benchmark cell's numbers for one clip (benchmark/scoring.py), for pipeline=edit_benchmark.

A row's meta holds the kind (judged: emotion/style; paralinguistic) and the prompt; its members are
y.flac (the clip) and ref.flac (the chain's Iter0 for similarity, or the paralinguistic edit's
source). The answer is meta["cell"]. CPU work: the judge, resemblyzer and pocketsphinx load once per
worker."""
from benchmark.editors import SR
from core import audio
from stages.base import Resources, Stage


def _clip(row, suffix):
    if suffix not in row["members"]:
        return None
    x, sr = audio.decode(row["members"][suffix], f"{row['key']}.{suffix}")
    return audio.resample(x, sr, SR)


class BenchmarkScore(Stage):
    name = "benchmark_score"
    resources = Resources(cpus=1)
    batch_size = 8

    def setup(self):
        from benchmark.choose import load_judge
        from benchmark.scoring import Scorer
        self.scorer = Scorer(load_judge(self.params["judge"]), similarity=bool(self.params["similarity"]),
                             wer=bool(self.params["wer"]))

    def process(self, row: dict) -> dict:
        m, y, ref = row["meta"], _clip(row, "y.flac"), _clip(row, "ref.flac")
        ref_emb = self.scorer.embedding(ref) if ref is not None else None
        if m["kind"] == "paralinguistic":
            m["cell"] = self.scorer.paralinguistic(ref, y, m["prompt"], ref_emb)
        else:
            m["cell"] = self.scorer.judged(y, m["prompt"], ref_emb)
        return row
