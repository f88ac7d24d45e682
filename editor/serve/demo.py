"""The editor's web page (Gradio, as upstream Step-Audio-EditX ships one): a clone tab and an edit
tab, upload or record, the edit types with their values from the project's tag lists, n_iter,
iterating on the last output, and a history of every version made in this browser session, each
playable and downloadable with what was done to make it.

    demo = Demo(Editor.load(llm_dir))
    demo.launch("127.0.0.1", 7860)          # or: python run.py pipeline=demo [llm=DIR]

Nothing leaves the machine: no telemetry or version check, no share link, the theme's fonts are
served from the gradio package."""
import tempfile
import uuid
from pathlib import Path

import gradio as gr
import soundfile as sf

from core import audio, tags
from editor.llm.editor import EDIT_INFO, EDIT_TYPES, SR, Editor

VALUES = {**EDIT_INFO, "paralinguistic": tags.PARALINGUISTIC_TAGS}   # what the value menu lists per type


def read_clip(path, name: str):
    """An uploaded or recorded file -> (mono float32, its sample rate); the editor checks the rest."""
    if not path:
        raise ValueError(f"{name}: no audio; upload or record a clip")
    if not Path(path).is_file():
        raise ValueError(f"{name}: the uploaded file is gone ({path}); upload it again")
    return audio.decode(Path(path).read_bytes(), name, max_s=Editor.max_edit_s)


def edit_info(edit_type: str, value, tagged_text: str, text: str):
    """The editor's edit_info from the page's widgets. Paralinguistic edits take the new text with
    [Tag] marks: the user's tagged text, or the chosen tag after the words when that box is empty."""
    if edit_type == "paralinguistic":
        return (tagged_text or "").strip() or f"{text} [{value}]"
    return value if edit_type in EDIT_INFO else None


class Demo:
    """One editor behind the page; each browser session keeps its own history (a gr.State list of
    {"n", "path", "text", "what"}: "text" is what the audio says, for the next edit of it)."""

    def __init__(self, editor, workdir=None, max_n_iter: int = 5, seed: int = 0, temperature: float = 0.7):
        self.editor, self.max_n_iter, self.seed, self.temperature = editor, max_n_iter, seed, temperature
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="editor-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)

    def _add(self, history: list, wav, text: str, what: str) -> list:
        n = len(history) + 1
        path = self.workdir / f"v{n}-{uuid.uuid4().hex[:8]}.wav"   # unique across sessions
        sf.write(path, wav, SR, subtype="PCM_16")
        return history + [{"n": n, "path": str(path), "text": text, "what": what}]

    def _sampling(self, seed, temperature) -> tuple[int, float]:
        """The page's seed and temperature boxes; an emptied box (None) means the demo's default."""
        return (int(self.seed if seed is None else seed),
                float(self.temperature if temperature is None else temperature))

    def clone(self, prompt_path, prompt_text, text, seed, temperature, history):
        try:
            wav, sr = read_clip(prompt_path, "prompt audio")
            seed, temperature = self._sampling(seed, temperature)
            out = self.editor.clone(wav, prompt_text, text, prompt_sr=sr, seed=seed, temperature=temperature)
        except ValueError as e:    # bad input: the page says what, the server carries on
            raise gr.Error(str(e), print_exception=False)
        if not len(out):
            raise gr.Error("the model returned no audio; try another seed")
        history = self._add(history, out, text.strip(), f"clone: {text.strip()!r}")
        return history[-1]["path"], history

    def edit(self, src_path, text, edit_type, value, tagged_text, n_iter, from_last, seed, temperature, history):
        try:
            if from_last:
                if not history:
                    raise ValueError("no output yet to iterate on: run a clone or an edit first")
                last = history[-1]
                (wav, sr), text, origin = read_clip(last["path"], f"v{last['n']}"), last["text"], f"v{last['n']}"
            else:
                (wav, sr), text, origin = read_clip(src_path, "source audio"), (text or "").strip(), "the source clip"
            info = edit_info(edit_type, value, tagged_text, text)
            seed, temperature = self._sampling(seed, temperature)
            outs = self.editor.edit(wav, text, edit_type, info, n_iter=int(n_iter or 1), sr=sr, seed=seed,
                                    temperature=temperature)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False)
        said = info if edit_type == "paralinguistic" else text   # the tagged text is now spoken
        what = f"{edit_type}{f' {info!r}' if info else ''} on {origin}"
        for k, wav in enumerate(outs, 1):
            if len(wav):     # an iteration the model ended at once gives no audio: leave it out
                history = self._add(history, wav, said, f"{what}, iteration {k}/{len(outs)}")
        if not any(len(w) for w in outs):
            raise gr.Error("the model returned no audio; try another seed")
        return history[-1]["path"], history

    def blocks(self) -> gr.Blocks:
        audio_in = dict(sources=["upload", "microphone"], type="filepath", buttons=["download"])   # no share button
        # results in the browser's own player: light enough for a long list of versions
        audio_out = dict(type="filepath", interactive=False, buttons=["download"],
                         waveform_options=gr.WaveformOptions(show_recording_waveform=False))
        # no telemetry or version check; gradio's copies of the results older than a day are deleted daily
        with gr.Blocks(title="Speech editor", analytics_enabled=False, delete_cache=(86400, 86400)) as page:
            gr.Markdown("# Speech editor\nClone a voice, or edit a clip's emotion, style, speed, "
                        "non-verbal sounds, noise or silences. Every result is kept below.")
            history = gr.State([])
            with gr.Accordion("Sampling", open=False):
                seed = gr.Number(self.seed, label="seed", precision=0, minimum=0)
                temperature = gr.Slider(0.0, 1.5, self.temperature, step=0.05, label="temperature (0: greedy)")
            with gr.Tab("Edit"):
                with gr.Row():
                    src = gr.Audio(label="source audio (any sample rate)", elem_id="edit_src", **audio_in)
                    with gr.Column():
                        text = gr.Textbox(label="what the source says", elem_id="edit_text")
                        edit_type = gr.Dropdown(list(EDIT_TYPES), value=EDIT_TYPES[0], label="edit type",
                                                elem_id="edit_type")
                        value = gr.Dropdown(list(VALUES[EDIT_TYPES[0]]), value=VALUES[EDIT_TYPES[0]][0],
                                            label="value", elem_id="edit_value")
                        tagged = gr.Textbox(label="new text with [Tag] marks (empty: the tag after the words)",
                                            visible=False, elem_id="edit_tagged")
                        n_iter = gr.Slider(1, self.max_n_iter, 1, step=1, label="iterations (each edits the last)",
                                           elem_id="edit_n_iter")
                        from_last = gr.Checkbox(False, label="iterate on the last output instead of the source",
                                                elem_id="edit_from_last")
                        go = gr.Button("Edit", variant="primary", elem_id="edit_go")
                edit_out = gr.Audio(label="result", elem_id="edit_out", **audio_out)
            with gr.Tab("Clone"):
                with gr.Row():
                    prompt = gr.Audio(label="voice prompt (up to 30 s)", elem_id="clone_prompt", **audio_in)
                    with gr.Column():
                        prompt_text = gr.Textbox(label="what the prompt says", elem_id="clone_prompt_text")
                        new_text = gr.Textbox(label="text to say in that voice", elem_id="clone_text")
                        clone = gr.Button("Clone", variant="primary", elem_id="clone_go")
                clone_out = gr.Audio(label="result", elem_id="clone_out", **audio_out)

            # one model: its requests take turns; the page's own updates skip the queue so they never wait on it
            model = dict(concurrency_id="editor", concurrency_limit=1)
            go.click(self.edit, [src, text, edit_type, value, tagged, n_iter, from_last, seed, temperature, history],
                     [edit_out, history], **model)
            clone.click(self.clone, [prompt, prompt_text, new_text, seed, temperature, history], [clone_out, history],
                        **model)
            edit_type.change(_value_widgets, edit_type, [value, tagged], queue=False)

            gr.Markdown("## Versions (newest first)")

            @gr.render(inputs=history, queue=False)
            def show(versions):
                for v in reversed(versions):
                    gr.Audio(v["path"], label=f"v{v['n']}: {v['what']}", elem_classes="version", **audio_out)
        return page

    def launch(self, host: str = "127.0.0.1", port: int = 7860, max_file_size: str = "50mb", block: bool = True):
        page = self.blocks()
        # ssr_mode off whatever GRADIO_SSR_MODE says: server-side rendering would need a Node server
        page.launch(server_name=host, server_port=port, share=False, show_error=True, max_file_size=max_file_size,
                    allowed_paths=[str(self.workdir)], prevent_thread_lock=not block, quiet=True, ssr_mode=False)
        return page


def _value_widgets(edit_type):
    """The value menu for an edit type (hidden for denoise and vad), and the tagged-text box for
    paralinguistic edits."""
    vals = list(VALUES.get(edit_type, ()))
    return (gr.Dropdown(choices=vals, value=vals[0] if vals else None, visible=bool(vals)),
            gr.Textbox(visible=edit_type == "paralinguistic"))
