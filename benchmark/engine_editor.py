"""The factory engine as an editor: the ceiling the LLM is taught towards.

Its clone is the engine's zero-shot clone (the voicing estimated from the prompt, rendered on the
language's base voice). Its edit estimates the input clip's voicing the same way and renders the text
again with the tag's preset added (intensity 1), which is how the factory makes an edit target;
a paralinguistic edit renders the tagged text with the engine's vocalizations at their places. Every
edit starts from the input audio, so iterating it stacks presets as iterating any editor would."""
from benchmark.editors import BenchmarkEditor


class EngineEditor(BenchmarkEditor):
    name = "factory_engine"

    def __init__(self, engine=None):
        if engine is None:
            from tts.engine import LocalEngine
            engine = LocalEngine(16000)
        self.engine = engine
        self._vocalizer = None

    def clone(self, prompt_wav, prompt_text, text, language="en", seed=0):
        return self.engine.clone(prompt_wav, prompt_text, text, language, seed=seed)[0]

    def edit(self, wav, text, edit_type, edit_info, language="en", seed=0):
        from tts.presets import preset
        v, gain = self.engine.prompt_voicing(wav, text, language)
        v = v.replace(gain_db=gain)
        if edit_type == "paralinguistic":
            from tts.vocalizations import Vocalizer, render_tagged
            self._vocalizer = self._vocalizer or Vocalizer(self.engine)
            return render_tagged(self.engine, edit_info, language, v, None, seed=seed, vocalizer=self._vocalizer)[0]
        if edit_type not in ("emotion", "style"):
            raise ValueError(f"edit_type {edit_type!r}: the factory engine renders emotion, style and paralinguistic edits")
        return self.engine.render(text, language, v + preset(edit_info, 1.0), None, seed)
