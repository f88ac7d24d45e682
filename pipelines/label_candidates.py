"""pipeline=label_margins pipeline.mode=candidates: people rate one prompt's candidate answers 1-5, side by side.

    python run.py pipeline=label_margins pipeline.mode=candidates data=outputs/preference_pairs
    python run.py pipeline=label_margins pipeline.mode=candidates data=outputs/preference_pairs pipeline.export=pairs.parquet

DATA is a release of preference_candidates samples (pipeline=preference_pairs): per prompt src.flac
(what the answers are rated against) and cand<i>.flac. The page shows one prompt at a time: its text
and instruction, the source, and every candidate with a 1-5 rating; a prompt's ratings are saved
together. With pipeline.export the ratings so far become a pairs table instead (scorers/people_pairs.py).

It is the margin page's server (pipelines/label_margins.py) with another page and save: the same Host
check, body and time limits, annotator names, JSON refusals and busy-store 503. Each candidate is one
item of the same LabelStore (`<key>/cand<i>`, task "candidates", integers 1..5), so ratings are
committed at once, replaced when given again, kept per annotator, and agreement is the store's own.
A candidate is asked for by sample key and member name (src, cand<i> below the prompt's count),
looked up in the release: no client-supplied path reaches the file system."""
import re
from dataclasses import fields
from http import HTTPStatus
from pathlib import Path

from core.reader import Release
from pipelines.label_margins import (Handler, LabelServer, RequestError, ServerLimits, serve,
                                     serve_until_interrupted)
from scorers import people_pairs
from scorers.labels import LabelStore, shard_ref

PAGE = Path(__file__).resolve().parent.parent / "scorers" / "candidate_page.html"
SHOWN = ("text", "instruction", "edit_type", "edit_info", "language", "source_task")
_MEMBER = re.compile(r"src|cand(0|[1-9][0-9]*)")


class CandidateDataset:
    """The prompts of a candidates release in manifest order: key -> what the page shows and how many
    candidates it has; clips are read through the release's index."""

    def __init__(self, data, max_items: int | None = None):
        if not data:
            raise ValueError("data= is required: the output of pipeline=preference_pairs (a pipeline or release dir)")
        try:
            self.release = Release(data)
        except ValueError as e:
            raise ValueError(f"data: {e}") from e
        self.root = self.release.root
        if self.root.parent.name == "releases":  # ratings belong to the pipeline, not to one release
            self.root = self.root.parent.parent
        self.index: dict[str, dict] = {}
        for key in self.release.manifest["key"]:
            if max_items and len(self.index) >= max_items:
                break
            meta = self.release.sample(key, members=[]).json
            if meta.get("task") != "preference_candidates":
                raise ValueError(f"data={data}: sample {key} is a {meta.get('task')!r} sample, not "
                                 "preference_candidates (give the output of pipeline=preference_pairs)")
            n = len(meta["candidates"])
            spans = self.release.locate(key)
            absent = [m for m in ["src.flac"] + [f"cand{i}.flac" for i in range(n)] if m not in spans]
            if n < 2 or absent:
                raise ValueError(f"data={data}: sample {key} lists {n} candidates"
                                 + (f" but has no {', '.join(absent)}" if absent else "; rating needs 2 or more"))
            self.index[key] = {"shard": spans["src.flac"].shard, "n": n, **{f: meta.get(f) for f in SHOWN}}
        self.keys = list(self.index)
        if not self.keys:
            raise ValueError(f"data={data}: no prompts with candidates found")
        self.position = {k: i for i, k in enumerate(self.keys)}

    def items(self, key: str) -> list[str]:
        """The label store's items of a prompt: one per candidate."""
        return [people_pairs.item_id(key, i) for i in range(self.index[key]["n"])]

    def audio(self, key: str, member: str) -> bytes | None:
        """A clip's bytes, or None for an unknown key or member (the only way to read a file)."""
        m = _MEMBER.fullmatch(member)
        if key not in self.index or not m or (m[1] is not None and int(m[1]) >= self.index[key]["n"]):
            return None
        return self.release.read(key, f"{member}.flac")

    def store_items(self) -> list[dict]:
        return [{"item_id": people_pairs.item_id(k, i), "src": shard_ref(e["shard"], k, "src.flac"),
                 "tgt": shard_ref(e["shard"], k, f"cand{i}.flac"), "tag": e["edit_info"], "text": e["text"],
                 "dataset": str(self.root)}
                for k, e in self.index.items() for i in range(e["n"])]


