"""The benchmark's judge: classifiers on audio (emotion, speaking style), kept apart from everything
that trains or selects the editor's data. A small CNN over log-mel (a different model family from the
margin scorer's ridge + boosting over pair features), trained on its own factory runs with its own
voices (voice_bank.pool=judge) and its own texts (data/judge_texts). See docs/judge.md.

    judge = LocalJudge.load("scorers/artifacts/judge-v2")     # or HttpJudge("http://127.0.0.1:8766")
    judge.classify("clip.flac", "emotion")                     # {"neutral": 0.1, "happy": 0.7, ...}
"""
from scorers.judge.labels import TASKS, check_task
from scorers.judge.local import LocalJudge

__all__ = ["TASKS", "check_task", "LocalJudge"]
