"""Human labels of pairs on a scale, in SQLite: items (pairs, in dataset order) and ratings.

One store per database file; a LabelStore object works on one task ("margin"; "candidates", the
5-point ratings of candidate answers, pipelines/label_candidates.py) and its scale. Every rating is committed at once (autocommit, WAL, synchronous=FULL), so
closing the browser or killing the server loses nothing. Re-rating an item replaces the old rating.
A write that waits longer than timeout_s for another writer raises LabelStoreBusy: nothing is written,
so the caller can answer "retry" instead of failing.

Export: `python -m scorers.labels DB OUT.parquet|OUT.csv [TASK]`."""
import itertools
import sqlite3
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,      -- dataset sample key
    ord INTEGER NOT NULL,          -- dataset order: resume = first unrated in this order
    src TEXT, tgt TEXT,            -- references '<absolute shard path>#<key>.src.flac'
    tag TEXT, text TEXT, dataset TEXT);
CREATE TABLE IF NOT EXISTS ratings (
    item_id TEXT NOT NULL REFERENCES items(item_id),
    annotator TEXT NOT NULL,
    task TEXT NOT NULL,
    score NUMERIC NOT NULL,        -- NUMERIC: integers stay integers, continuous scales also fit
    scale_min NUMERIC, scale_max NUMERIC,
    created_at TEXT NOT NULL,
    PRIMARY KEY (item_id, annotator, task));
CREATE INDEX IF NOT EXISTS items_ord ON items(ord);
"""
EXPORT_COLUMNS = ["src", "tgt", "tag", "score", "annotator", "key", "text"]


def shard_ref(shard: str | Path, key: str, suffix: str) -> str:
    """Reference of one member of a WebDataset shard, as label tables store it."""
    return f"{Path(shard).resolve()}#{key}.{suffix}"


class LabelStoreBusy(RuntimeError):
    """Another writer held the database longer than the store's timeout; retrying later can succeed."""


@contextmanager
def _busy_as_error(store: "LabelStore"):
    try:
        yield
    except sqlite3.OperationalError as e:
        if (e.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):  # 0xFF: extended codes too
            raise LabelStoreBusy(f"label database {store.path} stayed locked by another writer for "
                                 f"over {store.timeout_s} s") from e
        raise


