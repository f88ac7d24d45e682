"""pipeline=train_decoder data=<shards>: train the token-to-audio decoder for a trained tokenizer.

The release's validation split gives the loss curve only; nothing is selected on it. The test split is
never seen (pipelines/train_tokenizer.py). The artifact is
a save_pretrained directory plus training_log.jsonl (the curve) and training.json (how it was made).
"""
import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from editor import artifacts, train_decoder
from editor.tokenizer import DualCodebookTokenizer, block_frames
from pipelines.train_tokenizer import checkpoint, device, run_info, train_corpus


def run(cfg):
    dev = device(cfg)
    e = OmegaConf.to_container(cfg.editor, resolve=True)
    tok_dir = Path(cfg.pipeline.tokenizer or Path(cfg.output_dir) / "editor" / e["tokenizer"]["version"])
    tok = DualCodebookTokenizer.load(tok_dir)
    if block_frames(tok.cfg) != block_frames(e["tokenizer"]):
        raise ValueError(f"tokenizer={tok_dir} has {block_frames(tok.cfg)}-frame token blocks, editor.tokenizer "
                         f"has {block_frames(e['tokenizer'])}: use the editor config it was trained with")
    out = Path(cfg.pipeline.artifact_out or Path(cfg.output_dir) / "editor" / e["decoder"]["version"])
    train_decoder.check_settings(e["train"])
    artifacts.check_new_version(e["decoder"]["version"], out, "editor.decoder.version")
    train, val, held = train_corpus(cfg)
    tok_digest = artifacts.weights_digest(tok_dir)
    t0 = time.time()
    model, curve = train_decoder.train(train, val, tok, e["decoder"], e["train"], dev, joint=False,
                                       ckpt=checkpoint(cfg, out), resume=bool(cfg.resume),
                                       identity={"tokenizer_digest": tok_digest})
    seconds = time.time() - t0
    tmp = artifacts.staging_dir(out)
    for p in model.parameters():  # fp16 weights halve the artifact; Codec.load upcasts (buffers stay fp32)
        p.data = p.data.half()
    model.save_pretrained(tmp, max_shard_size="15MB")
    (tmp / "training_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
    # the tokenizer by its bytes too: another one trained under the same version name is refused on load
    info = run_info(cfg, dev, seconds, {"tokenizer": str(tok_dir), "tokenizer_version": tok.cfg["version"],
                                        "tokenizer_digest": tok_digest,
                                        "clips": len(train), "hours": round(train.hours(), 3),
                                        "held_out_speakers": held, "steps": curve[-1]["step"] if curve else 0,
                                        "train": e["train"],
                                        "final": curve[-1] if curve else {}})
    (tmp / "training.json").write_text(json.dumps(info, indent=1))
    artifacts.publish(tmp, out)
    print(f"decoder {e['decoder']['version']}: {info['steps']} steps in {seconds / 60:.1f} min on {dev} -> {out}")
    return {"artifact": str(out), **info}
