"""pipeline=train_ppo editor=DIR reward=DIR pairs=[...]: PPO of the SFT audio LLM against the reward model.

    python run.py pipeline=train_ppo editor=editor/artifacts/editor-llm-v12 reward=outputs/reward/reward-v1 \
        pairs=[outputs/preference_pairs]
    python run.py pipeline=train_ppo ... pipeline.train.workers=4   # 4 Ray Train workers (DDP)
    python run.py pipeline=train_ppo ... resume=true          # after a killed run

pipeline.train.workers=1 (the default): one process on one device (editor.device), no Ray. N > 1: N Ray
Train workers (gloo on CPU, NCCL on GPU) splitting each rollout batch (editor/llm/train_ppo.py). The
published actor is an editor LLM directory: Editor.load and the benchmark read it as they read the SFT one."""
from pathlib import Path

from omegaconf import OmegaConf

from editor.llm import train_ppo
from editor.llm.preference_train import fit_workers
from editor.training import command as run_command, pick_device


def pairs_list(p) -> list[str]:
    if not p.pairs:
        raise ValueError("pairs= is required: the preference pairs tables whose train-split prompts PPO trains on, "
                         "e.g. pairs=[outputs/preference_pairs] (python run.py pipeline=preference_pairs makes one)")
    return list(p.pairs) if OmegaConf.is_list(p.pairs) else [str(p.pairs)]


def run(cfg, reward_fn=None):
    """reward_fn: a module used instead of the reward model's scores (tests plant one; with workers > 1
    it travels to the Ray workers pickled)."""
    p = cfg.pipeline
    if not p.editor:
        raise ValueError("editor= is required: the SFT editor LLM directory (e.g. editor=editor/artifacts/editor-llm-v12)")
    if not p.reward and reward_fn is None:
        raise ValueError("reward= is required: the reward model directory (python run.py pipeline=train_reward makes one)")
    if int(cfg.editor.train.workers) > 1:
        raise ValueError("pipeline=train_ppo takes its worker count from pipeline.train.workers "
                         "(editor.train.workers is the SFT trainer's)")
    pairs = pairs_list(p)
    pc = OmegaConf.to_container(p.train, resolve=True)
    out = Path(p.artifact_out or Path(cfg.output_dir) / "editor" / p.version)
    ckpt_dir = Path(p.checkpoint_dir or out.with_name(out.name + ".checkpoints"))
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    run_info = {"command": run_command(), "pairs": pairs, "version": p.version}
    workers = int(pc.get("workers") or 1)
    if workers > 1:
        config = {"train": pc, "editor": str(p.editor), "reward": p.reward and str(p.reward), "pairs": pairs,
                  "out": str(out), "ckpt_dir": str(ckpt_dir), "resume": bool(cfg.resume), "run_info": run_info,
                  "reward_fn": reward_fn}
        result, where = fit_workers(cfg, train_ppo.ray_worker, config, workers, ckpt_dir, out)
    else:
        dev = pick_device(cfg.editor.device)
        result = train_ppo.train_loop(pc, p.editor, p.reward, pairs, out, ckpt_dir, dev, bool(cfg.resume),
                                      run_info=run_info, reward_fn=reward_fn)
        where = str(dev)
    print(f"PPO: {result['steps']} steps in {result['seconds'] / 60:.1f} min on {where} -> {out}")
    return {"artifact": str(out), **result}
