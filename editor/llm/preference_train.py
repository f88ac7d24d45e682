"""The loop the preference trainers share (reward model, DPO; PPO can align with it): pairs in, one
model trained on a fixed number of pairs per step, one process or N Ray Train workers.

What differs between trainers is a `Spec`: the module to train, its loss over a list of pairs, its
held-out evaluation and how its artifact is written. What is the same lives here, reusing the SFT
trainer's pieces (editor/llm/train.py): AdamW with decay on matrices only, warm-up + cosine lr over
steps or minutes (whichever ends first, minutes counted after the first step), bf16 autocast on
CUDA, atomic checkpoints every `ckpt_every` steps (weights, optimizer, step, pair order position,
elapsed time, curve, RNG) that `resume` continues from, and an artifact published by rename.

Pairs are drawn in a seeded shuffle per epoch; a step takes `pairs_per_step` of them (the global
batch). With N workers every worker draws the same global batch and scores pairs[rank::N]; each
scales its summed pair loss by N / pairs, so DDP's gradient mean is exactly the global pair mean.
Rows are right-padded per step (logprobs.pad_rows), not packed: a pair's two answers must be scored
as whole sequences, and the answer log-probs do not depend on padding. Shapes vary per step, so
nothing is compiled (torch.compile would recompile for every new length)."""
import hashlib
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from editor import artifacts
from editor.llm import chat, pairs as llm_pairs
from editor.llm.logprobs import pad_rows
from editor.llm.train import lr_factor, optimizer, stop_together
from editor.training import check_counts, check_positive, device_name, resume_state, save_checkpoint


def check_editor_dir(path, what: str = "editor") -> Path:
    p = Path(path) if path else None
    if p is None:
        raise ValueError(f"{what}= is required: the SFT editor LLM artifact, e.g. {what}=editor/artifacts/editor-llm-v12")
    if not (p / "llm_vocab.json").is_file() or not (p / "config.json").is_file():
        raise ValueError(f"{what}={p}: not an editor LLM artifact (no llm_vocab.json/config.json; "
                         "train one with pipeline=train_editor)")
    return p


def check_vocab(model, vocab, where) -> None:
    """The weights and the vocab layout saved beside them must describe the same id space: a model
    with fewer rows would index past its embedding, one with more reads ids that mean something else."""
    rows = model.get_input_embeddings().num_embeddings
    if rows != vocab.size:
        raise ValueError(f"{where}: vocab mismatch: the model has {rows} embedding rows, its vocab "
                         f"({vocab.version}) has {vocab.size} ids")


def pair_codec(rows: list[dict], editor_codec: str | None, where) -> None:
    """Pairs carry codec ids; ids of another codec tokenizer are other sounds. A pairs table that names
    its codec (an optional `tokenizer_version` column) must name the editor's."""
    seen = {str(r["tokenizer_version"]) for r in rows if r.get("tokenizer_version")}
    bad = sorted(v for v in seen if editor_codec and v != editor_codec)
    if bad:
        raise ValueError(f"pairs={where}: vocab mismatch: the pairs' codec ids are of {bad}, "
                         f"the editor was trained on codec tokenizer {editor_codec}")


@dataclass
class Pairs:
    """Built token sequences of one split: seqs[i] = (chosen, rejected) chat.build_example outputs."""
    seqs: list
    rows: list = field(repr=False)

    def __len__(self):
        return len(self.seqs)


def load_pairs(paths, vocab, max_len: int, editor_codec: str | None, log=print) -> tuple[Pairs, Pairs, dict]:
    """(train pairs, validation pairs, summary) with pairs longer than max_len dropped and counted."""
    if not paths:
        raise ValueError("pairs= is required: pairs tables (pairs.parquet, a release or a "
                         "pipeline=preference_pairs directory), e.g. pairs=[outputs/preference_pairs]")
    rows = llm_pairs.read_pairs(paths)
    pair_codec(rows, editor_codec, paths)
    out, dropped = {"train": [], "validation": []}, Counter()
    for r in rows:
        if r["split"] not in out:
            continue
        c, j = (chat.build_example(e, vocab) for e in llm_pairs.answered(r))
        if max(len(c["input_ids"]), len(j["input_ids"])) > max_len:
            dropped[r["split"]] += 1
            continue
        out[r["split"]].append((c, j, r))
    if dropped:
        log(f"dropped pairs longer than max_len={max_len}: {dict(dropped)}")
    if not out["train"]:
        raise ValueError(f"pairs={paths}: no train-split pairs to train on "
                         f"({len(rows)} pairs, {sum(dropped.values())} dropped as too long)")
    train, val = (Pairs([(c, j) for c, j, _ in out[s]], [r for _, _, r in out[s]]) for s in ("train", "validation"))
    summary = {"train_pairs": len(train), "validation_pairs": len(val), "dropped_too_long": dict(dropped),
               "train_by_rater_task": dict(Counter(f"{r['rater']}/{r['task']}" for r in train.rows)),
               "validation_by_rater_task": dict(Counter(f"{r['rater']}/{r['task']}" for r in val.rows))}
    return train, val, summary