class LabelStore:
    def __init__(self, path: str | Path, task: str = "margin", scale: tuple[float, float] = (1, 10),
                 integer_scores: bool = False, timeout_s: float = 5.0):
        """integer_scores: only whole numbers on the scale (a 1-10 rating page); otherwise any number in it.
        timeout_s: how long a statement waits for another writer's lock before LabelStoreBusy."""
        self.path, self.task, self.scale = Path(path), task, tuple(scale)
        self.integer_scores, self.timeout_s = integer_scores, timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one connection shared by the server's threads, serialized by a lock
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise ValueError(f"label database {self.path} cannot be opened: {e}") from e
        self._lock = threading.Lock()

    def close(self):
        with self._lock:
            self._db.close()

    def _q(self, sql: str, args=()) -> list[tuple]:
        with self._lock, _busy_as_error(self):
            return self._db.execute(sql, args).fetchall()

    # items
    def add_items(self, items: list[dict]):
        """items: dicts with item_id, src, tgt, tag, text, dataset, in dataset order. Adding again
        (a restart) updates them and keeps ratings; order is by position in this call."""
        start = self._q("SELECT COALESCE(MAX(ord), -1) + 1 FROM items")[0][0]
        rows = [(it["item_id"], start + i, it.get("src"), it.get("tgt"), it.get("tag"), it.get("text"),
                 it.get("dataset")) for i, it in enumerate(items)]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO items VALUES (?,?,?,?,?,?,?) ON CONFLICT(item_id) DO UPDATE SET ord=excluded.ord, "
                "src=excluded.src, tgt=excluded.tgt, tag=excluded.tag, text=excluded.text, dataset=excluded.dataset",
                rows)
            self._db.execute("COMMIT")

    def item_ids(self) -> list[str]:
        return [r[0] for r in self._q("SELECT item_id FROM items ORDER BY ord")]

    # ratings
    def check_score(self, score):
        """ValueError unless score is on this store's scale (and whole, for integer_scores)."""
        lo, hi = self.scale
        kind = int if self.integer_scores else (int, float)
        if not isinstance(score, kind) or isinstance(score, bool) or not lo <= score <= hi:
            what = "an integer" if self.integer_scores else "a number"
            raise ValueError(f"score {score!r:.40} is not {what} on the scale {lo}..{hi}")

    def rate(self, item_id: str, annotator: str, score: float):
        self.rate_many({item_id: score}, annotator)

    def rate_many(self, scores: dict[str, float], annotator: str):
        """Ratings of several items by one annotator, in one transaction: all are stored or none (the
        candidate page saves one prompt's answers together, and a half-saved prompt would count as
        rated for nobody yet still feed the pairs). KeyError for an item the store does not have."""
        if not scores:
            raise ValueError("no ratings given")
        for score in scores.values():
            self.check_score(score)
        lo, hi = self.scale
        if not annotator or not annotator.strip():
            raise ValueError("annotator name is empty")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        rows = [(item_id, annotator.strip(), self.task, score, lo, hi, now) for item_id, score in scores.items()]
        with self._lock, _busy_as_error(self):
            known = {r[0] for r in self._db.execute(
                f"SELECT item_id FROM items WHERE item_id IN ({','.join('?' * len(scores))})", list(scores))}
            unknown = [i for i in scores if i not in known]
            if unknown:
                raise KeyError(unknown[0])
            self._db.execute("BEGIN IMMEDIATE")  # the write lock now: a busy store fails before any row
            try:
                self._db.executemany("INSERT OR REPLACE INTO ratings VALUES (?,?,?,?,?,?,?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def rating(self, item_id: str, annotator: str) -> float | None:
        r = self._q("SELECT score FROM ratings WHERE item_id=? AND annotator=? AND task=?",
                    (item_id, annotator, self.task))
        return r[0][0] if r else None

    def ratings(self, annotator: str | None = None) -> list[dict]:
        sql = ("SELECT r.item_id, r.annotator, r.score, r.scale_min, r.scale_max, r.task, r.created_at, "
               "i.src, i.tgt, i.tag, i.text FROM ratings r JOIN items i USING (item_id) WHERE r.task=?")
        args = [self.task]
        if annotator is not None:
            sql, args = sql + " AND r.annotator=?", args + [annotator]
        cols = ["item_id", "annotator", "score", "scale_min", "scale_max", "task", "created_at", "src", "tgt",
                "tag", "text"]
        return [dict(zip(cols, r)) for r in self._q(sql + " ORDER BY i.ord, r.annotator", args)]

    def rated_ids(self, annotator: str) -> set[str]:
        return {r[0] for r in self._q("SELECT item_id FROM ratings WHERE annotator=? AND task=?",
                                      (annotator, self.task))}

    def next_unrated(self, annotator: str, among: list[str] | None = None) -> str | None:
        """First item in dataset order (or in `among`, a subset in order) this annotator has not rated."""
        if among is not None:
            done = self.rated_ids(annotator)
            return next((i for i in among if i not in done), None)
        r = self._q("SELECT item_id FROM items WHERE item_id NOT IN "
                    "(SELECT item_id FROM ratings WHERE annotator=? AND task=?) ORDER BY ord LIMIT 1",
                    (annotator, self.task))
        return r[0][0] if r else None

    def counts(self) -> dict[str, int]:
        """Ratings per annotator."""
        return dict(self._q("SELECT annotator, COUNT(*) FROM ratings WHERE task=? GROUP BY annotator "
                            "ORDER BY annotator", (self.task,)))

    def agreement(self) -> dict:
        """On items rated by >= 2 annotators: mean absolute difference over all pairs of their ratings,
        and Spearman's rho per pair of annotators with >= 3 common items (None when undefined)."""
        from scipy.stats import spearmanr
        by_item: dict[str, dict[str, float]] = {}
        for item, who, score in self._q("SELECT item_id, annotator, score FROM ratings WHERE task=?", (self.task,)):
            by_item.setdefault(item, {})[who] = score
        shared = {i: r for i, r in by_item.items() if len(r) >= 2}
        diffs = [abs(r[a] - r[b]) for r in shared.values() for a, b in itertools.combinations(sorted(r), 2)]
        pairs = []
        annotators = sorted({a for r in shared.values() for a in r})
        for a, b in itertools.combinations(annotators, 2):
            common = [r for r in shared.values() if a in r and b in r]
            rho = None
            if len(common) >= 3:
                rho = spearmanr([r[a] for r in common], [r[b] for r in common]).statistic
                rho = None if rho != rho else float(rho)  # NaN when one annotator gave a constant score
            if common:
                pairs.append({"annotators": [a, b], "n": len(common), "spearman": rho})
        return {"items": len(shared), "mean_abs_diff": sum(diffs) / len(diffs) if diffs else None, "pairs": pairs}

    def export(self, path: str | Path):
        """Labels table, one row per rating: src, tgt, tag, score, annotator, key, text."""
        import pandas as pd
        path = Path(path)
        rows = [{"src": r["src"], "tgt": r["tgt"], "tag": r["tag"], "score": r["score"], "annotator": r["annotator"],
                 "key": r["item_id"], "text": r["text"]} for r in self.ratings()]
        df = pd.DataFrame(rows, columns=EXPORT_COLUMNS)
        if path.suffix == ".parquet":
            df.to_parquet(path, index=False)
        elif path.suffix == ".csv":
            df.to_csv(path, index=False)
        else:
            raise ValueError(f"export to {path}: use a .parquet or .csv name")
        return df


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m scorers.labels DB OUT.parquet|OUT.csv [TASK]")
    store = LabelStore(sys.argv[1], *sys.argv[3:4])
    print(f"{len(store.export(sys.argv[2]))} ratings -> {sys.argv[2]}")
