"""What every training entry shares (codec tokenizer, decoder, audio LLM): the device and the record of
how an artifact was made. Publishing is editor/artifacts.py."""
import sys

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
