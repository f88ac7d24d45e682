"""The audio LLM over a release (pipeline=edit, pipeline=clone) or a folder of clips (pipeline=edit),
through the shared runner.

    python run.py pipeline=edit data=outputs/emotion_triplets [pipeline.split=test] [pipeline.n_iter=2]
    python run.py pipeline=clone data=outputs/emotion_triplets
    python run.py pipeline=edit source=folder source.root=DIR pipeline.edit_type=emotion pipeline.edit_info=happy

Every sample of the chosen split asks for its own edit (edit type and tag from its JSON) or, with a
voice prompt, its zero-shot clone; every clip of a folder (source=folder, ROOT/<speaker>/<name>.wav +
<name>.txt) gets the one edit of pipeline.edit_type / edit_info. The outputs are members (`edit1.flac`,
`edit2.flac`, ... or `clone.flac`) beside the source (`src.flac` / `prompt.flac`, copied byte for byte;
a folder's clip as FLAC at 16 kHz). Releases, resume, reuse and rejects as for every pipeline; the LLM
stage takes a GPU where Ray sees one."""
import json
from pathlib import Path

from omegaconf import OmegaConf

from core import splits
from core.keys import make_key
from core.reader import Release
from core.sample import SAMPLE_VERSION, Sample
from core.tags import instruction
from editor.artifacts import SHIPPED_LLM, content_digest
from pipelines.augment import file_digest, recording_rows
from pipelines.runner import check_not_input, check_output_dir, execute
from stages.base import new_row
from stages.llm_generate import LlmClone, LlmEdit

EDIT_TASKS = ("emotion_edit", "style_edit", "speed_edit", "denoise", "silence_trim", "paralinguistic_edit")


def llm_dir(p) -> Path:
    d = Path(p.llm or SHIPPED_LLM)
    if not (d / "llm_vocab.json").is_file():
        raise ValueError(f"pipeline.llm={d}: not an audio-LLM artifact (python run.py pipeline=train_editor makes one)")
    return d


def llm_version(d: Path) -> str:
    info = d / "training.json"
    return json.loads(info.read_text()).get("version", d.name) if info.is_file() else d.name


def folder_edit(cfg) -> tuple[str, str | None]:
    """The one edit every clip of a folder gets (pipeline.edit_type, pipeline.edit_info), checked
    before any work; a release's samples carry their own, so giving one with data= is refused."""
    from editor.llm.editor import EDIT_TYPES, check_edit
    p = cfg.pipeline
    edit_type, edit_info = p.get("edit_type"), p.get("edit_info")
    if cfg.data:
        for k in ("edit_type", "edit_info"):
            if p.get(k) is not None:
                raise ValueError(f"pipeline.{k}={p.get(k)}: the samples of data={cfg.data} carry their own edit; "
                                 f"pipeline.{k} is for source=folder (drop it, or drop data=)")
        return None, None
    if edit_type is None:
        raise ValueError("pipeline=edit source=folder needs pipeline.edit_type (emotion, style, speed, denoise, vad) "
                         "and, but for denoise and vad, pipeline.edit_info (e.g. pipeline.edit_type=emotion "
                         "pipeline.edit_info=happy): every clip of the folder gets that edit")
    if edit_type == "paralinguistic":
        raise ValueError("pipeline.edit_type=paralinguistic: not with source=folder, where every clip gets the "
                         "same pipeline.edit_info; a paralinguistic edit's is each clip's own text with [Tag] marks "
                         "(edit such clips one by one: the demo or the HTTP API)")
    try:
        check_edit(edit_type, edit_info)
    except ValueError as e:
        raise ValueError(f"pipeline.{'edit_info' if edit_type in EDIT_TYPES else 'edit_type'}: {e}") from None
    return edit_type, edit_info


