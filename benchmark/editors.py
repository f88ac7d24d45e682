"""What the benchmark scores: any editor with clone and edit that return 16 kHz float audio.

    clone(prompt_wav, prompt_text, text, language=..., seed=...) -> audio saying `text` in the prompt's voice
    edit(wav, text, edit_type, edit_info, language=..., seed=...) -> the edited audio

edit_type is emotion or style (edit_info the tag) or paralinguistic (edit_info the text with [Tag]
marks). clone_many/edit_many take lists of those keyword dicts; an editor that can batch overrides
them. Outputs are checked by `checked` (empty, NaN, silent, too short or too long is a failure with
its reason), and one request that raises fails alone: a bad editor is scored, never a crash."""

import numpy as np

SR = 16000
MIN_S = 0.3          # shorter than this cannot say a benchmark sentence
MAX_S = 60.0         # the judge refuses longer clips; a run-away editor is a failure, not a long wait


class Failed:
    """A benchmark cell the editor did not fill, with the reason (shown in results.json and tables)."""

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self):
        return f"Failed({self.reason!r})"


def checked(y) -> np.ndarray | Failed:
    """An editor's answer as mono float32, or Failed saying what is wrong with it."""
    if isinstance(y, Failed):
        return y
    try:
        x = np.asarray(y, dtype=np.float32)
    except (TypeError, ValueError) as e:
        return Failed(f"not audio ({type(y).__name__}: {e})")
    if x.ndim != 1:
        return Failed(f"not a mono 1-D waveform (shape {x.shape})")
    if len(x) == 0:
        return Failed("empty audio")
    if not np.isfinite(x).all():
        return Failed("NaN or infinite samples")
    if len(x) < MIN_S * SR:
        return Failed(f"too short ({len(x) / SR:.2f} s)")
    if len(x) > MAX_S * SR:
        return Failed(f"too long ({len(x) / SR:.1f} s, limit {MAX_S:g} s)")
    if np.max(np.abs(x)) < 1e-4:
        return Failed("silent")
    return x


class BenchmarkEditor:
    """Base of the editors: one-at-a-time batching and failure capture."""
    name = "editor"

    def clone(self, prompt_wav, prompt_text, text, language="en", seed=0):
        raise NotImplementedError

    def edit(self, wav, text, edit_type, edit_info, language="en", seed=0):
        raise NotImplementedError

    def clone_many(self, requests: list[dict]) -> list:
        return [self.clone(**r) for r in requests]

    def edit_many(self, requests: list[dict]) -> list:
        return [self.edit(**r) for r in requests]


def run_safely(editor: BenchmarkEditor, method: str, requests: list[dict]) -> list[np.ndarray | Failed]:
    """editor.<method>_many over the requests; if the batch raises, each request alone, so that one
    bad request fails by itself with its error as the reason."""
    if not requests:
        return []
    try:
        outs = getattr(editor, f"{method}_many")(requests)
        if len(outs) != len(requests):
            raise RuntimeError(f"{method}_many answered {len(outs)} clips for {len(requests)} requests")
        return [checked(y) for y in outs]
    except Exception:      # noqa: BLE001 - the editor under test may fail any way; retried one by one
        pass
    res = []
    for r in requests:
        try:
            res.append(checked(getattr(editor, method)(**r)))
        except Exception as e:  # noqa: BLE001 - scored as a failure with its reason
            res.append(Failed(f"{type(e).__name__}: {str(e)[:200]}"))
    return res


class IdentityEditor(BenchmarkEditor):
    """The no-edit baseline: an edit returns its input. Its clone is the factory engine's (an identity
    has nothing to say a new text with), so its Iter0 says the benchmark text like every other's."""
    name = "identity"

    def __init__(self, cloner: BenchmarkEditor):
        self.cloner = cloner

    def clone(self, prompt_wav, prompt_text, text, language="en", seed=0):
        return self.cloner.clone(prompt_wav, prompt_text, text, language=language, seed=seed)

    def clone_many(self, requests):
        return self.cloner.clone_many(requests)

    def edit(self, wav, text, edit_type, edit_info, language="en", seed=0):
        return np.asarray(wav, np.float32).copy()


class LlmEditor(BenchmarkEditor):
    """The project's audio LLM (editor.llm.editor.Editor). The benchmark drives the iterations itself
    (one edit per call), so every editor is iterated the same way."""

    def __init__(self, editor, name: str, temperature: float = 0.7):
        self.editor, self.name, self.temperature = editor, name, temperature

    @classmethod
    def load(cls, llm_dir, device="auto", temperature: float = 0.7, quantize: str | None = None) -> "LlmEditor":
        from benchmark.choose import editor_name
        from editor.llm.editor import Editor
        return cls(Editor.load(llm_dir, device=device, quantize=quantize), editor_name(llm_dir, quantize), temperature)

    def clone(self, prompt_wav, prompt_text, text, language="en", seed=0):
        return self.clone_many([dict(prompt_wav=prompt_wav, prompt_text=prompt_text, text=text, seed=seed)])[0]

    def edit(self, wav, text, edit_type, edit_info, language="en", seed=0):
        return self.edit_many([dict(wav=wav, text=text, edit_type=edit_type, edit_info=edit_info, seed=seed)])[0]

    def clone_many(self, requests):
        return self.editor.clone_many([{"prompt_wav": r["prompt_wav"], "prompt_text": r["prompt_text"], "text": r["text"],
                                        "seed": r.get("seed", 0), "temperature": self.temperature} for r in requests])

    def edit_many(self, requests):
        outs = self.editor.edit_many([{"wav": r["wav"], "text": r["text"], "edit_type": r["edit_type"],
                                       "edit_info": r["edit_info"], "seed": r.get("seed", 0),
                                       "temperature": self.temperature} for r in requests])
        return [o[0] for o in outs]
