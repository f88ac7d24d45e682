"""Keep/drop on stored quality measurements (WER, prompt similarity, level before normalization).
A measurement that was not taken (e.g. WER of a Mandarin clip) does not drop anything."""
from stages.base import Reject, Resources, Stage


class QualityFilter(Stage):
    name = "quality_filter"
    resources = Resources(cpus=0.25)
    batch_size = 16

    def process(self, row):
        p, m = self.params, row["meta"]
        q = m.get("quality", {})
        if p["wer"]["enabled"]:
            for role in p["wer"]["roles"]:
                w = q.get(f"wer_{role}")
                if w is not None and w > p["wer"]["max"]:
                    raise Reject("high_wer", f"{role} WER {w:.2f} > {p['wer']['max']}", w)
        s = q.get("prompt_sim")
        if p["prompt_similarity"]["enabled"] and s is not None and s < p["prompt_similarity"]["min"]:
            raise Reject("low_prompt_similarity", f"similarity to the prompt {s:.3f} < {p['prompt_similarity']['min']}", s)
        lo, hi = p["loudness"]["min_lufs_in"], p["loudness"]["max_lufs_in"]
        for role, info in (m.get("loudness") or {}).items():
            if isinstance(info, dict) and info.get("lufs_in") is not None and not lo <= info["lufs_in"] <= hi:
                raise Reject("loudness", f"{role} level {info['lufs_in']} LUFS outside [{lo}, {hi}]", info["lufs_in"])
        return row
