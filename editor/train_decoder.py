"""Codec training: random token-aligned crops, a reference clip of the same speaker, L1/BCE on frames.

Two uses of one loop:
- joint (pipeline=train_tokenizer): the tokenizer's encoders and a decoder learn together, the
  decoder reading the FSQ vectors; only the tokenizer is kept;
- frozen (pipeline=train_decoder): the tokenizer is fixed, the corpus is turned into token ids once,
  and a fresh decoder learns from the ids, as it will be used.

The whole corpus lives on the device as flat tensors; a batch is a gather, so a step costs only the
model. The reference is the clip itself half of the time (the editing case: the source is the voice
prompt) and another clip of the same speaker otherwise, so the decoder learns to take timbre from it.
Where the corpus has phone labels (editor/phones.py) and train.phone_weight > 0, the decoder also
names each frame's phone: in the joint stage that pushes phone identity into the tokens.
With noise_views > 0 (joint), that share of a batch's rows is encoded from a noisy view of the clip
(features.noisy_view: low-level noise, silence after it) and still decoded to the clean frames, and
consistency_weight pulls each noisy view's pre-rounding values onto the clean view's: the ids should
not change with what the tokens are not meant to carry.
Given a checkpoint path, the loop writes model, encoders (joint), optimizer, scheduler, both random
generators' states, step, trained seconds and curve every ckpt_every steps and at its end, and
`resume` continues a killed run from there to the same weights it would have reached.
"""
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from editor import features, phones
from editor.corpus import Corpus
from editor.training import check_counts, check_positive, resume_state, save_checkpoint
from editor.decoder import DecoderConfig, TokenDecoder, frame_targets, reference_stats
from editor.tokenizer import STREAMS, DualCodebookTokenizer


@dataclass
class Stream:
    flat: torch.Tensor      # per-frame inputs (N, d) or token ids (N,)
    off: torch.Tensor       # (U+1,) clip offsets into flat
    per_block: int          # items per token block


@dataclass
class FrameSet:
    """A corpus as device tensors: targets per frame, the streams, a reference vector per clip."""
    targets: torch.Tensor
    phones: torch.Tensor             # (N,) frame phone labels, negative where unknown
    frame_off: torch.Tensor
    streams: dict[str, Stream]
    refs: torch.Tensor
    n_blocks: torch.Tensor
    same_speaker: list[np.ndarray]   # per clip: indices of clips by the same speaker
    noisy: dict[str, Stream] | None = None   # joint with noise views: the encoders' inputs of each clip's noisy view


