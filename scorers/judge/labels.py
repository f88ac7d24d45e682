"""The judge's tasks and their classes: the seed's five emotions and seven speaking styles (its
Step-Audio-Edit-Test categories), each plus neutral, so an edit that did nothing is visible as such; and the ten paralinguistic events, so the
paralinguistic scorer can tell which sound an edit inserted."""

TASKS = {
    "emotion": ("neutral", "happy", "angry", "sad", "fear", "surprised"),
    "style": ("neutral", "child", "older", "exaggerated", "recite", "generous", "act_coy", "whisper"),
    # which paralinguistic event a sound is (the seed's ten NVSpeech tags): names the events the
    # paralinguistic scorer finds; no neutral, since the scorer has already found a new sound there
    "vocalization": ("Breathing", "Laughter", "Surprise-oh", "Confirmation-en", "Uhm", "Surprise-ah", "Surprise-wa",
                     "Sigh", "Question-ei", "Dissatisfaction-hnn"),
}
# which factory pipeline renders a task's tagged clips
PIPELINE_OF = {"emotion": "emotion_triplets", "style": "style_triplets"}


def check_task(task) -> str:
    if task not in TASKS:
        raise ValueError(f"task {str(task)[:40]!r}: unknown; use one of {sorted(TASKS)}")
    return task
