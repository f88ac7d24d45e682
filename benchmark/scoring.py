"""One benchmark cell's numbers for one clip: the judge's verdict, speaker similarity to the chain's
Iter0 (resemblyzer), English WER (pocketsphinx), or the paralinguistic 1-3 score (its events named by
the judge's vocalization task when the judge has one).

A failed clip is a cell too: wrong for the judge, score 1 for paralinguistics (the seed's "failed"),
no similarity or WER, and the reason kept. A clip the judge refuses (JudgeRefused, e.g. an external
judge that will not take it) is a failure of that cell with the judge's reason; a judge that cannot
be reached stops the run (nothing would be scored)."""
import weakref

import numpy as np

from benchmark.editors import SR, Failed

WER_LANGUAGES = ("en",)     # pocketsphinx's model is English
MIN_EVENT_CLIP_S = 1.0      # an event is named from at least this much audio: its own, centred in silence


def event_clip(segment) -> np.ndarray:
    """An event cut from an edit, centred in silence up to MIN_EVENT_CLIP_S (the judge's network pools
    over time and needs a few frames; its training clips have silence around the event too)."""
    x = np.asarray(segment, np.float32)
    short = max(0, int(MIN_EVENT_CLIP_S * SR) - len(x))
    return np.pad(x, (short // 2, short - short // 2))


class Scorer:
    def __init__(self, judge, similarity: bool = True, wer: bool = True):
        self.judge, self.similarity, self.wer = judge, similarity, wer
        self._encoder = None
        self._memo = {}     # one clip is in several rows (Iter0 of every run that starts from it): measured once

    def _once(self, kind: str, y, fn):
        """fn() for this clip object, computed once while the clip lives (its entry goes with it, so a
        later clip given the same id never finds it)."""
        key = (kind, id(y))
        if key not in self._memo:
            self._memo[key] = fn()
            weakref.finalize(y, self._memo.pop, key, None)
        return self._memo[key]

    def embedding(self, y) -> np.ndarray | None:
        if not self.similarity or isinstance(y, Failed):
            return None
        from resemblyzer import VoiceEncoder, preprocess_wav
        self._encoder = self._encoder or VoiceEncoder("cpu", verbose=False)
        return self._once("embedding", y, lambda: self._encoder.embed_utterance(
            preprocess_wav(np.asarray(y, np.float32), source_sr=SR)))

    def _common(self, y, p: dict, ref_embedding) -> dict:
        out = {}
        emb = self.embedding(y)
        if emb is not None and ref_embedding is not None:
            out["similarity"] = round(float(emb @ ref_embedding), 4)
        if self.wer and p["language"] in WER_LANGUAGES:
            from scorers.asr import wer_of
            out["wer"] = self._once(f"wer/{p['text']}", y, lambda: round(wer_of(np.asarray(y, np.float32), SR, p["text"]), 4))
        return out

    def judged(self, y, p: dict, ref_embedding=None) -> dict:
        """Emotion or style cell: predicted class, the label's probability, correct or not."""
        if isinstance(y, Failed):
            return {"correct": False, "failed": y.reason}
        try:
            probs = self._once(f"judge/{p['category']}", y, lambda: self.judge.classify((np.asarray(y, np.float32), SR),
                                                                                     p["category"]))
        except ValueError as e:   # JudgeRefused and the local judge's bad-input errors are ValueErrors
            return {"correct": False, "failed": f"judge: {e}"}
        pred = max(probs, key=probs.get)
        return {"correct": pred == p["label"], "predicted": pred, "p_label": round(float(probs.get(p["label"], 0.0)), 4),
                **self._common(y, p, ref_embedding)}

    def paralinguistic(self, source, y, p: dict, ref_embedding=None) -> dict:
        """Paralinguistic cell: the 1-3 score of y as an edit of `source` adding p's tags."""
        from scorers.judge.paralinguistic import score
        if isinstance(y, Failed):
            return {"score": 1, "failed": y.reason}
        if isinstance(source, Failed):
            return {"score": 1, "failed": f"no source: {source.reason}"}
        r = score(source, y, p["text_with_tags"], name_event=self._name_event())
        return {"score": r["score"], "found": r["found"], "wrong_type": r["wrong_type"], "missing": r["missing"],
                "match_cost": r["match_cost"], "type_checked": r["type_checked"], **self._common(y, p, ref_embedding)}

    def _name_event(self):
        """The judge's vocalization task as the scorer's event namer, when the judge has one."""
        if self.judge is None or "vocalization" not in self.judge.tasks:
            return None

        def name(segment):
            probs = self.judge.classify((event_clip(segment), SR), "vocalization")
            return max(probs, key=probs.get)
        return name