def noisy_inputs(tok: DualCodebookTokenizer, fr, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The encoders' inputs of one noisy view of a clip (up to 1 s of silence after it, dropped again)."""
    pad = int(rng.integers(0, 101))
    x = tok.inputs(features.noisy_view(fr, rng, pad_frames=pad))
    return {s: v[:len(fr)] for s, v in x.items()}


def frame_set(corpus: Corpus, tok: DualCodebookTokenizer, device, as_ids: bool, views_seed: int | None = None) -> FrameSet:
    """as_ids: the streams are the tokenizer's ids (frozen); else the encoders' frame inputs (joint).
    views_seed (joint): also one noisy view per clip (noisy_inputs), seeded."""
    frames = [corpus.frames(i) for i in range(len(corpus))]
    as_t = lambda a, dt=torch.float32: torch.as_tensor(np.asarray(a), dtype=dt, device=device)
    offsets = lambda parts: as_t(np.concatenate([[0], np.cumsum([len(p) for p in parts])]), torch.long)
    noisy = None
    if as_ids:
        ids = []
        for i in range(0, len(frames), 256):  # bounded feature memory on big corpora
            ids += tok.encode(frames[i:i + 256], device)
        streams = {s: Stream(as_t(np.concatenate([p[k] for p in ids]), torch.long), offsets([p[k] for p in ids]),
                             tok.block // tok.cfg[s]["hop_frames"]) for k, s in enumerate(STREAMS)}
    else:
        inputs = [tok.inputs(f) for f in frames]
        streams = {s: Stream(as_t(np.concatenate([x[s] for x in inputs])), as_t(corpus.offsets, torch.long), tok.block)
                   for s in STREAMS}
        if views_seed is not None:
            rng = np.random.default_rng(views_seed)
            views = [noisy_inputs(tok, f, rng) for f in frames]
            noisy = {s: Stream(as_t(np.concatenate([x[s] for x in views])), as_t(corpus.offsets, torch.long), tok.block)
                     for s in STREAMS}
    by_speaker: dict[str, list[int]] = {}
    for i, m in enumerate(corpus.meta):
        by_speaker.setdefault(m["speaker"], []).append(i)
    return FrameSet(noisy=noisy, targets=as_t(np.concatenate([frame_targets(f) for f in frames])),
                    phones=as_t(corpus.phones, torch.long),
                    frame_off=as_t(corpus.offsets, torch.long), streams=streams,
                    refs=as_t(np.stack([reference_stats(f) for f in frames])),
                    n_blocks=as_t([len(f) // tok.block for f in frames], torch.long),
                    same_speaker=[np.array(by_speaker[m["speaker"]]) for m in corpus.meta])


def batch(fs: FrameSet, block: int, crop_blocks: int, size: int, same_ref_prob: float, rng: np.random.Generator,
          noise_views: float = 0.0):
    """Random crops of whole token blocks; clips shorter than the crop are padded and masked.
    Padding repeats the clip's last item, so encoders see no fake edge. With fs.noisy, the same crops of
    the noisy views too, and which rows (a noise_views share) the decoder reads them for."""
    dev = fs.targets.device
    utt = torch.as_tensor(rng.integers(0, len(fs.n_blocks), size), device=dev)
    nb = fs.n_blocks[utt]
    start = (torch.rand(size, device=dev) * (nb - crop_blocks).clamp(min=0).add(1)).long()
    valid = (nb - start).clamp(max=crop_blocks)
    mask = torch.arange(crop_blocks * block, device=dev)[None, :] < (valid * block)[:, None]

    def gather(flat, off, per_block):
        p = torch.arange(crop_blocks * per_block, device=dev)[None, :]
        p = torch.minimum(p, (valid * per_block)[:, None] - 1)
        return flat[off[utt][:, None] + start[:, None] * per_block + p]

    streams = {s: gather(st.flat, st.off, st.per_block) for s, st in fs.streams.items()}
    target = gather(fs.targets, fs.frame_off, block)
    phones = gather(fs.phones, fs.frame_off, block)
    u = utt.cpu().numpy()
    ref_idx = [i if rng.random() < same_ref_prob else rng.choice(fs.same_speaker[i]) for i in u]
    out = {"streams": streams, "ref": fs.refs[torch.as_tensor(ref_idx, device=dev)], "target": target, "mask": mask,
           "phones": phones}
    if fs.noisy is not None:
        out["noisy"] = {s: gather(st.flat, st.off, st.per_block) for s, st in fs.noisy.items()}
        out["noisy_rows"] = torch.as_tensor(rng.random(size) < noise_views, device=dev)
    return out


def step_loss(model: TokenDecoder, tok: DualCodebookTokenizer | None, b: dict,
              phone_weight: float, consistency_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """tok given: streams are frame inputs, quantized by its encoders (joint); else they are ids."""
    consistency = None
    if tok is None:
        streams = b["streams"]
    elif "noisy" in b:
        clean, noisy = tok.latents(b["streams"]), tok.latents(b["noisy"])
        rows = b["noisy_rows"][:, None, None]
        streams = {s: tok.quantizers[s](torch.where(rows, noisy[s], clean[s])) for s in STREAMS}
        consistency = sum(((tok.quantizers[s].bound(noisy[s]) - tok.quantizers[s].bound(clean[s]).detach()) ** 2).mean()
                          for s in STREAMS)
    else:
        streams = tok.quantize(b["streams"])
    terms = model.training_terms(streams["linguistic"], streams["semantic"], b["ref"], b["mask"], b["target"],
                                 b["phones"], phone_weight)
    if consistency is not None:
        terms["consistency"] = consistency
        terms["total"] = terms["total"] + consistency_weight * consistency
    return terms


def fit_normalization(model: TokenDecoder, fs: FrameSet) -> None:
    with torch.no_grad():
        model.target_mean.copy_(fs.targets.mean(0))
        model.target_std.copy_(fs.targets.std(0).clamp(min=1e-3))
        model.ref_mean.copy_(fs.refs.mean(0))
        model.ref_std.copy_(fs.refs.std(0).clamp(min=1e-3))


def evaluate(model, fs: FrameSet, block: int, crop_blocks: int, size: int, batches: int, seed: int,
             tok: DualCodebookTokenizer | None = None, phone_weight: float = 0.0) -> dict[str, float]:
    # noisy views (joint) are read by no row here: the loss is the clean one; "consistency" is measured
    """Mean loss terms over seeded batches."""
    rng = np.random.default_rng(seed)
    model.eval()
    sums: dict[str, float] = {}
    with torch.no_grad(), _autocast(fs.targets.device):
        for _ in range(batches):
            for k, v in step_loss(model, tok, batch(fs, block, crop_blocks, size, 1.0, rng), phone_weight).items():
                sums[k] = sums.get(k, 0.0) + float(v) / batches
    model.train()
    return sums


def _autocast(device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def decoder_config(tok: DualCodebookTokenizer, n_mels: int, model_cfg: dict, n_phones: int = 0) -> DecoderConfig:
    return DecoderConfig(tokenizer_version=tok.cfg["version"], ling_levels=tok.cfg["linguistic"]["levels"],
                         sem_levels=tok.cfg["semantic"]["levels"], ling_hop=tok.cfg["linguistic"]["hop_frames"],
                         sem_hop=tok.cfg["semantic"]["hop_frames"], n_mels=n_mels, n_phones=n_phones, **model_cfg)


def check_settings(train_cfg: dict, where: str = "editor.train") -> None:
    """The settings the loop divides by, batches over or stops at, named before the corpus is prepared."""
    check_counts(train_cfg, ("steps", "warmup", "log_every", "ckpt_every", "batch_size", "crop_frames"), where)
    check_positive(train_cfg, ("max_minutes", "lr"), where)


def fingerprint(train_cfg: dict, model_cfg: dict, joint: bool, corpora: list[Corpus | None], extra: dict) -> str:
    """What a checkpoint must match to be resumed: the settings but the budgets and reporting intervals
    (a resumed run may be given more steps or minutes; its schedule then follows the new budget), the
    clips by their frames, and extra (the joint stage's tokenizer config, a frozen tokenizer's digest)."""
    keep = {k: v for k, v in train_cfg.items() if k not in ("steps", "max_minutes", "log_every", "ckpt_every",
                                                             "workers")}
    blob = json.dumps([keep, model_cfg, joint, [c.digest() if c is not None else None for c in corpora], extra],
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _rng_state(rng: np.random.Generator, device) -> dict:
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng_state(rng: np.random.Generator, st: dict, device) -> None:
    rng.bit_generator.state = st["numpy"]
    torch.set_rng_state(st["torch"])
    if device.type == "cuda" and st["cuda"] is not None:
        torch.cuda.set_rng_state(st["cuda"], device)


def train(train_corpus: Corpus, val_corpus: Corpus | None, tok: DualCodebookTokenizer, model_cfg: dict,
          train_cfg: dict, device, joint: bool, log=print, ckpt: Path | None = None, resume: bool = False,
          identity: dict | None = None) -> tuple[TokenDecoder, list[dict]]:
    """joint: tok's encoders train too (in place); else tok is frozen and only the decoder learns.
    ckpt: the checkpoint file (None: none written); resume: continue from it; identity: what else the
    run must match to be resumed (the frozen tokenizer's digest)."""
    device = torch.device(device)
    torch.manual_seed(train_cfg["seed"])
    rng = np.random.default_rng(train_cfg["seed"])
    t0 = time.time()
    tok.to(device)
    noise_views = float(train_cfg.get("noise_views", 0.0)) if joint else 0.0
    views_seed = train_cfg["seed"] if noise_views > 0 else None
    fs = frame_set(train_corpus, tok, device, not joint, views_seed)
    vs = (frame_set(val_corpus, tok, device, not joint, views_seed) if val_corpus is not None and len(val_corpus)
          else None)
    log(f"{'joint' if joint else 'decoder'}: {len(train_corpus)} clips ({train_corpus.hours():.2f} h) "
        f"prepared in {time.time() - t0:.1f} s")
    labelled = phones.coverage(train_corpus.phones)
    asked = float(train_cfg.get("phone_weight", 0.0))
    phone_weight = asked if labelled > 0 else 0.0
    off = " (off: no English clip with an alignable transcript)" if asked and not labelled else ""
    log(f"phone labels on {labelled:.0%} of training frames; phone loss weight {phone_weight:g}{off}")
    model = TokenDecoder(decoder_config(tok, train_corpus.mel.shape[1], model_cfg,
                                        len(phones.PHONES) if phone_weight else 0)).to(device)
    fit_normalization(model, fs)
    params = list(model.parameters())
    enc = tok if joint else None
    if joint:
        tok.fit_normalization({s: st.flat for s, st in fs.streams.items()})
        tok.train()
        params += list(tok.parameters())
    log(f"{'joint' if joint else 'decoder'}: {sum(p.numel() for p in params) / 1e6:.2f} M parameters on {device}")
    opt = torch.optim.AdamW(params, lr=train_cfg["lr"], betas=(0.9, 0.98), weight_decay=train_cfg["weight_decay"])
    steps, warmup, budget_s = train_cfg["steps"], train_cfg["warmup"], 60 * train_cfg["max_minutes"]
    ckpt_every = int(train_cfg.get("ckpt_every", 500))
    fp = fingerprint(train_cfg, model_cfg, joint, [train_corpus, val_corpus], identity or {})
    st = resume_state(Path(ckpt), fp, resume, log) if ckpt is not None else None
    done, elapsed, curve = 0, 0.0, []
    if st is not None:
        model.load_state_dict(st["model"])
        if joint:
            tok.load_state_dict(st["tokenizer"])
        done, elapsed, curve = st["step"], st["elapsed_s"], st["curve"]
    t_start = time.time() - elapsed
    # progress is steps or wall time, whichever is further along: a run cut by the time budget still
    # anneals its learning rate to zero instead of stopping at full rate
    progress = lambda s: min(1.0, max(s / steps, (time.time() - t_start) / budget_s))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * progress(s))))
    if st is not None:      # the optimizer after the scheduler, whose construction sets the rate of step 0
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        _set_rng_state(rng, st["rng"], device)
    crop_blocks = max(1, train_cfg["crop_frames"] // tok.block)
    # a run that had reached its steps or spent its minutes when it was killed has nothing left to train
    spent = st is not None and (done >= steps or elapsed > budget_s)
    for step in range(done + 1, steps + 1) if not spent else ():
        b = batch(fs, tok.block, crop_blocks, train_cfg["batch_size"], train_cfg["same_ref_prob"], rng, noise_views)
        with _autocast(device):
            terms = step_loss(model, enc, b, phone_weight, float(train_cfg.get("consistency_weight", 0.0)))
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        out_of_time = time.time() - t_start > budget_s
        last = step == steps or out_of_time
        if step % train_cfg["log_every"] == 0 or last:
            row = {"step": step, "minutes": round((time.time() - t_start) / 60, 3), "lr": sched.get_last_lr()[0],
                   **{f"train_{k}": round(v.item(), 4) for k, v in terms.items()}}
            if vs is not None:
                val = evaluate(model, vs, tok.block, crop_blocks, train_cfg["batch_size"], 2, 0, enc, phone_weight)
                row.update({f"val_{k}": round(v, 4) for k, v in val.items()})
            curve.append(row)
            log(json.dumps(row))
        # after the evaluation, which draws from the same generators: a resumed run replays the same batches
        if ckpt is not None and (step % ckpt_every == 0 or last):
            save_checkpoint(Path(ckpt), {"fingerprint": fp, "model": model.state_dict(),
                                         "tokenizer": tok.state_dict() if joint else None,
                                         "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                         "rng": _rng_state(rng, device), "step": step,
                                         "elapsed_s": time.time() - t_start, "curve": curve})
        if out_of_time:
            log(f"stopped at the time budget ({train_cfg['max_minutes']} min) after {step} steps")
            break
    model.eval()
    tok.eval()
    return model, curve