class PairOrder:
    """A seeded permutation of the pairs per epoch; its state (epoch, position) is checkpointed."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch, self.pos = n, seed, 0, 0
        self._perm = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def next(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos == self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self._perm = self._permutation()
            take = min(k - len(out), self.n - self.pos)
            out += self._perm[self.pos:self.pos + take].tolist()
            self.pos += take
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state(self, st: dict) -> None:
        self.epoch, self.pos = st["epoch"], st["pos"]
        self._perm = self._permutation()


def rows_of(seqs: list, vocab, device) -> tuple[dict, int]:
    """One batch of n pairs as 2n right-padded rows (chosen first, then rejected) on the device."""
    b = pad_rows([c for c, _ in seqs] + [j for _, j in seqs], vocab.pad)
    return {k: v.to(device, non_blocking=True) for k, v in b.items()}, len(seqs)


def total_steps(tc: dict, n_train: int) -> int:
    """`steps`, or (null) `epochs` passes over the train pairs."""
    if tc.get("steps") is not None:
        return int(tc["steps"])
    return max(1, math.ceil(float(tc["epochs"]) * n_train / tc["pairs_per_step"]))


def fingerprint(tc: dict, editor, pair_rows: list[dict], extra=None) -> str:
    """What a checkpoint must match to be resumed (budgets, intervals and worker count may change): the
    settings, what the SFT editor is (its files' bytes) and what the pairs are, in their order."""
    keep = {k: v for k, v in tc.items() if k not in ("steps", "epochs", "max_minutes", "log_every", "eval_every",
                                                     "ckpt_every", "workers", "eval_pairs")}
    blob = json.dumps([keep, artifacts.content_digest(editor), llm_pairs.digest(pair_rows), extra],
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def check_settings(tc: dict) -> None:
    """The shared settings the loop divides by or schedules over, checked before any model loads."""
    check_counts(tc, ("pairs_per_step", "log_every", "eval_every", "ckpt_every"), "pipeline.train")
    check_positive(tc, ("max_minutes", "lr"), "pipeline.train")
    if tc.get("steps") is None:
        check_positive(tc, ("epochs",), "pipeline.train", "when steps is null")
    else:
        check_counts(tc, ("steps",), "pipeline.train")


@dataclass
class Spec:
    """One preference trainer.

    model: the module whose parameters train (and whose state_dict is checkpointed).
    loss(net, seqs, device) -> (summed loss over the pairs [scalar tensor], {metric: summed tensor}).
    evaluate(seqs, device) -> {metric: mean} on held-out pairs (rank 0; model in eval mode).
    publish(model, tmp_dir, result) writes the artifact's model files into tmp_dir.
    panels: [(title, [curve keys])] for the curve PNG."""
    name: str
    model: torch.nn.Module
    loss: Callable
    evaluate: Callable
    publish: Callable
    panels: list


def curves_png(curve: list[dict], path: Path, panels: list) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for k in keys:
            pts = [(r["step"], r[k]) for r in curve if r.get(k) is not None]
            if pts:
                ax.plot(*zip(*pts), "o-" if k.startswith("val_") else "-", ms=3, label=k)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(spec: Spec, tc: dict, train_pairs: Pairs, val_pairs: Pairs, vocab, out: Path, ckpt_dir: Path, device,
          resume: bool, fp: str, rank: int = 0, world: int = 1, wrap=None, log=print, run_info: dict | None = None) -> dict:
    """The loop of one worker; rank 0 evaluates, checkpoints and publishes. wrap(model) -> the DDP model."""
    device = torch.device(device)
    check_settings(tc)
    if tc["pairs_per_step"] % world:
        raise ValueError(f"pipeline.train.pairs_per_step={tc['pairs_per_step']} must be a multiple of the {world} workers")
    model = spec.model.to(device)
    opt = optimizer(model, tc, device)
    order = PairOrder(len(train_pairs), tc["seed"])
    steps = total_steps(tc, len(train_pairs))
    ckpt = Path(ckpt_dir) / "checkpoint.pt"
    step, elapsed, curve = 0, 0.0, []
    st = resume_state(ckpt, fp, resume, log if rank == 0 else (lambda *_: None))
    if st:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        order.load_state(st["order"])
        step, elapsed, curve = st["step"], st["elapsed_s"], st["curve"]
        torch.set_rng_state(st["torch_rng"])
    cuda = device.type == "cuda"
    autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    net = wrap(model) if wrap else model
    budget_s = 60.0 * tc["max_minutes"]
    val_seqs = val_pairs.seqs
    if tc.get("eval_pairs") and len(val_seqs) > tc["eval_pairs"]:     # a fixed random sample, not the file's first
        keep = np.random.default_rng(tc["seed"]).choice(len(val_seqs), tc["eval_pairs"], replace=False)
        val_seqs = [val_seqs[i] for i in sorted(keep)]

    def evaluate() -> dict:
        model.eval()
        with torch.no_grad(), autocast():
            m = spec.evaluate(val_seqs, device) if val_seqs else {}
        model.train()
        return {f"val_{k}": round(float(v), 5) for k, v in m.items()}

    if rank == 0:
        log(f"{spec.name}: {len(train_pairs)} train pairs, {len(val_pairs)} validation; {steps} steps of "
            f"{tc['pairs_per_step']} pairs; {world} worker(s) on {device}")
        if not val_seqs:
            log("no validation pairs: no held-out metrics")
        if step == 0 and not curve:
            curve.append({"step": 0, **evaluate()})  # where the SFT model starts
    model.train()
    fresh = lambda: {"loss": 0.0, "n": 0, "m": Counter(), "t": time.time()}
    t_run, window, first_step_s = time.time() - elapsed, fresh(), None
    # a run stopped by its time budget and resumed has no time left: it publishes what it has
    spent = st is not None and elapsed > budget_s
    while step < steps and not spent:
        progress = max(step / steps, (time.time() - t_run) / budget_s)
        for g in opt.param_groups:
            g["lr"] = tc["lr"] * lr_factor(step, tc, progress)
        idx = order.next(tc["pairs_per_step"])
        mine = [train_pairs.seqs[i] for i in idx[rank::world]]
        with autocast():
            loss_sum, metrics = spec.loss(net, mine, device)
        (loss_sum * (world / len(idx))).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if first_step_s is None:   # as the SFT trainer: the budget starts after the first (slowest) step
            first_step_s = time.time() - t_run - elapsed
            t_run += first_step_s
        window["loss"] += loss_sum.detach()
        window["n"] += len(mine)
        window["m"].update({k: v.detach() for k, v in metrics.items()})
        out_of_time = stop_together(time.time() - t_run > budget_s, world, device, due=step % tc["log_every"] == 0)
        last = step == steps or out_of_time
        if rank == 0 and (step % tc["log_every"] == 0 or last):
            dt = time.time() - window["t"]
            n = max(window["n"], 1)
            row = {"step": step, "epoch": round(step * tc["pairs_per_step"] / len(train_pairs), 3),
                   "minutes": round((time.time() - t_run) / 60, 3), "lr": opt.param_groups[0]["lr"],
                   "train_loss": round(float(window["loss"]) / n, 5),
                   **{f"train_{k}": round(float(v) / n, 5) for k, v in window["m"].items()},
                   "pairs_per_s": round(window["n"] * world / dt, 2) if dt else None}
            if step % tc["eval_every"] == 0 or last:
                row.update(evaluate())
            curve.append(row)
            log(json.dumps(row))
            window = fresh()
        if rank == 0 and (step % tc["ckpt_every"] == 0 or last):
            save_checkpoint(ckpt, {"fingerprint": fp, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                   "order": order.state(), "step": step, "elapsed_s": time.time() - t_run,
                                   "curve": curve, "torch_rng": torch.get_rng_state()})
        if out_of_time:
            if rank == 0:
                log(f"stopped at the time budget ({tc['max_minutes']} min) after {step} steps")
            break
    model.eval()
    final_val = {k: v for k, v in curve[-1].items() if k.startswith("val_")} if curve else {}
    result = {**(run_info or {}), "device": device_name(device), "workers": world, "steps": step,
              "planned_steps": steps, "epochs": round(step * tc["pairs_per_step"] / len(train_pairs), 3),
              "seconds": round(time.time() - t_run, 1), "first_step_seconds": round(first_step_s or 0.0, 1),
              "start": curve[0] if curve else {}, "final": final_val, "curve": curve}
    if rank == 0:
        publish(spec, out, result, tc)
    return result


def publish(spec: Spec, out: Path, result: dict, tc: dict) -> Path:
    tmp = artifacts.staging_dir(out)
    spec.publish(spec.model, tmp, result)
    curve = result.pop("curve")
    (tmp / "training_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
    (tmp / "training.json").write_text(json.dumps({**result, "train": tc}, indent=1, default=str) + "\n")
    curves_png(curve, tmp / "curves.png", spec.panels)
    result["curve"] = curve
    return artifacts.publish(tmp, out)


# ---- launching: one process, or N Ray Train workers ---------------------------------------------
def launch(config: dict, device, rank: int = 0, world: int = 1, wrap=None, log=print) -> dict:
    """Build the trainer named by config["builder"] (a module with build(config, log) -> Built) and train.
    Every worker builds the same model from the same seed, so N workers start where one would."""
    import importlib
    quiet = log if rank == 0 else (lambda *_: None)
    torch.manual_seed(config["train"]["seed"])
    b = importlib.import_module(config["builder"]).build(config, quiet)
    return train(b.spec, config["train"], b.train, b.val, b.vocab, Path(config["out"]), Path(config["ckpt_dir"]),
                 device, config["resume"], b.fingerprint, rank, world, wrap, quiet,
                 {**config["run_info"], **b.info})


@dataclass
class Built:
    spec: Spec
    train: Pairs
    val: Pairs
    vocab: object
    fingerprint: str
    info: dict          # goes into training.json (pairs per rater/task, editor, ...)


def ray_worker(config: dict) -> None:
    """Ray Train's per-worker function: the same loop, DDP through ray.train.torch."""
    import ray.train
    import ray.train.torch
    ctx = ray.train.get_context()
    result = launch(config, ray.train.torch.get_device(), ctx.get_world_rank(), ctx.get_world_size(),
                    wrap=ray.train.torch.prepare_model)
    ray.train.report({"steps": result["steps"]})


def fit_workers(cfg, worker, config: dict, workers: int, ckpt_dir: Path, out: Path) -> tuple[dict, str]:
    """Run worker(config) on `workers` Ray Train workers (GPUs where the cluster has them); rank 0
    publishes to `out`, whose training.json is returned with where it ran."""
    import importlib.util
    if importlib.util.find_spec("ray") is None:
        raise ValueError(f"pipeline.train.workers={workers} needs Ray Train, which is not installed here; "
                         "use pipeline.train.workers=1 (this process, one device)")
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from pipelines.runner import init_ray
    init_ray(cfg.ray)
    use_gpu = bool(ray.cluster_resources().get("GPU"))
    TorchTrainer(worker, train_loop_config=config,
                 scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
                 run_config=RunConfig(storage_path=str((ckpt_dir / "ray").resolve()),
                                      name=f"{cfg.pipeline.name}-{int(time.time())}")).fit()
    return json.loads((out / "training.json").read_text()), f"{workers} Ray Train workers ({'GPU' if use_gpu else 'CPU'})"


def run_pipeline(cfg, builder: str, kind: str) -> dict:
    """pipeline=train_reward / train_dpo: the config -> launch (or Ray Train with train.workers > 1).
    kind names the default output directory: output_dir/<kind>/<version>."""
    from omegaconf import OmegaConf
    from editor.training import command, pick_device
    p = cfg.pipeline
    tc = OmegaConf.to_container(p.train, resolve=True)
    paths = p.pairs
    paths = ([] if not paths else list(paths) if OmegaConf.is_list(paths) else [str(paths)])
    out = Path(p.artifact_out or Path(cfg.output_dir) / kind / p.version)
    ckpt_dir = Path(p.checkpoint_dir or out.with_name(out.name + ".checkpoints"))
    config = {"builder": builder, "editor": str(check_editor_dir(p.editor)), "pairs": paths, "train": tc,
              "out": str(out), "ckpt_dir": str(ckpt_dir), "resume": bool(cfg.resume),
              "run_info": {"command": command(), "version": p.version}}
    if not paths:   # named before any model loads
        load_pairs(paths, None, 0, None)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    workers = int(tc.get("workers") or 1)
    if workers > 1:
        result, where = fit_workers(cfg, ray_worker, config, workers, ckpt_dir, out)
    else:
        dev = pick_device(p.device)
        result = launch(config, dev)
        where = str(dev)
    print(f"{p.name}: {result['steps']} steps in {result['seconds'] / 60:.1f} min on {where} -> {out}; "
          f"held-out {result.get('final')}")
    return {"artifact": str(out), **result}
