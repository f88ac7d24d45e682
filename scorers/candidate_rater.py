"""The machine rater of preference candidates: each answer of the editor to one prompt scored 1-10
against what it was made from (the seed's LLM-judge role), by a measurable rule per task.

    emotion_edit, style_edit  the shipped learned margin scorer (scorers/margin.py) on (source, answer,
                              tag): how strongly the answer expresses the tag over the neutral source
                              while keeping the speaker; its own 1-10 scale
    paralinguistic_edit       the paralinguistic 1-3 score (scorers/judge/paralinguistic.py) of the
                              answer as an edit of the source adding the tagged events, mapped
                              1 -> 1, 2 -> 5.5, 3 -> 10: only "perfect vs failed" exceeds a margin of 8
    speed_edit                the answer's duration over the source's against the requested factor
                              (a factor f asks for 1/f of the duration): 10 when exact, falling
                              linearly in |log error| to 1 at a factor of 2 off. Blind to content: a
                              stretched garble of the right length rates high (the margin scorer has
                              no speed tags to do better)
    clone                     resemblyzer speaker similarity of the answer to the voice prompt, mapped
                              linearly from [0.5, 0.95] to [1, 10] (clipped): 0.5 is about two
                              different speakers, 0.95 the same speaker read twice
    denoise, silence_trim     not rated: the prompt keeps no clean or trimmed reference to measure
                              against, and the margin scorer has no such tags; their candidates are
                              kept (people can rate them) and the skip is counted with this reason

Each rule has a version (`rater_id`); it joins the sample keys, so changing a rule re-rates."""
import math

import numpy as np

SR = 16000
SPEED_RULE = "speed-duration-v1"
CLONE_RULE = "clone-resemblyzer-v1"
PARA_RULE = "paralinguistic-1to3-v1"
CLONE_SIM_RANGE = (0.5, 0.95)
NOT_RATED = {
    "denoise": "no machine rater for denoise: the prompt keeps no clean reference to measure against",
    "silence_trim": "no machine rater for silence_trim: the prompt keeps no trimmed reference to measure against",
}


def to_scale(value: float, lo: float, hi: float) -> float:
    """value in [lo, hi] -> [1, 10], clipped."""
    return float(1.0 + 9.0 * np.clip((value - lo) / (hi - lo), 0.0, 1.0))


def speed_score(src_s: float, answer_s: float, factor: float) -> float:
    err = abs(math.log(max(answer_s, 1e-3) / max(src_s, 1e-3)) + math.log(factor))
    return float(10.0 - 9.0 * min(1.0, err / math.log(2.0)))


class CandidateRater:
    """rate(task, source, answers, info) -> [(score 1-10 or None, detail dict)] per answer; rater_id(task)
    -> "machine:<rule version>" or None (not rated). `info`: the prompt's text, language, edit_info,
    text_with_tags (paralinguistic), factor (speed)."""

    def __init__(self, margin_artifact=None):
        from scorers.margin import MarginScorer
        self.margin = MarginScorer.load(margin_artifact)
        self._encoder = None

    def rater_id(self, task: str) -> str | None:
        rule = {"emotion_edit": self.margin.version, "style_edit": self.margin.version,
                "paralinguistic_edit": PARA_RULE, "speed_edit": SPEED_RULE, "clone": CLONE_RULE}.get(task)
        return f"machine:{rule}" if rule else None

    def skip_reason(self, task: str, info: dict) -> str | None:
        """Why this prompt's answers get no score, or None."""
        if task in NOT_RATED:
            return NOT_RATED[task]
        if task in ("emotion_edit", "style_edit") and info.get("edit_info") not in self.margin.ridges:
            return f"margin scorer {self.margin.version} was not trained on tag {info.get('edit_info')!r}"
        if self.rater_id(task) is None:
            return f"no machine rater for task {task}"
        return None

    def _embed(self, x: np.ndarray) -> np.ndarray:
        from resemblyzer import VoiceEncoder, preprocess_wav
        self._encoder = self._encoder or VoiceEncoder("cpu", verbose=False)
        return self._encoder.embed_utterance(preprocess_wav(np.asarray(x, np.float32), source_sr=SR))

    def rate(self, task: str, source: np.ndarray, answers: list[np.ndarray], info: dict) -> list[tuple]:
        if task in ("emotion_edit", "style_edit"):
            return self._margin(source, answers, info)
        if task == "paralinguistic_edit":
            from scorers.judge.paralinguistic import score
            out = []
            for y in answers:
                r = score(source, y, info["text_with_tags"])
                out.append((1.0 + 4.5 * (r["score"] - 1), {"score_1to3": r["score"], "found": r["found"],
                                                            "missing": r["missing"], "match_cost": r["match_cost"]}))
            return out
        if task == "speed_edit":
            src_s = len(source) / SR
            return [(speed_score(src_s, len(y) / SR, float(info["factor"])),
                     {"duration_ratio": round(len(y) / SR / src_s, 4), "factor": float(info["factor"])}) for y in answers]
        if task == "clone":
            ref = self._embed(source)
            sims = [float(self._embed(y) @ ref) for y in answers]
            return [(to_scale(s, *CLONE_SIM_RANGE), {"similarity": round(s, 4)}) for s in sims]
        raise ValueError(f"no machine rater for task {task}")

    def _margin(self, source, answers, info):
        from stages.measure_pair import clip_stats
        text, lang = info["text"], info["language"]
        src_stats, ref = clip_stats(source, SR, text, lang), self._embed(source)
        acoustics, sims = [], []
        for y in answers:
            acoustics.append({"src": src_stats, "tgt": clip_stats(y, SR, text, lang)})
            sims.append(float(self._embed(y) @ ref))
        scores = self.margin.score(acoustics, [info["edit_info"]] * len(answers), sims)
        return [(float(s), {"speaker_sim": round(sim, 4)}) for s, sim in zip(scores, sims)]
