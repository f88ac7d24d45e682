"""A judge artifact directory: config.json (version, tasks, classes, network size), one safetensors
file of weights per task, and meta.json (training data summary, held-out accuracy, confusion
matrices, the command). Published atomically: written in a temporary sibling directory that is then
renamed into place, so a crash never leaves a half artifact under the final name."""
import json
import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from scorers.judge.cnn import LogMelCNN
from scorers.judge.labels import TASKS

FORMAT = "lms-judge/1"


def publish(out: str | Path, version: str, models: dict[str, LogMelCNN], width: int, meta: dict) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        config = {"format": FORMAT, "version": version, "width": width,
                  "tasks": {t: list(TASKS[t]) for t in models}}
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for task, model in models.items():
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / f"{task}.safetensors"))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        if out.exists():  # replace: the old one moves aside first, then goes
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load(path: str | Path) -> tuple[dict, dict[str, LogMelCNN]]:
    """(config, {task: model in eval mode}); ValueError naming the path when it is not a judge artifact."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ValueError(f"judge={path}: not a judge artifact (no config.json)")
    try:
        config = json.loads(cfg_file.read_text())
    except ValueError as e:
        raise ValueError(f"judge={path}: config.json is not JSON ({e})") from None
    if config.get("format") != FORMAT:
        raise ValueError(f"judge={path}: format {config.get('format')!r}, expected {FORMAT!r}")
    models = {}
    for task, classes in config["tasks"].items():
        if tuple(classes) != TASKS.get(task):
            raise ValueError(f"judge={path}: task {task!r} has classes {classes}, this code knows {TASKS.get(task)}")
        m = LogMelCNN(len(classes), width=config["width"])
        m.load_state_dict(load_file(str(path / f"{task}.safetensors")))
        models[task] = m.eval()
    return config, models
