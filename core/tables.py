"""User-supplied tables (labels, source manifests): parquet or csv, with required columns."""
from pathlib import Path

import pandas as pd


def read_table(path, what: str, required: set[str]) -> pd.DataFrame:
    """Read `path` (named `what` in errors, e.g. 'labels') and check its required columns."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{what}={path}: no such file")
    t = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    missing = set(required) - set(t.columns)
    if missing:
        raise ValueError(f"{what}={path}: missing columns {sorted(missing)}")
    return t
