"""Stages: the audio LLM over rows of a release, edits (`LlmEdit`) or zero-shot clones (`LlmClone`).

A row's meta holds the source sample's JSON and where its audio members lie (`spans`, as for the
tokenizer stage) or the path of a user's clip (`audio_path`, pipeline=edit source=folder). Every row
of a batch is checked alone first (a bad one is a reject with the reason), then the good ones decode
together (Editor.edit_many / clone_many). Outputs are members:
`edit1.flac`, `edit2.flac`, ... (one per iteration) or `clone.flac`."""
import time

from core import audio
from stages.base import BAD_INPUT, Resources, Stage
from core.reader import Span


def edit_request(j: dict, wav, p: dict) -> dict:
    """The Editor request a sample asks for: its own edit type and tag (a paralinguistic edit's tag is
    the tagged text it should say)."""
    info = j.get("text_with_tags") if j["edit_type"] == "paralinguistic" else j.get("edit_info")
    return {"wav": wav, "text": j["text"], "edit_type": j["edit_type"], "edit_info": info, "n_iter": p["n_iter"],
            "prompt_fixed": p["prompt_fixed"], "seed": p["seed"], "temperature": p["temperature"]}


class _LlmStage(Stage):
    resources = Resources(cpus=1, gpus=1, cpu_fallback=True)
    batch_size = 16

    def setup(self):
        from editor.llm.editor import Editor
        self.editor = Editor.load(self.params["llm"], device=self.params.get("device") or "auto")

    def audio(self, row, suffix: str):
        """The member decoded at 16 kHz; its bytes join the output as they are (read once). A user's clip
        (`audio_path`: pipeline=edit source=folder) is read from its file within the editor's limit and
        joins as FLAC of its 16 kHz audio."""
        if path := row["meta"].get("audio_path"):
            x = audio.load(path, 16000, self.editor.max_edit_s, "Editor.max_edit_s")
            row["members"][suffix] = audio.encode_flac(x, 16000)
            return x
        raw = row["members"][suffix] = Span(*row["meta"]["spans"][suffix]).read()
        x, sr = audio.decode(raw, f"{row['key']}.{suffix}")
        return audio.resample(x, sr, 16000)

    def process_rows(self, rows: list[dict]) -> list[dict]:
        good, requests = [], []
        for row in rows:
            if row.get("reject"):
                continue
            try:
                requests.append(self.check(self.request(row)))
                good.append(row)
            except audio.TooLong as e:
                row["reject"] = {"stage": self.name, "reason": "too_long", "detail": str(e), "value": e.seconds}
            except BAD_INPUT as e:
                row["reject"] = {"stage": self.name, "reason": "bad_input", "detail": f"{type(e).__name__}: {e}",
                                 "value": None}
        if good:
            t = time.perf_counter()
            try:
                outs = self.run(requests)
            except ValueError:     # checked requests should not fail; if one does, only it is rejected
                outs = [self._alone(row, r) for row, r in zip(good, requests)]
            for row, out in zip(good, outs):
                if out is not None:
                    self.store(row, out)
            # the batch's time, shared out over its rows (run.json's stage_cpu_s sums them)
            share = round((time.perf_counter() - t) / len(good), 4)
            for row in good:
                row["meta"].setdefault("_timings", {})[self.name] = share
        return rows

    def _alone(self, row, request):
        try:
            return self.run([request])[0]
        except ValueError as e:
            row["reject"] = {"stage": self.name, "reason": "bad_input", "detail": f"{row['key']}: {e}", "value": None}
            return None


class LlmEdit(_LlmStage):
    name = "llm_edit"

    def request(self, row):
        return edit_request(row["meta"]["json"], self.audio(row, "src.flac"), self.params)

    def check(self, r):
        from editor.llm.editor import edit_request
        edit_request(**r)
        return r

    def run(self, requests):
        return self.editor.edit_many(requests)

    def store(self, row, outs):
        if not all(len(y) for y in outs):
            return _empty(row, self.name, f"iteration {next(k for k, y in enumerate(outs, 1) if not len(y))}")
        for k, y in enumerate(outs, 1):
            row["members"][f"edit{k}.flac"] = audio.encode_flac(y, 16000)
        row["meta"]["seconds"] = {f"edit{k}": round(len(y) / 16000, 3) for k, y in enumerate(outs, 1)}


class LlmClone(_LlmStage):
    name = "llm_clone"

    def request(self, row):
        j = row["meta"]["json"]
        return {"prompt_wav": self.audio(row, "prompt.flac"), "prompt_text": j["prompt"]["text"], "text": j["text"],
                "speaker_name": j["speaker"], "seed": self.params["seed"], "temperature": self.params["temperature"]}

    def check(self, r):
        from editor.llm.editor import clone_request
        clone_request(**r)
        return r

    def run(self, requests):
        return self.editor.clone_many(requests)

    def store(self, row, y):
        if not len(y):
            return _empty(row, self.name, "the clone")
        row["members"]["clone.flac"] = audio.encode_flac(y, 16000)
        row["meta"]["seconds"] = {"clone": round(len(y) / 16000, 3)}


def _empty(row, stage: str, what: str):
    """The model ended at once (<|eos|> first): no audio to keep, a reject with the reason."""
    row["reject"] = {"stage": stage, "reason": "empty_output", "detail": f"{row['key']}: {what} came out empty",
                     "value": None}
