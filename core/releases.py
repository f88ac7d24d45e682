"""Versioned output of a pipeline, safe for cron jobs and crashes.

    output_dir/<pipeline>/releases/<id>/          a finished release (shards/, manifest, rejects, run.json)
    output_dir/<pipeline>/releases/<id>.partial/  the run in progress, resumable
    output_dir/<pipeline>/latest -> releases/<id> switched atomically when a run completes
    output_dir/<pipeline>/{shards,manifest.parquet,rejects.parquet,run.json} -> latest/...
    output_dir/<pipeline>/.lock                   held by the running job
    releases/<id>/.linking                        moved into place, `latest` not yet switched to it: the
                                                  next lock switches it (a run killed in between)

A partial release records each finished shard in progress/<shard>.json (its manifest rows, the
rejects seen since the previous shard, and the plan position reached), so a rerun of the same plan
continues after the last finished shard and writes exactly what an uninterrupted run would. A rerun of
another plan (the config changed after a crash) takes the finished samples of the killed run's shards
by key, where that run made its samples the same way (plan.json), and removes its dir when it publishes."""
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

LINKS = ("shards", "manifest.parquet", "rejects.parquet", "run.json", "report.md")
LINKING = ".linking"      # in a release moved into place whose `latest` switch has not happened yet


class Locked(ValueError):
    pass


def _plan_of(partial: Path) -> dict | None:
    try:
        return json.loads((partial / "plan.json").read_text())
    except (OSError, ValueError):
        return None          # written by older code, or cut short: not salvaged


class PipelineDir:
    def __init__(self, root: Path, pipeline: str):
        self.dir = root / pipeline
        self.releases = self.dir / "releases"
        self.releases.mkdir(parents=True, exist_ok=True)
        self._lock = None

    def lock(self):
        """One run per output: a second one exits with a clear message instead of interleaving."""
        f = open(self.dir / ".lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise Locked(f"{self.dir} is locked by a running job ({holder}); wait for it or use another output_dir")
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        f.flush()
        self._lock = f
        self._finish_publishing()

    def _finish_publishing(self):
        """A run killed between moving its release into place and switching `latest` to it left a finished
        release behind `latest` (marked LINKING): the newest such release becomes `latest` now."""
        pending = sorted(d for d in self.releases.glob(f"*/{LINKING}") if d.parent.is_dir())
        for marker in pending[:-1]:
            marker.unlink()
        if pending:
            self._link(pending[-1].parent)
            pending[-1].unlink()

    def unlock(self):
        if self._lock:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def latest(self) -> Path | None:
        link = self.dir / "latest"
        return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None

    def partial(self, fingerprint: str, identity=None, salvage: bool = False) -> Path:
        """The work dir of this exact plan. identity: what makes its samples beyond their keys, recorded in
        plan.json. Partial dirs of other plans are removed, but with salvage those of the same identity
        stay until this run publishes: their finished samples may be taken over (stale_partials)."""
        mine = self.releases / f"{fingerprint}.partial"
        ours = json.loads(json.dumps({"identity": identity}, default=str))
        for p in self.releases.glob("*.partial"):
            if p != mine and not (salvage and _plan_of(p) == ours):
                shutil.rmtree(p)
        (mine / "progress").mkdir(parents=True, exist_ok=True)
        plan = mine / "plan.json"
        if not plan.is_file():
            tmp = mine / "plan.json.tmp"
            tmp.write_text(json.dumps(ours))
            os.replace(tmp, plan)
        return mine

    def stale_partials(self, mine: Path) -> list[Path]:
        """Work dirs of killed runs of other plans that partial(..., salvage=True) kept."""
        return sorted(p for p in self.releases.glob("*.partial") if p != mine)

    @staticmethod
    def progress(partial: Path) -> list[dict]:
        """Finished shards of an interrupted run, in order; a shard without its record is redone."""
        done = []
        for p in sorted((partial / "progress").glob("*.json")):
            rec = json.loads(p.read_text())
            if (partial / "shards" / rec["shard"]).is_file():
                done.append(rec)
            else:
                break
        for p in (partial / "shards").glob("*.tar") if (partial / "shards").is_dir() else []:
            if p.name not in {r["shard"] for r in done}:
                p.unlink()  # finished after the last record was written: redo it
        return done

    @staticmethod
    def record(partial: Path, rec: dict):
        tmp = partial / "progress" / (rec["shard"] + ".json.tmp")
        tmp.write_text(json.dumps(rec, ensure_ascii=False, default=str))
        os.replace(tmp, partial / "progress" / (rec["shard"] + ".json"))

    def publish(self, partial: Path, release_id: str, keep: int) -> Path:
        final, n = self.releases / release_id, 1
        while final.exists():   # a rerun that reuses everything can finish within the same second
            n += 1
            final = self.releases / f"{release_id}-{n}"
        release_id = final.name
        shutil.rmtree(partial / "progress", ignore_errors=True)
        (partial / "plan.json").unlink(missing_ok=True)
        (partial / LINKING).touch()        # until `latest` points here: the next lock finishes the switch
        os.replace(partial, final)
        self._link(final)
        (final / LINKING).unlink()
        for stale in self.releases.glob("*.partial"):   # other plans' work: what was usable is in this release
            shutil.rmtree(stale, ignore_errors=True)
        self.prune(keep)
        return final

    def _link(self, final: Path):
        """`latest` switched to the release in one rename, and the pipeline dir's links through it."""
        tmp = self.dir / "latest.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(Path("releases") / final.name)
        os.replace(tmp, self.dir / "latest")  # atomic switch
        for name in LINKS:
            link = self.dir / name
            if not link.is_symlink():
                if link.is_dir():
                    shutil.rmtree(link)
                elif link.exists():
                    link.unlink()
                link.symlink_to(Path("latest") / name)

    def prune(self, keep: int):
        done = sorted(p for p in self.releases.iterdir() if p.is_dir() and not p.name.endswith(".partial"))
        current = self.latest()
        for p in done[:-keep] if keep > 0 else []:
            if p != current:
                shutil.rmtree(p)
