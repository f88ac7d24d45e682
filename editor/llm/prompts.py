"""The two system prompts of the audio LLM, in our own words.

Upstream Step-Audio-EditX uses one system prompt for zero-shot cloning that carries a speaker
block (speaker name, the prompt's text, the prompt's audio tokens) and ONE unified system prompt
for every edit; what to do is said in the user turn. We keep that split. The wording is ours.
The text tokenizer is trained on these strings too, so they cost few tokens.
"""

# Zero-shot TTS. The prompt audio's tokens follow this text, between <|audio_start|> and <|audio_end|>.
CLONE_SYSTEM = ("You are a speech synthesizer. Read the user's text aloud in the voice, prosody and "
                "speaking style of this speaker.\n"
                "Speaker name: {name}\n"
                "Speaker prompt text: {prompt_text}\n"
                "Speaker prompt audio:")

# Every edit (emotion, style, speed, paralinguistic, denoise, silence trimming) shares this prompt.
EDIT_SYSTEM = ("You are an audio editor. The user gives an instruction and a clip of speech as audio "
               "tokens; answer with the edited clip as audio tokens. You can change the emotion, the "
               "speaking style and the speed, add non-verbal sounds, and remove noise or silence. "
               "Keep the speaker's voice and the words unless the instruction says otherwise.")

# Upstream's dialect switch: a tag in front of the text to speak, kept as plain text.
DIALECT_TAGS = ("[Sichuanese]", "[Cantonese]")
