"""Edit tags and the instruction phrasing of upstream Step-Audio-EditX.

The tag names and their meanings come from the upstream README's tag table.
"""

EMOTIONS = (
    "happy", "angry", "sad", "fear", "surprised", "confusion", "empathy", "embarrass",
    "excited", "depressed", "admiration", "coldness", "disgusted", "humour",
)

STYLES = (
    "serious", "arrogant", "child", "older", "girl", "pure", "sister", "sweet", "exaggerated",
    "ethereal", "whisper", "generous", "recite", "act_coy", "warm", "shy", "comfort",
    "authority", "chat", "radio", "soulful", "gentle", "story", "vivid", "program", "news",
    "advertising", "roar", "murmur", "shout", "deeply", "loudly",
)

NEUTRAL = "neutral"
LANGUAGES = ("en", "zh", "yue")


def edit_type_of(tag: str) -> str:
    if tag in EMOTIONS:
        return "emotion"
    if tag in STYLES:
        return "style"
    raise ValueError(f"unknown tag {tag!r}")


SPEED_TAGS = ("faster", "slower", "more faster", "more slower")
PARALINGUISTIC_TAGS = ("Breathing", "Laughter", "Surprise-oh", "Confirmation-en", "Uhm", "Surprise-ah",
                       "Surprise-wa", "Sigh", "Question-ei", "Dissatisfaction-hnn")


def instruction(edit_type: str, tag: str | None, text: str, new_text: str | None = None) -> str:
    """The upstream edit prompts (Step-Audio-EditX's instruction builder), one per edit type."""
    if edit_type in ("emotion", "speed"):  # upstream phrases speed edits like emotions
        return f"Make the following audio more {tag}. The text corresponding to the audio is: {text}"
    if edit_type == "style":
        return f"Make the following audio more {tag} style. The text corresponding to the audio is: {text}"
    if edit_type == "denoise":
        return ("Remove any noise from the given audio while preserving the voice content clearly. Ensure that "
                "the speech quality remains intact with minimal distortion, and eliminate all noise from the audio.")
    if edit_type == "vad":
        return ("Remove any silent portions from the given audio while preserving the voice content clearly. "
                "Ensure that the speech quality remains intact with minimal distortion, and eliminate all "
                "silence from the audio.")
    if edit_type == "paralinguistic":
        return (f"Add some non-verbal sounds to make the audio more natural, the new text is : {new_text}\n"
                f"  The text corresponding to the audio is: {text}")
    raise ValueError(f"no instruction template for edit_type {edit_type!r}")


def speed_tag(factor: float, more_above: float = 1.3) -> str:
    """Upstream speed values by factor bucket: beyond 1.3x (or below 1/1.3) is 'more'."""
    if factor > 1:
        return "more faster" if factor > more_above else "faster"
    if factor < 1:
        return "more slower" if factor < 1 / more_above else "slower"
    raise ValueError("speed factor 1.0 is no edit")


def check_tags(requested, allowed, what: str) -> list[str]:
    """Unknown tags are a configuration error, raised before any work starts."""
    requested = list(requested)
    unknown = [t for t in requested if t not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known {what}: {', '.join(allowed)}")
    if not requested:
        raise ValueError(f"no {what} selected")
    return requested


def check_languages(requested) -> list[str]:
    requested = list(requested)
    unknown = [l for l in requested if l not in LANGUAGES]
    if unknown:
        raise ValueError(f"unknown languages {unknown}; supported: {', '.join(LANGUAGES)}")
    if not requested:
        raise ValueError("no languages selected")
    return requested
