"""Where a denoise edit's noise can come from: the answer's ids or the decoder's voice reference.

    python bench/denoise_ceiling.py [--data outputs_v5/denoise_triplets] [--per-task 20] [--out JSON]

The editor decodes every answer with the *noisy* source as the voice reference. For the test split's
denoise pairs (the same seeded pick as bench/editor_llm_eval.py), the pause SNR (editor_llm_eval.pause_snr:
speech level over the level between the words, the clean target saying which frames are which) and the
floor SNR (editor_llm_eval.floor_snr: the clip's loud frames over its quiet ones, no reference) of:
- the noisy source itself;
- the source's own ids decoded with the source as reference (what an editor that copies gets);
- the clean target's ids decoded with the noisy source as reference (what a perfect answer gets, as
  the editor decodes it);
- the clean target's ids with the clean target as reference (the codec round trip of the target).
If the third is near the fourth, the reference carries no noise into the audio, and the noise of an
edit is in the ids the LLM answered with."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from editor_llm_eval import align, audio16, floor_snr, pause_snr, pick_arguments, pick_samples  # noqa: E402

ROWS = ("source", "source_ids_noisy_reference", "target_ids_noisy_reference", "target_ids_clean_reference")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="outputs_v5/denoise_triplets")
    pick_arguments(ap)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from editor.artifacts import SHIPPED_DECODER, SHIPPED_TOKENIZER
    from editor.codec import Codec
    torch.set_num_threads(1)
    codec = Codec.load(SHIPPED_TOKENIZER, SHIPPED_DECODER, "cpu")
    notes = []
    picked = pick_samples(a.data, a.split, a.per_task, a.seed, notes).get("denoise", [])
    if not picked:
        raise SystemExit(f"--data {a.data}: no denoise pair in split {a.split} ({'; '.join(notes)})")
    rows = []
    for s, _ in picked:
        src, tgt = audio16(s, "src.flac"), audio16(s, "tgt.flac")
        ref = tgt.astype(np.float64)
        score = lambda y: {"pause_snr_db": pause_snr(align(np.asarray(y, np.float64), ref), ref),
                           "floor_snr_db": floor_snr(np.asarray(y, np.float64))}
        f_src, f_tgt = codec.analyze_many([src, tgt])         # analysed once: the ids' input and the references
        ids_src, ids_tgt = codec.encode_frames([f_src, f_tgt])
        decoded = codec.decode([ids_src, ids_tgt, ids_tgt], [f_src, f_src, f_tgt])
        rows.append({"key": s.key, "snr_db_added": s.json.get("snr_db"), **dict(zip(ROWS, map(score, [src, *decoded])))})
        print(rows[-1], flush=True)
    med = {m: {k: round(float(np.median([r[k][m] for r in rows if r[k][m] is not None])), 2) for k in ROWS}
           for m in ("pause_snr_db", "floor_snr_db")}
    report = {"command": " ".join(["python bench/denoise_ceiling.py", *sys.argv[1:]]), "codec": SHIPPED_TOKENIZER.name,
              "n": len(rows), "median": med, "notes": notes, "per_clip": rows}
    print(json.dumps(med))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
