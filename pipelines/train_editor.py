"""pipeline=train_editor data=[TOKEN_RELEASES...]: supervised fine-tuning of the audio LLM.

    python run.py pipeline=train_editor data=[outputs/emotion_triplets_tokens,outputs/speed_triplets_tokens]
    python run.py pipeline=train_editor data=... llm=base_0p5b editor.train.workers=8   # Ray Train, 8 GPUs
    python run.py pipeline=train_editor data=... resume=true                           # after a killed run

Examples of every task in the data (edits and the clone examples of their prompts) in the configured
mixture; the train split trains, the validation split gives the eval loss (editor/llm/train.py)."""
import glob
from pathlib import Path

from omegaconf import OmegaConf

from editor.llm import train as llm_train
from editor.training import command as run_command, pick_device


def data_list(cfg) -> list[str]:
    if not cfg.data:
        raise ValueError("data= is required: the token releases to train on, e.g. "
                         "data=[outputs/emotion_triplets_tokens] (python run.py pipeline=tokenize data=RELEASE makes one)")
    data = list(cfg.data) if OmegaConf.is_list(cfg.data) else [str(cfg.data)]
    for d in data:
        pattern = any(c in d for c in "*?[")
        if not (glob.glob(d) if pattern else Path(d).exists()):
            raise ValueError(f"data={d}: no such token release" + (" (the pattern matches nothing)" if pattern else ""))
    return data


def run(cfg):
    p = cfg.pipeline
    data = data_list(cfg)
    tc = OmegaConf.to_container(p.train, resolve=True)
    tc["workers"] = int(cfg.editor.train.workers)
    llm_cfg = OmegaConf.to_container(cfg.llm, resolve=True)
    out = Path(p.artifact_out or Path(cfg.output_dir) / "editor" / p.version)
    ckpt_dir = Path(p.checkpoint_dir or out.with_name(out.name + ".checkpoints"))
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    command = run_command()
    if tc["workers"] > 1:
        from pipelines.runner import init_ray
        import ray
        init_ray(cfg.ray)
        use_gpu = bool(ray.cluster_resources().get("GPU"))
        result = llm_train.train_with_ray(tc, llm_cfg, data, out, ckpt_dir, bool(cfg.resume), use_gpu,
                                          ckpt_dir / "ray", {"command": command, "data": data, "version": p.version})
        where = f"{tc['workers']} Ray Train workers ({'GPU' if use_gpu else 'CPU'})"
    else:
        dev = pick_device(cfg.editor.device)
        result = llm_train.train_loop(tc, llm_cfg, data, out, ckpt_dir, dev, bool(cfg.resume),
                                      run_info={"command": command, "data": data, "version": p.version})
        where = str(dev)
    print(f"editor LLM: {result['steps']} steps in {result['seconds'] / 60:.1f} min on {where} -> {out}")
    return {"artifact": str(out), **result}
