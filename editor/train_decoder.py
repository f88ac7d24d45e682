"""Decoder training: random token-aligned crops, a reference clip of the same speaker, L1/BCE on frames.

The whole corpus lives on the device as flat tensors; a batch is a gather, so a step costs only the
model. The reference is the clip itself half of the time (the editing case: the source is the voice
prompt) and another clip of the same speaker otherwise, so the decoder learns to take timbre from it.
"""
import json
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from editor.corpus import Corpus
from editor.decoder import DecoderConfig, TokenDecoder, frame_targets, reference_stats
from editor.tokenizer import DualCodebookTokenizer


@dataclass
class TokenSet:
    """A corpus as device tensors: targets per frame, token ids per stream, a reference vector per clip."""
    targets: torch.Tensor
    frame_off: torch.Tensor
    ling: torch.Tensor
    ling_off: torch.Tensor
    sem: torch.Tensor
    sem_off: torch.Tensor
    refs: torch.Tensor
    n_blocks: torch.Tensor
    same_speaker: list[np.ndarray]   # per clip: indices of clips by the same speaker


def token_set(corpus: Corpus, tok: DualCodebookTokenizer, device) -> TokenSet:
    frames = [corpus.frames(i) for i in range(len(corpus))]
    streams = []
    for i in range(0, len(frames), 512):  # bounded feature memory on big corpora
        streams += tok.encode(frames[i:i + 512], device)
    as_t = lambda a, dt=torch.float32: torch.as_tensor(np.asarray(a), dtype=dt, device=device)
    offsets = lambda parts: as_t(np.concatenate([[0], np.cumsum([len(p) for p in parts])]), torch.long)
    by_speaker: dict[str, list[int]] = {}
    for i, m in enumerate(corpus.meta):
        by_speaker.setdefault(m["speaker"], []).append(i)
    return TokenSet(targets=as_t(np.concatenate([frame_targets(f) for f in frames])),
                    frame_off=as_t(corpus.offsets, torch.long),
                    ling=as_t(np.concatenate([l for l, _ in streams]), torch.long), ling_off=offsets([l for l, _ in streams]),
                    sem=as_t(np.concatenate([s for _, s in streams]), torch.long), sem_off=offsets([s for _, s in streams]),
                    refs=as_t(np.stack([reference_stats(f) for f in frames])),
                    n_blocks=as_t([len(f) // tok.block for f in frames], torch.long),
                    same_speaker=[np.array(by_speaker[m["speaker"]]) for m in corpus.meta])


def batch(ts: TokenSet, cfg: DecoderConfig, block: int, crop_blocks: int, size: int, same_ref_prob: float,
          rng: np.random.Generator):
    """Random crops of whole token blocks; clips shorter than the crop are padded and masked."""
    dev = ts.targets.device
    utt = torch.as_tensor(rng.integers(0, len(ts.n_blocks), size), device=dev)
    nb = ts.n_blocks[utt]
    start = (torch.rand(size, device=dev) * (nb - crop_blocks).clamp(min=0).add(1)).long()
    valid = (nb - start).clamp(max=crop_blocks)
    pos = torch.arange(crop_blocks * block, device=dev)
    mask = pos[None, :] < (valid * block)[:, None]

    def gather(flat, off, per_block, steps_per_block, fill):
        n = crop_blocks * per_block
        p = torch.arange(n, device=dev)[None, :]
        idx = off[utt][:, None] + start[:, None] * per_block + p
        ok = p < (valid * per_block)[:, None]
        vals = flat[idx.clamp(max=len(flat) - 1)]
        return torch.where(ok if vals.dim() == 2 else ok[..., None], vals, torch.as_tensor(fill, device=dev, dtype=vals.dtype))

    n_ling, n_sem = block // cfg.ling_hop, block // cfg.sem_hop
    ling = gather(ts.ling, ts.ling_off, n_ling, cfg.ling_hop, cfg.ling_codebook)
    sem = gather(ts.sem, ts.sem_off, n_sem, cfg.sem_hop, cfg.sem_codebook)
    target = gather(ts.targets, ts.frame_off, block, 1, 0.0)
    u = utt.cpu().numpy()
    ref_idx = [i if rng.random() < same_ref_prob else rng.choice(ts.same_speaker[i]) for i in u]
    return ling, sem, ts.refs[torch.as_tensor(ref_idx, device=dev)], target, mask


def fit_normalization(model: TokenDecoder, ts: TokenSet) -> None:
    with torch.no_grad():
        model.target_mean.copy_(ts.targets.mean(0))
        model.target_std.copy_(ts.targets.std(0).clamp(min=1e-3))
        model.ref_mean.copy_(ts.refs.mean(0))
        model.ref_std.copy_(ts.refs.std(0).clamp(min=1e-3))


def evaluate(model, ts: TokenSet, block: int, crop_blocks: int, size: int, batches: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    model.eval()
    total = 0.0
    with torch.no_grad(), _autocast(ts.targets.device):
        for _ in range(batches):
            ling, sem, ref, target, mask = batch(ts, model.config, block, crop_blocks, size, 1.0, rng)
            total += float(model.loss(model(ling, sem, ref, mask), target, mask)["total"])
    model.train()
    return total / batches


def _autocast(device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train(train_corpus: Corpus, val_corpus: Corpus | None, tok: DualCodebookTokenizer, model_cfg: dict,
          train_cfg: dict, device, log=print) -> tuple[TokenDecoder, list[dict]]:
    device = torch.device(device)
    torch.manual_seed(train_cfg["seed"])
    rng = np.random.default_rng(train_cfg["seed"])
    cfg = DecoderConfig(tokenizer_version=tok.cfg["version"], ling_codebook=tok.cfg["linguistic"]["codebook"],
                        sem_codebook=tok.cfg["semantic"]["codebook"], ling_hop=tok.cfg["linguistic"]["hop_frames"],
                        sem_hop=tok.cfg["semantic"]["hop_frames"], n_mels=train_corpus.mel.shape[1], **model_cfg)
    t0 = time.time()
    ts = token_set(train_corpus, tok, device)
    vs = token_set(val_corpus, tok, device) if val_corpus is not None and len(val_corpus) else None
    log(f"decoder: {len(train_corpus)} clips ({train_corpus.hours():.2f} h) tokenized in {time.time() - t0:.1f} s")
    model = TokenDecoder(cfg).to(device)
    fit_normalization(model, ts)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"decoder: {n_params / 1e6:.2f} M parameters on {device}")
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg["lr"], betas=(0.9, 0.98), weight_decay=train_cfg["weight_decay"])
    steps, warmup = train_cfg["steps"], train_cfg["warmup"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    crop_blocks = max(1, train_cfg["crop_frames"] // tok.block)
    curve, t_start = [], time.time()
    for step in range(1, steps + 1):
        ling, sem, ref, target, mask = batch(ts, cfg, tok.block, crop_blocks, train_cfg["batch_size"],
                                             train_cfg["same_ref_prob"], rng)
        with _autocast(device):
            terms = model.loss(model(ling, sem, ref, mask), target, mask)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        out_of_time = (time.time() - t_start) / 60 > train_cfg["max_minutes"]
        if step % train_cfg["log_every"] == 0 or step == steps or out_of_time:
            row = {"step": step, "minutes": round((time.time() - t_start) / 60, 3), "lr": sched.get_last_lr()[0],
                   **{f"train_{k}": round(v.item(), 4) for k, v in terms.items()}}
            if vs is not None:
                row["val_total"] = round(evaluate(model, vs, tok.block, crop_blocks, train_cfg["batch_size"], 2, 0), 4)
            curve.append(row)
            log(json.dumps(row))
        if out_of_time:
            log(f"decoder: stopped at the time budget ({train_cfg['max_minutes']} min) after {step} steps")
            break
    model.eval()
    return model, curve
