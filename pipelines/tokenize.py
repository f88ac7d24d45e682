"""Token release: every audio member of a release (or of a folder of recordings) as codec tokens.

    python run.py pipeline=tokenize data=outputs/emotion_triplets
    python run.py pipeline=tokenize source=folder source.root=my_recordings

Writes output_dir/<source pipeline>_tokens/ (or pipeline.out_name) through the shared runner, so
releases, `latest`, the lock, resume and reuse work as for every pipeline. Each sample keeps its key,
its JSON (plus tokenizer_version, token_counts, tokens_per_second, tokenizer_digest) and its split; each audio member
`<stem>.<ext>` becomes `<stem>.tok.npy` (int16 ids of the interleaved 5120-id vocabulary). A token
release holds one tokenizer only (by version and by weights): tokenizing into one made with another is a
named error."""
import json
from pathlib import Path

from core.reader import AUDIO_SUFFIXES, Release
from core.releases import PipelineDir
from core.sample import SAMPLE_VERSION, TOKEN_DIGEST, TOKEN_FIELDS, Sample
from editor.artifacts import SHIPPED_TOKENIZER, weights_digest
from pipelines.augment import recording_rows
from pipelines.runner import check_not_input, check_output_dir, execute
from stages.base import new_row
from stages.tokenize_audio import TokenizeAudio



def tokenizer_info(path) -> dict:
    cfg_file = Path(path) / "config.json"
    if not cfg_file.is_file():
        raise ValueError(f"pipeline.tokenizer={path}: not a tokenizer artifact (no config.json)")
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("kind") != "dual_codebook_tokenizer":
        raise ValueError(f"pipeline.tokenizer={path}: config.json is not a dual-codebook tokenizer's")
    return {"version": cfg["version"], "tokens_per_second": cfg["tokens_per_second"]["interleaved"],
            "digest": weights_digest(path)}


def release_rows(data: str) -> tuple[list[dict], str]:
    """One row per sample of the release: its JSON and where its audio members lie. And the name of
    the pipeline that wrote it."""
    rel = Release(data)
    if "tokenizer_version" in rel.manifest:
        versions = sorted(set(rel.manifest["tokenizer_version"].dropna()))
        raise ValueError(f"data={data} is already a token release ({', '.join(versions)}): "
                         "tokenize the release it was made from")
    rows = []
    for key in rel.manifest["key"]:
        spans = rel.locate(key)
        s = rel.sample(key, members=[], decode=True)
        if s.json.get("sample_version") != SAMPLE_VERSION:
            raise ValueError(f"data={data}: sample {key} was written by an older version of the factory "
                             f"(sample_version {s.json.get('sample_version')}, today {SAMPLE_VERSION}); rerun "
                             "its pipeline first: keys stay and the run refreshes the samples")
        audio = {suffix: [str(sp.shard), sp.offset, sp.size] for suffix, sp in spans.items()
                 if suffix.endswith(AUDIO_SUFFIXES)}
        rows.append(new_row(key, {"json": s.json, "spans": audio}))
    return rows, rel.pipeline


def check_same_tokenizer(out: PipelineDir, tok: dict) -> None:
    """A token release reuses its previous release's samples by key: only where they are one tokenizer's ids."""
    latest = out.latest()
    if latest is None or not (latest / "run.json").is_file():
        return
    before = json.loads((latest / "run.json").read_text()).get("tokenizer", {})
    if before.get("version") and before["version"] != tok["version"]:
        raise ValueError(f"{out.dir} holds a token release of {before['version']}; this run's tokenizer is "
                         f"{tok['version']}. A token release never mixes tokenizer versions: set pipeline.out_name "
                         "(or output_dir) for the new one")
    if before.get("digest") and before["digest"] != tok["digest"]:
        raise ValueError(f"{out.dir} holds a token release of another tokenizer named {tok['version']} (weights "
                         f"{before['digest']}, this run's {tok['digest']}). A token release never mixes "
                         "tokenizers: set pipeline.out_name (or output_dir) for the new one")


def run(cfg):
    p = cfg.pipeline
    root = check_output_dir(cfg.output_dir)
    tok_dir = str(p.tokenizer or SHIPPED_TOKENIZER)
    tok = tokenizer_info(tok_dir)
    pre_rejects = []
    if cfg.data:
        rows, source_name = release_rows(str(cfg.data))
    elif cfg.source.kind == "folder":
        rows, pre_rejects = recording_rows(cfg)
        source_name = "recordings"
    else:
        raise ValueError("pipeline=tokenize needs data=RELEASE (a release, its pipeline dir, shards, a glob) "
                         "or source=folder source.root=DIR (ROOT/<speaker>/<name>.wav + <name>.txt)")
    if not rows:
        raise ValueError(f"nothing to tokenize in {cfg.data or cfg.source.root}")
    name = p.out_name or f"{source_name}_tokens"
    if cfg.data:
        check_not_input(cfg.output_dir, name, Release(str(cfg.data)).roots)
    check_same_tokenizer(PipelineDir(root, name), tok)

    def to_sample(row) -> Sample:
        j = row["meta"]["json"]
        if j["task"] == "recording":
            j["durations"] = row["meta"]["seconds"]
        fields = {"tokenizer_version": tok["version"], "token_counts": row["meta"]["token_counts"],
                  "tokens_per_second": round(tok["tokens_per_second"], 4)}
        assert set(fields) == set(TOKEN_FIELDS)
        return Sample(row["key"], {**j, **fields, TOKEN_DIGEST: tok["digest"]}, dict(row["members"]))

    stage = {"tokenizer": tok_dir, "max_duration_s": cfg.filters.max_duration_s, "device": p.device}
    return execute(cfg, name, rows, [(TokenizeAudio, stage)], to_sample, pre_rejects,
                   extra_run_info={"tokenizer": {**tok, "path": tok_dir}, "source": str(cfg.data or cfg.source.root)},
                   plan_identity=f"{tok['version']}:{tok['digest']}",
                   # a sample of a release made before the digest was recorded may be another tokenizer's
                   # under this name: copied only when its digest says it is this one's
                   reuse_if=lambda row: row.get(TOKEN_DIGEST) == tok["digest"])