def check_decoding(p, kind: str) -> None:
    """The decoding settings, checked by the Editor's own request checks before the model loads."""
    from editor.llm.editor import MAX_ITER, _common
    try:
        _common(p.seed, p.temperature)
    except ValueError as e:
        raise ValueError(f"pipeline.{e}") from None
    if kind == "edit":
        n = p.get("n_iter", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ITER:
            raise ValueError(f"pipeline.n_iter={n!r}: an integer from 1 to {MAX_ITER}")
        if not isinstance(p.get("prompt_fixed", False), bool):
            raise ValueError(f"pipeline.prompt_fixed={p.get('prompt_fixed')!r}: true or false")


def folder_rows(cfg, edit_type: str, edit_info, identity: dict) -> tuple[list[dict], list[dict]]:
    """One row per clip of source.root (tokenize's recording rows): the recording's JSON plus the edit
    and its instruction, as a factory sample has them; its source_key is the clip's path under the root."""
    root = Path(cfg.source.root)

    def rel_path(path: str) -> str:
        return Path(path).relative_to(root).as_posix()

    rows, rejects = recording_rows(cfg, lambda src: make_key(
        ["edit", src["speaker"]], {"source": rel_path(src["audio_path"]), "text": src["text"],
                                   "content": file_digest(src["audio_path"]), "splits": splits.identity(cfg.splits),
                                   **identity}))
    kept = []
    for row in rows:
        j, path = row["meta"]["json"], row["meta"]["audio_path"]
        if edit_type not in ("denoise", "vad") and not j["text"].strip():
            rejects.append({"key": row["key"], "stage": "plan", "reason": "empty_text", "value": None,
                            "detail": f"{path}: no transcript ({Path(path).with_suffix('.txt').name}) beside it; "
                                      f"a {edit_type} edit needs the clip's text",
                            "meta": json.dumps(row["meta"], ensure_ascii=False)})
            continue
        j.update(edit_type=edit_type, edit_info=edit_info, instruction=instruction(edit_type, edit_info, j["text"]))
        row["meta"]["source_key"] = rel_path(path)
        kept.append(row)
    return kept, rejects


def run(cfg, kind: str):
    p = cfg.pipeline
    check_output_dir(cfg.output_dir)
    folder = kind == "edit" and not cfg.data and cfg.source.kind == "folder"
    if not cfg.data and not folder:
        raise ValueError(f"pipeline={kind} needs data=RELEASE (an audio release of the factory)"
                         + (" or source=folder source.root=DIR pipeline.edit_type=TYPE pipeline.edit_info=TAG"
                            if kind == "edit" else ""))
    edit_type, edit_info = folder_edit(cfg) if kind == "edit" else (None, None)
    check_decoding(p, kind)
    model = llm_dir(p)
    # a release's edit is its samples' own: the null edit keys stay out of its keys (as before them)
    settings = {k: v for k, v in OmegaConf.to_container(p, resolve=True).items()
                if k not in ("name", "llm", "split", "device") and not (k in ("edit_type", "edit_info") and v is None)}
    # the model by what it is (its files' bytes), not where it lies: a model moved keeps its samples,
    # one retrained in place under the same version makes new ones
    identity = {"llm": llm_version(model), "llm_content": content_digest(model), **settings}
    stage = LlmEdit if kind == "edit" else LlmClone
    params = {"llm": str(model), "device": p.device, "seed": p.seed, "temperature": p.temperature,
              "n_iter": p.get("n_iter", 1), "prompt_fixed": bool(p.get("prompt_fixed", False))}

    def to_sample(row) -> Sample:
        j, m = row["meta"]["json"], row["meta"]
        out = {k: j[k] for k in ("text", "language", "speaker", "split", "prompt", "provenance")}
        if out["prompt"] and out["prompt"].get("member") not in row["members"]:
            out["prompt"] = None        # the voice prompt's audio is not a member of this sample
        out.update(task="edited" if kind == "edit" else "cloned", sample_version=SAMPLE_VERSION, sample_rate=16000,
                   durations=m["seconds"], source_key=m["source_key"], source_task=j["task"], llm=identity["llm"],
                   seed=p.seed, temperature=p.temperature)
        if kind == "edit":
            out.update(edit_type=j["edit_type"], edit_info=j.get("edit_info"), instruction=j["instruction"],
                       n_iter=p.n_iter, prompt_fixed=bool(p.prompt_fixed))
            for k in ("text_with_tags", "factor", "snr_db", "inserted_silences_s"):
                if k in j:
                    out[k] = j[k]
        return Sample(row["key"], out, dict(row["members"]))

    if folder:
        rows, pre_rejects = folder_rows(cfg, edit_type, edit_info, identity)
        if not rows and not pre_rejects:
            raise ValueError(f"source.root={cfg.source.root}: no clips (ROOT/<speaker>/<name>.wav + <name>.txt)")
        return execute(cfg, p.out_name or "edit_recordings", rows, [(stage, params)], to_sample,
                       pre_rejects, extra_run_info={"llm": identity, "source": str(cfg.source.root)})
    rel = Release(str(cfg.data))
    check_not_input(cfg.output_dir, p.out_name or f"{kind}_{rel.pipeline}", rel.roots)
    if "tokenizer_version" in rel.manifest:
        raise ValueError(f"data={cfg.data} is a token release: pass the audio release it was made from")
    rows_sel = rel.select(split=p.split) if p.split else rel.manifest
    want = ("prompt.flac",) if kind == "clone" else ("src.flac",)
    rows = []
    for key, task in zip(rows_sel["key"], rows_sel["task"]):
        if kind == "edit" and task not in EDIT_TASKS:
            continue
        spans = rel.locate(key)
        if not all(w in spans for w in want):
            continue  # no voice prompt (a user's recording): nothing to clone from
        j = rel.sample(key, members=[]).json
        if j.get("sample_version") != SAMPLE_VERSION:
            raise ValueError(f"data={cfg.data}: sample {key} was written by an older factory (sample_version "
                             f"{j.get('sample_version')}); rerun its pipeline first")
        rows.append(new_row(make_key([kind, j["speaker"]], {"source": key, **identity}),
                            {"json": j, "source_key": key,
                             "spans": {s: [str(sp.shard), sp.offset, sp.size] for s, sp in spans.items()}}))
    if not rows:
        raise ValueError(f"data={cfg.data}: no samples to {kind}" + (f" in split {p.split}" if p.split else ""))
    return execute(cfg, p.out_name or f"{kind}_{rel.pipeline}", rows, [(stage, params)], to_sample,
                   extra_run_info={"llm": identity, "source": str(cfg.data)})
