"""What every training entry shares (codec tokenizer, decoder, audio LLM and its preference trainers):
the device, checkpoints a killed run resumes from, and the record of how an artifact was made.
Publishing is editor/artifacts.py."""
import os
import sys
from pathlib import Path

import torch


def pick_device(want: str) -> torch.device:
    """`auto`: CUDA when there is one, else CPU; asking for CUDA where there is none is a named error."""
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"editor.device={want}: no CUDA device here (use editor.device=cpu or auto)")
    return torch.device(want)


def device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def command() -> str:
    """The command line that made an artifact, as the user typed it."""
    return " ".join(["python", "run.py", *sys.argv[1:]])


def check_counts(settings: dict, keys, where: str) -> None:
    """The settings a loop divides by, counts with or batches over: integers >= 1 (a bool is no count),
    each named with where it is set (e.g. pipeline.train.steps=0)."""
    for k in keys:
        v = settings.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{where}.{k}={v!r}: must be an integer >= 1")


def check_positive(settings: dict, keys, where: str, why: str = "") -> None:
    """Rates, budgets, temperatures: numbers > 0; why, where given, says what a zero would break."""
    for k in keys:
        v = settings.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{where}.{k}={v!r}: must be a number > 0" + (f" ({why})" if why else ""))


def save_checkpoint(path: Path, state: dict) -> None:
    """Written beside the last one and renamed over it: a crash mid-write leaves the previous checkpoint.
    The bytes reach the disk before the rename, so a machine that dies just after it leaves a whole file."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for stale in path.parent.glob(path.name + ".tmp-*"):   # a killed run's half-written one (another pid)
        stale.unlink(missing_ok=True)


def resume_state(ckpt: Path, fingerprint: str, resume: bool, log=print) -> dict | None:
    """The checkpoint a run continues from, or None (not resuming, or nothing written yet; not resuming
    discards an earlier run's checkpoint). A checkpoint of a run with other inputs or settings is an
    error: its optimizer and data position would not fit.
    Every checkpoint holds at least its run's fingerprint, step and trained seconds (elapsed_s)."""
    if not resume:
        if ckpt.is_file():
            # else it would stand until this run's first checkpoint, and a crash before that followed by
            # resume=true would continue the earlier run (budgets are outside the fingerprint)
            log(f"resume=false: starting from step 0; the earlier run's checkpoint {ckpt} is discarded")
            ckpt.unlink(missing_ok=True)
        return None
    if not ckpt.is_file():
        log(f"resume: no checkpoint in {ckpt.parent}, starting from step 0")
        return None
    st = torch.load(ckpt, map_location="cpu", weights_only=False)
    if st["fingerprint"] != fingerprint:
        raise ValueError(f"resume: {ckpt} was written by a run with other inputs or settings "
                         f"({st['fingerprint']} != {fingerprint}); start without resume=true or use another output")
    log(f"resumed from {ckpt} at step {st['step']} ({st['elapsed_s'] / 60:.1f} min trained)")
    return st
