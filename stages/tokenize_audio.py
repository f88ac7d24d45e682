"""Stage: every audio member of a sample -> its codec tokens (`<stem>.tok.npy`), the audio LLM's input.

A row's meta holds the source sample's JSON and where its audio lies: `spans` (suffix -> shard, offset,
size inside a release's plain-tar shard, read here so the driver never holds the audio) or
`audio_path` (a user's recording). Each clip is encoded alone, so its tokens never depend on which
other clips shared its batch: a resumed run writes byte-identical members."""
import io

import numpy as np

from core import audio
from core.reader import Span
from core.sample import TOKENS
from stages.base import Reject, Resources, Stage

TOKEN_DTYPE = "<i2"  # the joint vocabulary has 5120 ids


def tokens_npy(ids: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(ids, dtype=TOKEN_DTYPE), allow_pickle=False)
    return buf.getvalue()


class TokenizeAudio(Stage):
    name = "tokenize"
    # a GPU when Ray sees one; CPU actors otherwise (stages/base.map_stages)
    resources = Resources(cpus=1, gpus=1, cpu_fallback=True)
    batch_size = 8

    def setup(self):
        import torch

        from editor.codec import Codec
        device = self.params.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda"):
            torch.backends.cudnn.deterministic = True  # the same clip gives the same ids on every run
            torch.backends.cudnn.benchmark = False
        self.codec = Codec.load(self.params["tokenizer"], device=device)
        self.max_s = self.params.get("max_duration_s")

    def clips(self, row) -> dict[str, np.ndarray]:
        """suffix -> 16 kHz mono float32 audio of each audio member of the row."""
        meta = row["meta"]
        if "audio_path" in meta:
            return {"audio.flac": audio.load(meta["audio_path"], 16000, self.max_s, "filters.max_duration_s")}
        out = {}
        for suffix, (shard, offset, size) in meta["spans"].items():
            x, sr = audio.decode(Span(shard, offset, size).read(), f"{row['key']}.{suffix}")
            out[suffix] = audio.resample(x, sr, 16000)
        return out

    def process(self, row: dict) -> dict:
        tok = self.codec.tokenizer
        counts, seconds = {}, {}
        for suffix, x in self.clips(row).items():
            try:
                (ling, sem), = self.codec.encode([x])
            except ValueError as e:  # shorter than one analysis window
                raise Reject("too_short", f"{row['key']}.{suffix}: {e}") from e
            ids = tok.interleave(ling, sem)
            stem = suffix.split(".")[0]
            row["members"][stem + TOKENS] = tokens_npy(ids)
            counts[stem], seconds[stem] = int(len(ids)), round(len(x) / 16000, 3)
        row["meta"]["token_counts"], row["meta"]["seconds"] = counts, seconds
        return row
