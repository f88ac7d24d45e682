"""Codec training killed after a checkpoint and resumed, on a GPU: how far the resumed weights land from
an unbroken run's, against how far two unbroken runs land from each other (GPU kernels are not bitwise
deterministic, so the CPU test's exact equality is not the measure here).

    python bench/codec_resume_gpu.py CLIPS_DIR OUT_JSON      # CLIPS_DIR: NAME.flac + NAME.json {"text"}

The joint stage (encoders and a decoder, as pipeline=train_tokenizer trains them) with the shipped
recipe's sizes (configs/editor/default.yaml), on the clips and their warped copies, 60 steps with a
checkpoint every 20; the killed run stops at step 30 and resumes from step 20.
"""
import json
import sys
from pathlib import Path

import soundfile as sf
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor import corpus, features, train_decoder  # noqa: E402
from editor.tokenizer import DualCodebookTokenizer, block_frames  # noqa: E402

STEPS, CKPT_EVERY, KILL_AT = 60, 20, 30


class Killed(Exception):
    pass


def clips_corpus(d: Path, block: int) -> corpus.Corpus:
    parts, meta = [], []
    for f in sorted(d.glob("*.flac")):
        x, sr = sf.read(f, dtype="float32")
        assert sr == features.SAMPLE_RATE, f
        text = json.loads(f.with_suffix(".json").read_text())["text"]
        parts.append(features.analyze(x, block))
        meta.append({"member": f.name, "speaker": f.stem, "language": f.stem[:2], "text": text, "split": "train"})
    return corpus.with_warped_voices(corpus.from_frames(parts, meta), [0.88, 1.12])


def main():
    clips, out = Path(sys.argv[1]), Path(sys.argv[2])
    # plain YAML (no interpolations in it): the GPU machine has no OmegaConf
    e = yaml.safe_load((Path(__file__).resolve().parent.parent / "configs/editor/default.yaml").read_text())
    tc = {**e["train"], **e["joint"], "steps": STEPS, "ckpt_every": CKPT_EVERY, "log_every": 10, "max_minutes": 1e6,
          "phone_weight": 0.0}
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    c = clips_corpus(clips, block_frames(e["tokenizer"]))
    work = out.parent / "codec_resume_work"
    work.mkdir(parents=True, exist_ok=True)

    def run(ckpt, resume=False, kill_at=None):
        torch.manual_seed(0)
        tok = DualCodebookTokenizer(e["tokenizer"])

        def log(line):
            if kill_at and line.startswith("{") and json.loads(line)["step"] == kill_at:
                raise Killed
        model, curve = train_decoder.train(c, None, tok, {**e["decoder"], "kind": "regression"}, tc, dev, joint=True,
                                           log=log, ckpt=ckpt, resume=resume)
        return {**{f"tok.{k}": v.float().cpu() for k, v in tok.state_dict().items()},
                **{k: v.float().cpu() for k, v in model.state_dict().items()}}, curve

    a, curve_a = run(work / "a.pt")
    b, _ = run(work / "b.pt")
    try:
        run(work / "c.pt", kill_at=KILL_AT)
    except Killed:
        pass
    step_saved = torch.load(work / "c.pt", weights_only=False, map_location="cpu")["step"]
    c_w, curve_c = run(work / "c.pt", resume=True)
    rel = lambda x, y: max(float((x[k] - y[k]).norm() / (y[k].norm() + 1e-12)) for k in y if y[k].is_floating_point())
    res = {"device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", "command": "python " + " ".join(sys.argv),
           "steps": STEPS, "ckpt_every": CKPT_EVERY, "killed_at_log_of_step": KILL_AT, "resumed_from_step": step_saved,
           "clips": len(c), "max_rel_weight_diff_two_unbroken_runs": rel(b, a),
           "max_rel_weight_diff_resumed_vs_unbroken": rel(c_w, a),
           "final_train_total_unbroken": curve_a[-1]["train_total"], "final_train_total_resumed": curve_c[-1]["train_total"],
           "curve_steps_resumed": [r["step"] for r in curve_c], "checkpoint_bytes": (work / "a.pt").stat().st_size}
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
