"""Artifacts are directories, published by rename: a reader never sees a half-written one."""
import ctypes
import errno
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

# the shipped models (the LLM answers in the codec's ids: the three go together)
SHIPPED = Path(__file__).resolve().parent / "artifacts"
SHIPPED_TOKENIZER, SHIPPED_DECODER = SHIPPED / "tokenizer-v10", SHIPPED / "decoder-v10"
SHIPPED_LLM = SHIPPED / "editor-llm-v12"
REPO = SHIPPED.parent.parent


def in_repo(path: Path) -> str:
    """A path under the repository as commands and result files spell it (editor/artifacts/editor-llm-v12):
    the benches' defaults, so their records read the same on every machine."""
    return Path(path).resolve().relative_to(REPO).as_posix()


def codec_dirs(version: str, root: Path = SHIPPED) -> tuple[Path, Path] | None:
    """The tokenizer and decoder under `root` that speak codec tokenizer `version` (the tokenizer's
    config.json 'version', a decoder's 'tokenizer_version'; of several such decoders the newest), or None
    when either is missing: an LLM trained on another codec's ids finds its own codec unnamed."""
    def config(d: Path) -> dict:
        try:
            return json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            return {}
    # dot-dirs are staging or replaced artifacts (publish), never a codec to load
    cfgs = ({d: config(d) for d in Path(root).iterdir() if d.is_dir() and not d.name.startswith(".")}
            if Path(root).is_dir() else {})
    tok = [d for d, c in cfgs.items() if c.get("version") == version and "tokenizer_version" not in c]
    dec = [d for d, c in cfgs.items() if c.get("tokenizer_version") == version]
    # the newest decoder by its version's number (decoder-v10 after decoder-v9)
    number = lambda d: int(n) if (n := str(cfgs[d].get("version", "")).rpartition("-v")[2]).isdigit() else -1
    return (tok[0], max(dec, key=number)) if tok and dec else None


def check_new_version(version: str, out, setting: str) -> None:
    """A codec trained now must not take a shipped artifact's version name: artifacts are bound to each
    other by version (an LLM to the codec it speaks, a decoder to its tokenizer), so a second model under
    that name would be taken for the shipped one."""
    shipped = SHIPPED / version
    if shipped.exists() and Path(out).resolve() != shipped.resolve():
        raise ValueError(f"{setting}={version} is the shipped artifact {shipped}'s name: give the model you train a "
                         f"new one (e.g. {setting}={version.rpartition('-v')[0] or version}-v{_next(version)})")


def _next(version: str) -> str:
    n = version.rpartition("-v")[2]
    return str(int(n) + 1) if n.isdigit() else "2"


def content_digest(directory) -> str:
    """What an artifact directory holds (every file's path and bytes): a run resumed on a model only
    continues where that model is the same, not merely where it has the same path."""
    h = hashlib.sha1()
    root = Path(directory)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        _hash_file(h, f, f.relative_to(root).as_posix())
    return h.hexdigest()[:16]


def _hash_file(h, f: Path, name: str) -> None:
    """Its name, then its bytes, into h, a block at a time (weights may be large)."""
    h.update(f"\0{name}\0".encode())
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def weights_digest(directory) -> str:
    """What a model is, by its config (parsed, so a line-ending or key-order change is no change) and its
    weight files' bytes: what a decoder records of its tokenizer."""
    root = Path(directory)
    h = hashlib.sha1(json.dumps(json.loads((root / "config.json").read_text()), sort_keys=True).encode())
    for f in sorted(root.glob("*.safetensors")):
        _hash_file(h, f, f.name)
    return h.hexdigest()[:16]


def sft_settings(sft_dir, tmp: Path) -> dict:
    """What an editor trained from an SFT one carries over so that Editor.load decodes it as the SFT
    editor: its inference.json (guidance) copied into tmp, and its training.json "data" (the piece
    lengths and speed ratios Editor.load reads) returned for the new training.json."""
    src = Path(sft_dir)
    if (src / "inference.json").is_file():
        shutil.copy2(src / "inference.json", tmp / "inference.json")
    made = src / "training.json"
    return {"data": json.loads(made.read_text()).get("data", {})} if made.is_file() else {}


def publish(tmp: Path, final: Path) -> Path:
    """Move the finished directory `tmp` to `final`, replacing an older artifact of the same name. Where
    the system can swap two paths in one step (Linux), the name never stands empty: a crash leaves the old
    artifact or the new one under it, never neither. Elsewhere the old one moves aside first, and a crash
    between the two renames leaves it beside the name (.NAME.old-*)."""
    final = Path(final)
    if final.exists() and _exchange(tmp, final):
        shutil.rmtree(tmp, ignore_errors=True)       # tmp now holds the old artifact
        return final
    old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.time_ns()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (renameat2 with RENAME_EXCHANGE); False where the C library or
    the file system has no such call, and the caller renames in two steps."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):    # EPERM: a sandbox that filters the call
        return False
    raise OSError(err, os.strerror(err), str(b))


def staging_dir(final: Path) -> Path:
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp
