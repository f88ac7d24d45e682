"""Artifacts are directories, published by rename: a reader never sees a half-written one."""
import os
import shutil
import time
from pathlib import Path

# the shipped models (the LLM answers in the codec's ids: the three go together)
SHIPPED = Path(__file__).resolve().parent / "artifacts"
SHIPPED_TOKENIZER, SHIPPED_DECODER = SHIPPED / "tokenizer-v3", SHIPPED / "decoder-v3"
SHIPPED_LLM = SHIPPED / "editor-llm-v5"


def publish(tmp: Path, final: Path) -> Path:
    """Move the finished directory `tmp` to `final`, replacing an older artifact of the same name."""
    final = Path(final)
    old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.time_ns()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def staging_dir(final: Path) -> Path:
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp
