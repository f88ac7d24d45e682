"""pipeline=train_tokenizer data=<shards>: train the dual-codebook tokenizer on the shards' audio.

Its encoders learn jointly with a decoder that reconstructs the frames from the quantized streams
(editor.train with editor.joint on top); the decoder of this stage is discarded, pipeline=train_decoder
trains the one that ships on the frozen ids. It trains on the release's train split; the validation
split gives the held-out loss curve, and the test split is left for the round-trip evaluation, so that
it measures unseen voices (editor.split_train/split_val/split_test move named speakers, for experiments).
Writes a versioned artifact directory (config.json + safetensors + training.json + training_log.jsonl).
"""
import json
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from editor import artifacts, corpus, train_decoder
from editor.training import command, device_name, pick_device
from editor.tokenizer import DualCodebookTokenizer, block_frames


def device(cfg) -> torch.device:
    return pick_device(cfg.editor.device)


def data_source(cfg) -> str:
    if cfg.data:
        return str(cfg.data)
    default = Path(cfg.output_dir) / "emotion_triplets" / "shards"
    if not default.is_dir():
        raise ValueError(f"data= is required (shards folder, .tar, glob or corpus .npz); the default {default} "
                         "does not exist: run `python run.py` first or pass data=")
    return str(default)


def split_overrides(cfg) -> dict:
    """split -> speakers moved into it (editor.split_*), empty when the release's own splits hold."""
    e = cfg.editor
    return {"train": e.get("split_train"), "validation": e.get("split_val"), "test": e.get("split_test")}


def train_corpus(cfg) -> tuple[corpus.Corpus, corpus.Corpus | None, list[str]]:
    """(training-split clips, validation-split clips or None, held-out speakers) of the configured data."""
    tok_cfg = OmegaConf.to_container(cfg.editor.tokenizer, resolve=True)
    full = corpus.with_splits(corpus.build(data_source(cfg), cfg.cache_dir, block_frames(tok_cfg)),
                              {k: list(v) for k, v in split_overrides(cfg).items() if v})
    aug = cfg.editor.augment
    train = corpus.with_warped_voices(full.select(lambda m: m["split"] == "train"), list(aug.vtlp_factors))
    train = corpus.with_eq_voices(train, int(aug.eq_copies), float(aug.eq_max_db), cfg.seed)
    train = corpus.with_room_voices(train, int(aug.room_copies), tuple(aug.room_rt60_s),
                                    tuple(aug.room_drr_db), tuple(aug.room_noise_below_db), cfg.seed)
    has_val = any(m["split"] == "validation" for m in full.meta)
    val = full.select(lambda m: m["split"] == "validation") if has_val else None
    held = corpus.held_out_speakers(full)
    print(f"corpus: {len(full)} clips, {full.hours():.2f} h, speakers {full.speakers()}; training on "
          f"{len(train)} clips ({train.hours():.2f} h, warped voices included), holding out {held}"
          f" ({len(val) if val else 0} validation clips)")
    return train, val, held


def checkpoint(cfg, out: Path) -> Path:
    """Where a codec run keeps its checkpoint: pipeline.checkpoint_dir, else beside the artifact."""
    d = Path(cfg.pipeline.get("checkpoint_dir") or out.with_name(out.name + ".checkpoints"))
    d.mkdir(parents=True, exist_ok=True)
    return d / "checkpoint.pt"


def run_info(cfg, dev, seconds: float, extra: dict) -> dict:
    return {"command": command(), "device": str(dev), "device_name": device_name(dev),
            "seconds": round(seconds, 1), "data": data_source(cfg), **extra}


def run(cfg):
    dev = device(cfg)
    tok_cfg = OmegaConf.to_container(cfg.editor.tokenizer, resolve=True)
    out = Path(cfg.pipeline.artifact_out or Path(cfg.output_dir) / "editor" / tok_cfg["version"])
    e = OmegaConf.to_container(cfg.editor, resolve=True)
    train_decoder.check_settings({**e["train"], **e["joint"]}, "editor.train (with editor.joint)")
    artifacts.check_new_version(tok_cfg["version"], out, "editor.tokenizer.version")
    train, val, held = train_corpus(cfg)
    t0 = time.time()
    torch.manual_seed(e["train"]["seed"])     # the encoders' first weights too: a rerun makes the same tokenizer
    tok = DualCodebookTokenizer(tok_cfg)
    # the throwaway decoder is a regression one whatever editor.decoder.kind says: one pass per step
    _, curve = train_decoder.train(train, val, tok, {**e["decoder"], "kind": "regression"}, {**e["train"], **e["joint"]},
                                   dev, joint=True, ckpt=checkpoint(cfg, out), resume=bool(cfg.resume),
                                   identity={"tokenizer": tok_cfg})
    seconds = time.time() - t0
    tmp = artifacts.staging_dir(out)
    tok.save(tmp)
    (tmp / "training_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
    info = run_info(cfg, dev, seconds, {"clips": len(train), "hours": round(train.hours(), 3),
                                        "speakers": train.speakers(), "held_out_speakers": held,
                                        "steps": curve[-1]["step"] if curve else 0,
                                        "train": {**e["train"], **e["joint"]}, "final": curve[-1] if curve else {}})
    (tmp / "training.json").write_text(json.dumps(info, indent=1))
    artifacts.publish(tmp, out)
    print(f"tokenizer {tok_cfg['version']}: {tok.tokens_per_second()['interleaved']:.1f} tokens/s, "
          f"trained in {seconds / 60:.1f} min on {dev} -> {out}")
    return {"artifact": str(out), **info}
