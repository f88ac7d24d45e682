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


def instruction(edit_type: str, tag: str, text: str) -> str:
    """The upstream edit prompt: 'Make the following audio more <tag>[ style]. ...'."""
    if edit_type == "emotion":
        return f"Make the following audio more {tag}. The text corresponding to the audio is: {text}"
    if edit_type == "style":
        return f"Make the following audio more {tag} style. The text corresponding to the audio is: {text}"
    raise ValueError(f"no instruction template for edit_type {edit_type!r}")


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
