"""The preference stage in one GPU call: the reward model, DPO and PPO on one pairs table, each as its
pipeline runs it (pipeline=train_reward, train_dpo, train_ppo with workers=1), without Hydra or Ray
(the GPU image has neither, and their wheels do not fit beside the tracked artifacts).

    python bench/preference_gpu.py PAIRS WORK OUT [only=KIND,...] [KIND.KEY=VALUE ...]   # KIND: reward, dpo, ppo
    e.g. ppo.max_minutes=4 dpo.lr=5e-7 reward.epochs=2; only=reward,dpo leaves PPO out

Settings are the pipelines' yaml defaults plus the overrides. PPO's reward model is the one trained
here. OUT receives the DPO and PPO actors (bf16 editor LLM directories) as two tars each, under the 16 MiB a
file may come back with, and every run's training.json, log and curve."""
import importlib.machinery
import importlib.util
import json
import sys
import tarfile
import time
import types
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# The GPU image has no soundfile/soxr; nothing here reads or writes audio (core.audio is only imported
# on the way to the editor module).
for name in ("soundfile", "soxr"):
    if importlib.util.find_spec(name) is None:
        stub = types.ModuleType(name)
        stub.__spec__ = importlib.machinery.ModuleSpec(name, None)   # transformers find_spec()s it
        sys.modules[name] = stub
from editor.artifacts import SHIPPED_LLM  # noqa: E402
from editor.llm import preference_train as pt  # noqa: E402
from editor.llm import train_ppo  # noqa: E402

SFT = SHIPPED_LLM
PIPELINES = {"reward": "train_reward", "dpo": "train_dpo", "ppo": "train_ppo"}


def version(kind: str) -> str:
    """The artifact version the pipeline would publish (its yaml's `version`)."""
    return yaml.safe_load((REPO / "configs" / "pipeline" / f"{PIPELINES[kind]}.yaml").read_text())["version"]


def settings(extra: list[str]) -> dict:
    tc = {k: yaml.safe_load((REPO / "configs" / "pipeline" / f"{p}.yaml").read_text())["train"]
          for k, p in PIPELINES.items()}
    for a in extra:
        key, _, value = a.partition("=")
        if key == "only":
            continue
        kind, _, name = key.partition(".")
        if kind not in tc or name not in tc[kind]:
            raise SystemExit(f"unknown override {a!r}: give KIND.KEY=VALUE with KIND one of {list(tc)} and KEY "
                             "a key of that pipeline's train settings")
        v = yaml.safe_load(value)
        tc[kind][name] = float(v) if isinstance(tc[kind][name], float) else v   # YAML reads 5e-6 as a string
    return tc


def ppo_run(tc: dict, pairs: Path, work: Path, summary: dict, device) -> None:
    """PPO against the reward model trained in WORK/reward."""
    t = time.time()
    (work / "ppo.checkpoints").mkdir(exist_ok=True)
    result = train_ppo.train_loop(tc["ppo"], SFT, work / "reward", [pairs], work / "ppo", work / "ppo.checkpoints",
                                  device, False, run_info={"command": " ".join(sys.argv), "pairs": [str(pairs)],
                                                           "version": version("ppo")})
    summary["ppo"] = {"seconds": round(time.time() - t, 1), "steps": result["steps"],
                      **{k: result.get(k) for k in ("actor_steps", "final")}}
    print(f"== ppo: {json.dumps(summary['ppo'], default=str)}", flush=True)


def main(pairs: Path, work: Path, out: Path, extra: list[str]) -> None:
    tc = settings(extra)
    only = next((a[5:].split(",") for a in extra if a.startswith("only=")), list(PIPELINES))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"device": device, "pairs": str(pairs), "settings": tc}), flush=True)
    summary = {}
    for kind in [k for k in ("reward", "dpo") if k in only]:
        t = time.time()
        config = {"builder": f"pipelines.{PIPELINES[kind]}", "editor": str(SFT), "pairs": [str(pairs)],
                  "train": tc[kind], "out": str(work / kind), "ckpt_dir": str(work / f"{kind}.checkpoints"),
                  "resume": False, "run_info": {"command": " ".join(sys.argv), "version": version(kind)}}
        (work / f"{kind}.checkpoints").mkdir(exist_ok=True)
        result = pt.launch(config, device)
        summary[kind] = {"seconds": round(time.time() - t, 1), "steps": result["steps"],
                         "start": result.get("start"), "final": result.get("final")}
        print(f"== {kind}: {json.dumps(summary[kind])}", flush=True)
    if "ppo" in only:
        ppo_run(tc, pairs, work, summary, device)
    for kind in [k for k in ("dpo", "ppo") if k in only]:
        # two tars per actor: its largest weights shard alone, and the rest (each under 16 MiB)
        files = sorted((work / kind).iterdir(), key=lambda f: f.stat().st_size, reverse=True)
        for part, chunk in (("a", files[:1]), ("b", files[1:])):
            with tarfile.open(out / f"{kind}_actor_{part}.tar", "w") as tar:
                for f in chunk:
                    tar.add(f, arcname=f"{kind}/{f.name}")
    with tarfile.open(out / "records.tar", "w") as tar:   # what comes back is at most 8 files
        for kind in PIPELINES:
            for f in sorted((work / kind).glob("*")):
                if f.name.startswith("training") or f.suffix == ".png":
                    tar.add(f, arcname=f"{kind}/{f.name}")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