class CandidateServer(LabelServer):
    def __init__(self, addr, dataset: CandidateDataset, store: LabelStore, annotator=None,
                 limits: ServerLimits = ServerLimits()):
        super().__init__(addr, dataset, store, annotator, limits, page=PAGE, handler=CandidateHandler)

    def next_unrated(self, annotator: str, done: set[str] | None = None) -> str | None:
        """The first prompt in order with a candidate this annotator has not rated."""
        done = self.store.rated_ids(annotator) if done is None else done
        return next((k for k in self.dataset.keys if not done.issuperset(self.dataset.items(k))), None)

    def state(self, key: str | None, annotator: str) -> dict:
        """What the page shows for one prompt (the annotator's next unrated one when key is None)."""
        ds, store = self.dataset, self.store
        done = store.rated_ids(annotator) if annotator else set()
        rated = sum(done.issuperset(ds.items(k)) for k in ds.keys)
        if key is None:
            key = (self.next_unrated(annotator, done) if annotator else None) or ds.keys[0]
        i, e = ds.position[key], ds.index[key]
        return {"key": key, "index": i, "total": len(ds.keys), "rated": rated, "done": rated == len(ds.keys),
                "prev": ds.keys[i - 1] if i > 0 else None, "next": ds.keys[i + 1] if i + 1 < len(ds.keys) else None,
                "candidates": [{"member": f"cand{c}", "score": store.rating(item, annotator) if annotator else None}
                               for c, item in enumerate(ds.items(key))],
                **{f: e[f] for f in SHOWN}, "counts": store.counts(),
                "agreement": {**store.agreement(), "order": people_pairs.order_agreement(store)}}


class CandidateHandler(Handler):
    server: CandidateServer
    body_fields = ("key", "annotator", "ratings")

    def _save(self, key: str, annotator: str, body: dict) -> dict:
        ratings, n = body["ratings"], self.server.dataset.index[key]["n"]
        if not isinstance(ratings, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, 'ratings must be an object {"cand0": score, ...}')
        members = [f"cand{i}" for i in range(n)]
        unknown = [m for m in ratings if m not in members]
        if unknown:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"unknown candidate {unknown[0][:40]!r}: this prompt has "
                                                       f"cand0..cand{n - 1}")
        absent = [m for m in members if m not in ratings]
        if absent:  # a prompt is saved whole: a partial one would be neither rated nor pairable
            raise RequestError(HTTPStatus.BAD_REQUEST, f"rate every candidate: missing {', '.join(absent)}")
        for m in members:
            try:
                self.server.store.check_score(ratings[m])
            except ValueError as e:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"bad rating of {m}: {e}") from None
        self.server.store.rate_many({people_pairs.item_id(key, i): ratings[m] for i, m in enumerate(members)},
                                    annotator)
        return {"saved": True, "next": self.server.next_unrated(annotator)}


def start_server(data, db=None, host="127.0.0.1", port=0, annotator=None, max_items=None, **limits):
    """As label_margins.start_server, for a candidates release. Returns (server, url)."""
    limits = ServerLimits(**limits)
    dataset = CandidateDataset(data, max_items)
    return serve(CandidateServer, dataset, open_store(db, dataset, limits.db_timeout_s), host, port, annotator,
                 limits)


def open_store(db, dataset: CandidateDataset, timeout_s: float = 5.0) -> LabelStore:
    return LabelStore(db or dataset.root / "labels.sqlite", task=people_pairs.TASK, scale=people_pairs.SCALE,
                      integer_scores=True, timeout_s=timeout_s)


def export(data, path, db=None, min_margin=3.0, validation_fraction=0.1) -> dict:
    """The pairs table of the ratings given so far, written atomically to path: its counts."""
    dataset = CandidateDataset(data)
    store = open_store(db, dataset)
    try:
        return people_pairs.export(store, dataset.release, path, min_margin, validation_fraction)
    finally:
        store.close()


def run(cfg):
    pc = cfg.pipeline
    if pc.export:
        counts = export(cfg.data, pc.export, pc.db, pc.min_margin, pc.validation_fraction)
        print(f"{counts['pairs']} pairs (mean rating margin > {pc.min_margin}) of {counts['prompts_rated']} rated "
              f"prompts by {', '.join(counts['annotators']) or 'nobody'} -> {counts['path']}")
        print("pairs surviving each margin threshold: "
              + ", ".join(f"> {t}: {n}" for t, n in counts["pairs_over_margin"].items()))
        return counts
    server, _ = start_server(cfg.data, pc.db, pc.host, pc.port, pc.annotator, pc.max_items,
                             **{f.name: pc[f.name] for f in fields(ServerLimits)})
    serve_until_interrupted(server, "prompts")
