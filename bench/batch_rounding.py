"""What batching changes in an answer when no batch-mate's data leaks in: float rounding (docs/serving.md).

    python bench/batch_rounding.py OUT_JSON

1. The shipped codec: two clips (0.6 s, 1.4 s) decoded alone and together; the largest sample
   difference per clip and where in the clip it lies (by fifths of its length).
2. A random tiny LLM (the tests' tiny_llm, seed 0) through the Editor: 12 edits (the serving test's
   requests) decoded together and each alone; per edit whether the tokens are the same, and the
   longest prefix an edit's lone tokens share with its batched answer. Again with the output layer
   scaled 20x, whose sharper distributions leave no near-ties for rounding to decide.
One torch thread, CPU."""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from conftest import tiny_llm, voiced  # noqa: E402
from editor.artifacts import SHIPPED_DECODER, SHIPPED_TOKENIZER  # noqa: E402
from editor.codec import Codec  # noqa: E402
from editor.llm import model as llm_model  # noqa: E402
from editor.llm.editor import Editor  # noqa: E402

KINDS = [("emotion", "happy"), ("style", "whisper"), ("speed", "faster"), ("denoise", None)]


def codec_rounding() -> list[dict]:
    c = Codec.load(SHIPPED_TOKENIZER, SHIPPED_DECODER, device="cpu")
    wavs = [voiced(0.6, seed=1), voiced(1.4, seed=2)]
    frames = c.analyze_many(wavs)
    codes = c.encode_frames(frames)
    both = c.decode(codes, frames)
    out = []
    for i in range(len(wavs)):
        d = np.abs(np.asarray(c.decode([codes[i]], [frames[i]])[0]) - np.asarray(both[i]))
        fifths = [round(float(p.max()), 5) for p in np.array_split(d, 5)]
        out.append({"seconds": len(wavs[i]) / 16000, "max_diff": round(float(d.max()), 5), "max_diff_by_fifth": fifths})
    return out


def llm_rounding(scale: float) -> dict:
    d = tiny_llm(Path(tempfile.mkdtemp()))
    if scale != 1:
        model, vocab = llm_model.load(d)[:2]
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(scale)
        llm_model.save(model, vocab, d)
    ed = Editor.load(d, device="cpu")
    edits = [dict(wav=voiced(0.4 + 0.03 * i, seed=i), text="" if KINDS[i % 4][0] == "denoise" else "hello there",
                  edit_type=KINDS[i % 4][0], edit_info=KINDS[i % 4][1], seed=i) for i in range(12)]
    ids = []
    real = ed._decode
    ed._decode = lambda ids_list, refs: ids.extend(np.array(i) for i in ids_list) or real(ids_list, refs)
    ed.edit_many(edits)
    batched = list(ids)
    rows = []
    for i, r in enumerate(edits):
        ids.clear()
        ed.edit_many([r])
        alone = ids[0]
        prefix = max(int(np.cumprod(b[:len(alone)] == alone[:len(b)]).sum()) for b in batched)
        rows.append({"edit": i, "tokens": len(alone), "same_tokens": prefix == len(alone) and
                     any(np.array_equal(b, alone) for b in batched), "shared_prefix": prefix})
    return {"output_scale": scale, "same": sum(r["same_tokens"] for r in rows), "of": len(rows), "edits": rows}


def main(out: Path):
    torch.set_num_threads(1)
    res = {"command": "python " + " ".join(sys.argv), "codec_decode_alone_vs_together": codec_rounding(),
           "tiny_llm_alone_vs_among_12": [llm_rounding(1.0), llm_rounding(20.0)]}
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "tiny_llm_alone_vs_among_12"}, indent=1))
    for r in res["tiny_llm_alone_vs_among_12"]:
        print(f"output scale {r['output_scale']:g}: {r['same']} of {r['of']} edits the same tokens; shared prefixes "
              f"{[e['shared_prefix'] for e in r['edits']]} of {[e['tokens'] for e in r['edits']]}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
