"""Stage: K answers of the audio LLM to one chat prompt (pipeline=preference_pairs), as audio and ids.

A row's meta holds the prompt (`example`: a chat example of editor/llm/data.py, its source as codec
ids), the seeds of its K answers and where the reference clip lies (`ref_span`: the edit's source or
the clone's voice prompt in the audio release the token release was made from). The decoder takes
the voice from that clip, as Editor.edit/clone do.

Members: `src.flac` is the prompt's own source ids decoded the same way (the codec round trip), so the
rater compares answers with a source that passed the same codec and not with the cleaner original;
`cand<i>.flac` and `cand<i>.tok.npy` are answer i. An answer that ends at once (<|eos|> first) has no
audio and is left out; a prompt with fewer than two answers left can make no pair and is a reject."""
import io
import time

import numpy as np

from core import audio
from core.reader import Span
from editor.llm.editor import MAX_CHAR_S
from stages.base import BAD_INPUT, Resources, Stage


def npy(ids) -> bytes:
    """Codec ids as a token release stores them (int16 .npy)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(ids, dtype="<i2"))
    return buf.getvalue()


class LlmCandidates(Stage):
    name = "llm_candidates"
    resources = Resources(cpus=1, gpus=1, cpu_fallback=True)
    batch_size = 2      # rows of K answers each: K=8 fills the editor's decode batch of 16

    def setup(self):
        from editor.llm.editor import Editor
        self.editor = Editor.load(self.params["llm"], device=self.params.get("device") or "auto")

    def _prompt(self, row):
        """(prompt ids, answer length limit, reference frames) of a row, or a ValueError."""
        from editor.llm import chat
        m, ed = row["meta"], self.editor
        ex = {**m["example"], "source_tokens": np.asarray(m["example"]["source_tokens"], np.int64)}
        x, sr = audio.decode(Span(*m["ref_span"]).read(), f"{row['key']} reference")
        ref = ed.codec.analyze(audio.resample(x, sr, 16000))
        src = ex["source_tokens"]
        if ex["system"] == "clone":   # the prompt's speaking rate (capped), doubled, as Editor.clone_many bounds it
            tps = ed.codec.tokenizer.tokens_per_second()["interleaved"]
            per_char = min(len(src) / len(ex["speaker"]["prompt_text"]), MAX_CHAR_S * tps)
            limit = ed._limit(per_char * len(ex["target_text"]) * 2)
        else:                         # room for "more slower", as Editor.edit_many bounds it
            limit = ed._limit(2 * len(src))
        prompt = chat.build_prompt(ex, ed.vocab)
        return prompt, max(ed.layout.block, min(limit, ed._room(len(prompt)))), ref   # within the model's positions

    def process_rows(self, rows: list[dict]) -> list[dict]:
        from editor.llm.editor import _seed
        t0 = time.perf_counter()
        good, prompts, limits, seeds, refs, keys = [], [], [], [], [], []
        for row in rows:
            if row.get("reject"):
                continue
            try:
                prompt, limit, ref = self._prompt(row)
            except BAD_INPUT as e:
                row["reject"] = {"stage": self.name, "reason": "bad_input", "detail": f"{type(e).__name__}: {e}",
                                 "value": None}
                continue
            good.append(row)
            for s in row["meta"]["seeds"]:
                prompts.append(prompt), limits.append(limit), seeds.append(_seed(s)), refs.append(ref)
                keys.append((row["key"], s))
        if not good:
            return rows
        temp = float(self.params["temperature"])
        # no negatives: the answers sample the model's own distribution, whatever guidance its
        # inference.json sets for users, since preference training learns from the policy's samples
        sink = self.editor._sink()
        ids = self.editor._generate(prompts, limits, seeds, [temp] * len(prompts), refs=refs, sink=sink, keys=keys)
        first_ref = {k[0]: r for k, r in zip(keys, refs)}
        sink.put([(row["key"], "src") for row in good],
                 [np.asarray(row["meta"]["example"]["source_tokens"], np.int64) for row in good],
                 [first_ref[row["key"]] for row in good])
        wavs = sink.collect()
        answers = dict(zip(keys, ids))
        for row in good:
            self._store(row, wavs, answers)
            # the batch's time shared by its rows, as the runner sums every stage's CPU seconds
            row["meta"].setdefault("_timings", {})[self.name] = round((time.perf_counter() - t0) / len(good), 4)
        return rows

    def _store(self, row, wavs, answers):
        m, key = row["meta"], row["key"]
        src = wavs[(key, "src")]
        row["members"]["src.flac"] = audio.encode_flac(src, 16000)
        m["seconds"] = {"src": round(len(src) / 16000, 3)}
        m["answers"], m["empty_answers"] = [], 0
        for s in m["seeds"]:
            y, ids = wavs[(key, s)], answers[(key, s)]
            if not len(ids) or not len(y):
                m["empty_answers"] += 1
                continue
            stem = f"cand{len(m['answers'])}"
            row["members"][f"{stem}.flac"] = audio.encode_flac(y, 16000)
            row["members"][f"{stem}.tok.npy"] = npy(ids)
            m["seconds"][stem] = round(len(y) / 16000, 3)
            m["answers"].append({"member": f"{stem}.flac", "seed": s})
        if len(m["answers"]) < 2:
            row["reject"] = {"stage": self.name, "reason": "too_few_answers", "value": len(m["answers"]),
                             "detail": f"{key}: {len(m['answers'])} of {len(m['seeds'])} answers are not empty; "
                                       "a pair needs two"}
