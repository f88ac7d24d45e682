"""Deterministic sample keys: a readable prefix plus a hash of everything that makes the sample."""
import hashlib
import json
import re


# A key names tar members (`KEY.src.flac`), and a USTAR member name holds at most 100 characters;
# the hash keeps keys unique, so the readable prefix can be cut without losing anything.
MAX_PREFIX = 48


def make_key(prefix_parts: list, identity: dict) -> str:
    """`<readable prefix>_<hash of identity>`; parts may be any values (a numeric speaker id)."""
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:12]
    prefix = "_".join(re.sub(r"[^A-Za-z0-9-]", "-", str(p)) for p in prefix_parts)[:MAX_PREFIX]
    return f"{prefix}_{digest}"  # no dots: webdataset splits member names at the first dot


def config_hash(cfg: dict, ignore=("output_dir", "limit", "ray", "hydra", "cache_dir")) -> str:
    """Hash of what determines the data: paths, limits and the Ray setup are left out."""
    def strip(d):
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if k not in ignore}
    kept = strip(cfg)
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]
