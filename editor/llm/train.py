"""Supervised fine-tuning of the audio LLM on token releases: one process, or N workers via Ray Train.

Each step packs examples of the task mixture into a fixed [rows, max_len] batch (batches.py). With N
workers every worker draws the same global batch and takes rows[rank::N]; each scales its summed
token loss by N / (loss tokens of the global batch), so DDP's gradient mean is exactly the global
per-token mean: N workers train the model one worker would, on the same global batch.

Checkpoints (model, optimizer, scheduler, step, data position, elapsed time, curve) are written
atomically every `ckpt_every` steps; `resume` continues from the last one. The finished model is
published as an artifact directory (editor/artifacts.py): config + safetensors + tokenizer,
training.json, training_log.jsonl and loss_curve.png."""
import hashlib
import json
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from editor import artifacts
from editor.training import check_counts, check_positive, device_name, resume_state, save_checkpoint
from editor.llm import data as llm_data
from editor.llm.batches import Batches, eval_batches, too_long
from editor.llm import packing
from editor.llm.chat import IGNORE
from editor.llm.model import build_model, count_params, flops_per_token, save, training_vocab
from editor.llm.pronounce import PRONUNCIATION_SCHEME

H200_BF16_PEAK = 989e12  # dense bf16 FLOP/s of the H200 SXM (MFU denominator)
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def token_loss_sum(model, batch: dict) -> torch.Tensor:
    """Summed cross-entropy of the labelled tokens (labels aligned with input_ids; we shift).
    Without an attention mask in the batch (attention=flex), transformers reads the examples'
    boundaries from the position ids; that needs use_cache=False (with a cache it assumes one sequence)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                   position_ids=batch["position_ids"], use_cache=False).logits
    # the labels move left instead of the logits: no copy of the [rows, len, vocab] logits to slice them
    target = F.pad(batch["labels"][:, 1:], (0, 1), value=IGNORE)
    return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE, reduction="sum")


class TokenLoss(torch.nn.Module):
    """The model and its loss as one module, so that torch.compile fuses the loss into the forward:
    compiled apart, the float32 copy of the logits and the softmax over them are separate passes over
    the largest tensors of the step."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels, position_ids, attention_mask=None):
        return token_loss_sum(self.model, {"input_ids": input_ids, "labels": labels, "position_ids": position_ids,
                                           "attention_mask": attention_mask})


def loss_tokens(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def _rows(batch: dict, rank: int, world: int) -> dict:
    return {k: v[rank::world] for k, v in batch.items()}


def _to(batch: dict, device, attention: str = "mask") -> dict:
    """The batch on the device, with its block-diagonal attention mask built there (attention=mask):
    the [B, 1, L, L] mask follows from the position ids (each example, and the padding, starts
    again at 0) and would be the largest tensor to build on the CPU and copy every step. With
    attention=flex no mask is built: FlexAttention's block mask comes from the position ids."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "attention_mask"}
    if attention == "mask":
        out["attention_mask"] = packing.block_causal_mask((out["position_ids"] == 0).cumsum(-1))
    return out


def attention_kind(tc: dict, device) -> str:
    """mask: SDPA with the block-diagonal mask (CPU and GPU). flex: FlexAttention over a block mask
    made from the position ids, which skips the blocks between examples (CUDA; its backward has no
    CPU kernel). auto: flex on CUDA, mask elsewhere."""
    kind = tc.get("attention", "mask")
    if kind == "auto":
        kind = "flex" if torch.device(device).type == "cuda" else "mask"
    if kind not in ("mask", "flex"):
        raise ValueError(f"pipeline.train.attention={kind!r}: choose mask, flex or auto")
    if kind == "flex" and torch.device(device).type != "cuda":
        raise ValueError("pipeline.train.attention=flex needs a CUDA device (FlexAttention has no CPU backward); use mask")
    return kind


def optimizer(model, tc: dict, device) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not norms or biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": tc["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    fused = torch.device(device).type == "cuda"
    return torch.optim.AdamW(groups, lr=tc["lr"], betas=tuple(tc["betas"]), fused=fused)


def lr_factor(step: int, tc: dict, progress: float) -> float:
    """Linear warm-up, then cosine from lr to min_lr over `progress` (steps or time, whichever ends first)."""
    if step < tc["warmup"]:
        return (step + 1) / tc["warmup"]
    floor = tc["min_lr"] / tc["lr"]
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def check_settings(tc: dict) -> None:
    """Settings the loop divides by or schedules over, checked before any data is read."""
    check_counts(tc, ("steps", "log_every", "eval_every", "ckpt_every", "eval_batches", "rows", "max_len"),
                 "pipeline.train")
    if isinstance(tc["warmup"], bool) or not isinstance(tc["warmup"], int) or tc["warmup"] < 0:
        raise ValueError(f"pipeline.train.warmup={tc['warmup']!r}: must be an integer >= 0")
    check_positive(tc, ("max_minutes",), "pipeline.train")
    look = tc.get("pack_lookahead", 1)
    if isinstance(look, bool) or not isinstance(look, int) or look < 1:
        raise ValueError(f"pipeline.train.pack_lookahead={look!r}: must be an integer >= 1")
    if tc.get("compile_mode") not in COMPILE_MODES:
        raise ValueError(f"pipeline.train.compile_mode={tc.get('compile_mode')!r}: choose one of {COMPILE_MODES}")


def fingerprint(tc: dict, llm_cfg: dict, data_digest: str, vocab_version: str) -> str:
    """What a checkpoint must match to be resumed (budgets and worker count may change). The data
    enters as what its examples are (data.digest), not where they lie: a release moved elsewhere still
    resumes, a release rewritten or given in another order does not."""
    keep = {k: v for k, v in tc.items() if k not in ("steps", "max_minutes", "log_every", "eval_every",
                                                     "ckpt_every", "workers", "compile", "compile_mode", "attention")}
    blob = json.dumps([keep, llm_cfg, data_digest, vocab_version], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@torch.no_grad()
def evaluate(model, batches: list[dict], device, autocast, attention: str = "mask") -> float | None:
    if not batches:
        return None
    model.eval()
    total, n = 0.0, 0
    for b in batches:
        with autocast():
            total += token_loss_sum(model, _to(b, device, attention)).item()
        n += loss_tokens(b)
    model.train()
    return total / max(n, 1)


def prepare(tc: dict, data: list[str], init_from=None, log=print):
    """(vocab, training examples per weighted task, validation examples of those tasks, the codec of the
    data, examples dropped as longer than max_len per split and task)."""
    llm_data.check_weights(tc["mixture"])
    vocab = training_vocab(init_from, tc.get("text_tokenizer"),
                           PRONUNCIATION_SCHEME if tc.get("pronounce") else None)
    rel = llm_data.token_release(data)  # read once, for both splits
    codec = llm_data.codec(rel)
    check_init_codec(init_from, codec["tokenizer_version"], codec.get("tokenizer_digest"))
    train = llm_data.weighted(llm_data.load_examples(rel, "train"), tc["mixture"])
    val = llm_data.weighted(llm_data.load_examples(rel, "validation"), tc["mixture"])
    if not train:
        raise ValueError(f"data={data}: no training-split examples of a task with a mixture weight > 0 "
                         f"(weights {tc['mixture']})")
    kept, val_kept = too_long(train, vocab, tc["max_len"]), too_long(val, vocab, tc["max_len"])
    dropped = {split: {t: len(before[t]) - len(after[t]) for t in before if len(before[t]) != len(after[t])}
               for split, before, after in (("train", train, kept), ("validation", val, val_kept))}
    if any(dropped.values()):
        log(f"dropped examples longer than max_len={tc['max_len']}: {dropped}")
    if not any(kept.values()):
        raise ValueError(f"data={data}: every training example is longer than pipeline.train.max_len={tc['max_len']}")
    return vocab, kept, [e for exs in val_kept.values() for e in exs], codec, dropped


def check_init_codec(init_from, tokenizer_version: str, tokenizer_digest: str | None = None,
                     name: str = "init_from") -> None:
    """An editor LLM warm-started on (or scored on) data of another codec would read its audio ids as other
    sounds (by version, and by weights digest where both the LLM and the data record one). name: the
    option that gave the directory, for the error."""
    if not init_from:
        return
    # codec.json (a DPO or PPO editor's) or training.json (an SFT editor's); a foreign LM has neither
    from editor.llm.editor import codec_digest_of, codec_version_of
    theirs, their_digest = codec_version_of(init_from), codec_digest_of(init_from)
    fix = "tokenize the data with its codec" + (", or start without init_from" if name == "init_from" else "")
    if theirs and theirs != tokenizer_version:
        raise ValueError(f"{name}={init_from} was trained on codec {theirs} ids, the data is {tokenizer_version}: {fix}")
    if their_digest and tokenizer_digest and their_digest != tokenizer_digest:
        raise ValueError(f"{name}={init_from} was trained on the ids of another tokenizer named {theirs} "
                         f"(weights {their_digest}, the data's {tokenizer_digest}): {fix}")


def stop_together(out_of_time: bool, world: int, device, due: bool = True) -> bool:
    """Each worker reads its own clock: the time budget ends the run where any worker says so, on every
    worker alike (one that stepped on alone would wait in the gradient all-reduce forever). Several
    workers agree only where due (the log steps): an all-reduce is a device sync."""
    if world == 1:
        return out_of_time
    if not due:
        return False
    flag = torch.tensor([float(out_of_time)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def train_loop(tc: dict, llm_cfg: dict, data: list[str], out: Path, ckpt_dir: Path, device, resume: bool,
               rank: int = 0, world: int = 1, wrap=None, log=print, run_info: dict | None = None) -> dict:
    """The training loop of one worker. wrap(model) -> the DDP model (Ray Train), None alone.
    run_info (command, data) goes into training.json."""
    device = torch.device(device)
    check_settings(tc)
    torch.manual_seed(tc["seed"])
    vocab, train, val, codec, dropped = prepare(tc, data, llm_cfg.get("init_from"), log if rank == 0 else (lambda *_: None))
    mixture = llm_data.Mixture(train, dict(tc["mixture"]), tc["seed"])
    if tc["rows"] % world:
        raise ValueError(f"editor.train.rows={tc['rows']} must be a multiple of the {world} workers")
    batches = Batches(mixture, vocab, tc["rows"], tc["max_len"], min(tc.get("pack_lookahead", 1), tc["rows"]))
    model = build_model(llm_cfg, vocab).to(device)
    attention = attention_kind(tc, device)
    if attention == "flex":
        model.set_attn_implementation("flex_attention")
    opt = optimizer(model, tc, device)
    fp = fingerprint(tc, llm_cfg, f"{codec['tokenizer_version']}:{llm_data.digest(train)}", vocab.version)
    ckpt = ckpt_dir / "checkpoint.pt"
    step, elapsed, curve = 0, 0.0, []
    best = {"val_loss": float("inf"), "step": None, "state": None}  # the weights published when keep_best
    st = resume_state(ckpt, fp, resume, log if rank == 0 else (lambda *_: None))
    if st:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        batches.load_state(st["data"])
        step, elapsed, curve, best = st["step"], st["elapsed_s"], st["curve"], st["best"]
        torch.set_rng_state(st["torch_rng"])
    cuda = device.type == "cuda"
    autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    net = wrap(TokenLoss(model)) if wrap else TokenLoss(model)
    compiled = tc["compile"] is True or (tc["compile"] == "auto" and cuda)
    fwd = torch.compile(net, mode=tc.get("compile_mode")) if compiled else net
    val_batches = eval_batches(val, vocab, tc["rows"], tc["max_len"], tc["eval_batches"], tc["seed"]) if rank == 0 else []
    budget_s = 60.0 * tc["max_minutes"]
    n_params = count_params(model)
    if rank == 0:
        log(f"LLM: {n_params / 1e6:.2f} M parameters, vocab {vocab.size}; {sum(map(len, train.values()))} training "
            f"examples {({t: len(v) for t, v in train.items()})}, {len(val)} validation; {world} worker(s) on {device}")
        if tc["warmup"] >= tc["steps"]:
            log(f"warmup={tc['warmup']} >= steps={tc['steps']}: the learning rate never reaches lr nor anneals")
        if not val and tc["keep_best"]:
            log("no validation examples: no validation loss, and keep_best publishes the last weights")
    model.train()
    fresh = lambda: {"tokens": 0, "sq_tokens": 0, "t": time.time(), "loss": 0.0, "n": 0, "steps": 0}
    t_run, window = time.time() - elapsed, fresh()
    first_step_s = None
    # a run stopped by its time budget and resumed has no time left: it publishes what it has
    spent = st is not None and elapsed > budget_s
    while step < tc["steps"] and not spent:
        progress = max(step / tc["steps"], (time.time() - t_run) / budget_s)
        for g in opt.param_groups:
            g["lr"] = tc["lr"] * lr_factor(step, tc, progress)
        full, stats = batches.next()
        n_global = max(loss_tokens(full), 1)
        local = _rows(full, rank, world)
        mine = _to(local, device, attention)
        with autocast():
            loss_sum = fwd(**mine)
        (loss_sum * (world / n_global)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if first_step_s is None:
            # the first step compiles (about a minute on a cold GPU machine): the time budget, and the
            # schedule that anneals over it, start after it, so warm and cold machines train alike
            first_step_s = time.time() - t_run - elapsed
            t_run += first_step_s
        window["tokens"] += stats["tokens"]
        window["sq_tokens"] += stats["sq_tokens"]
        window["steps"] += 1
        window["loss"] += loss_sum.detach()  # read at the log step: no device sync every step
        window["n"] += loss_tokens(local)
        out_of_time = stop_together(time.time() - t_run > budget_s, world, device, due=step % tc["log_every"] == 0)
        last = step == tc["steps"] or out_of_time
        if rank == 0 and (step % tc["log_every"] == 0 or last):
            if cuda:
                torch.cuda.synchronize()
            dt = time.time() - window["t"]
            tok_s = window["tokens"] / dt if dt else 0.0
            row = {"step": step, "minutes": round((time.time() - t_run) / 60, 3), "lr": opt.param_groups[0]["lr"],
                   "train_loss": round(float(window["loss"]) / max(window["n"], 1), 4), "tokens_per_s": round(tok_s, 1),
                   # the share of the rows' tokens that are examples, not padding (padding is computed too)
                   "fill": round(window["tokens"] / (window["steps"] * tc["rows"] * tc["max_len"]), 4)}
            if cuda:   # attention counted over the examples' own lengths, as packed
                context = window["sq_tokens"] / max(window["tokens"], 1)
                row["mfu"] = round(flops_per_token(model, context) * tok_s / H200_BF16_PEAK, 4)
            if step % tc["eval_every"] == 0 or last:
                row["val_loss"] = evaluate(model, val_batches, device, autocast, attention)
                if row["val_loss"] is not None and row["val_loss"] < best["val_loss"]:
                    best = {"val_loss": row["val_loss"], "step": step,
                            "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
            curve.append(row)
            log(json.dumps(row))
            window = fresh()
        if rank == 0 and (step % tc["ckpt_every"] == 0 or last):
            save_checkpoint(ckpt, {"fingerprint": fp, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                   "data": batches.state(), "step": step, "elapsed_s": time.time() - t_run,
                                   "curve": curve, "best": best, "torch_rng": torch.get_rng_state()})
        if out_of_time:
            if rank == 0:
                log(f"stopped at the time budget ({tc['max_minutes']} min) after {step} steps")
            break
    model.eval()
    if attention != "mask":
        model.set_attn_implementation("sdpa")   # what the published config and every reader use
    if tc["keep_best"] and best["state"] is not None:
        model.load_state_dict(best["state"])  # the weights of the lowest validation loss, not the last ones
    kept_best = tc["keep_best"] and best["state"] is not None
    result = {**(run_info or {}), "device": device_name(device), "workers": world, "attention": attention, "steps": step,
              "published_step": best["step"] if kept_best else step,
              "best_val_loss": best["val_loss"] if best["step"] else None,
              "seconds": round(time.time() - t_run, 1), "first_step_seconds": round(first_step_s or 0.0, 1),
              "parameters": n_params,
              "final": curve[-1] if curve else {}, "curve": curve,
              "data": llm_data.summary(train, codec["tokens_per_second"]), **codec,
              "validation_examples": len(val), "dropped_over_max_len": dropped, "vocab": vocab.version}
    if rank == 0:
        publish_artifact(model, vocab, out, result, tc, llm_cfg)
    return result


def publish_artifact(model, vocab, out: Path, result: dict, tc: dict, llm_cfg: dict) -> Path:
    tmp = artifacts.staging_dir(out)
    model = model.to(torch.bfloat16) if tc.get("save_dtype") == "bfloat16" else model
    save(model, vocab, tmp, max_shard_size=tc.get("max_shard_size", "15MB"))
    curve = result.pop("curve")
    (tmp / "training_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
    (tmp / "training.json").write_text(json.dumps({**result, "train": tc, "llm": llm_cfg}, indent=1, default=str))
    loss_curve_png(curve, tmp / "loss_curve.png")
    return artifacts.publish(tmp, out)


def loss_curve_png(curve: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in curve]
    ax.plot(steps, [r["train_loss"] for r in curve], label="train")
    val = [(r["step"], r["val_loss"]) for r in curve if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss per target token (nats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def ray_worker(config: dict) -> None:
    """Ray Train's per-worker function: the same loop, DDP through ray.train.torch."""
    import ray.train
    import ray.train.torch
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    result = train_loop(config["tc"], config["llm"], config["data"], Path(config["out"]), Path(config["ckpt_dir"]),
                        device, config["resume"], rank, world, wrap=ray.train.torch.prepare_model,
                        run_info=config["run_info"])
    ray.train.report({"steps": result["steps"]})


def train_with_ray(tc: dict, llm_cfg: dict, data: list[str], out: Path, ckpt_dir: Path, resume: bool,
                   use_gpu: bool, storage: Path, run_info: dict | None = None) -> dict:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    trainer = TorchTrainer(
        ray_worker,
        train_loop_config={"tc": tc, "llm": llm_cfg, "data": [str(d) for d in data], "out": str(out),
                           "ckpt_dir": str(ckpt_dir), "resume": resume, "run_info": run_info or {}},
        scaling_config=ScalingConfig(num_workers=tc["workers"], use_gpu=use_gpu),
        run_config=RunConfig(storage_path=str(storage.resolve()), name=f"train_editor-{int(time.time())}"))
    trainer.fit()
    # rank 0 published the artifact; its training.json is the run's record (Ray's own result
    # metrics depend on the Train version)
    return json.loads((out / "training.json").read_text())
