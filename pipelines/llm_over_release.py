"""The audio LLM over a release (pipeline=edit, pipeline=clone), through the shared runner.

    python run.py pipeline=edit data=outputs/emotion_triplets [pipeline.split=test] [pipeline.n_iter=2]
    python run.py pipeline=clone data=outputs/emotion_triplets

Every sample of the chosen split asks for its own edit (edit type and tag from its JSON) or, with a
voice prompt, its zero-shot clone; the outputs are members (`edit1.flac`, `edit2.flac`, ... or
`clone.flac`) beside the source (`src.flac` / `prompt.flac`, copied byte for byte). Releases, resume,
reuse and rejects as for every pipeline; the LLM stage takes a GPU where Ray sees one."""
import json
from pathlib import Path

from omegaconf import OmegaConf

from core.keys import make_key
from core.reader import Release
from core.sample import SAMPLE_VERSION, Sample
from pipelines.runner import check_output_dir, execute
from stages.base import new_row
from stages.llm_generate import LlmClone, LlmEdit

REPO = Path(__file__).resolve().parent.parent
SHIPPED_LLM = REPO / "editor" / "artifacts" / "editor-llm-v3"
EDIT_TASKS = ("emotion_edit", "style_edit", "speed_edit", "denoise", "silence_trim", "paralinguistic_edit")


def llm_dir(p) -> Path:
    d = Path(p.llm or SHIPPED_LLM)
    if not (d / "llm_vocab.json").is_file():
        raise ValueError(f"pipeline.llm={d}: not an audio-LLM artifact (python run.py pipeline=train_editor makes one)")
    return d


def llm_version(d: Path) -> str:
    info = d / "training.json"
    return json.loads(info.read_text()).get("version", d.name) if info.is_file() else d.name


def run(cfg, kind: str):
    p = cfg.pipeline
    check_output_dir(cfg.output_dir)
    if not cfg.data:
        raise ValueError(f"pipeline={kind} needs data=RELEASE (an audio release of the factory)")
    model = llm_dir(p)
    rel = Release(str(cfg.data))
    if "tokenizer_version" in rel.manifest:
        raise ValueError(f"data={cfg.data} is a token release: pass the audio release it was made from")
    rows_sel = rel.select(split=p.split) if p.split else rel.manifest
    want = ("prompt.flac",) if kind == "clone" else ("src.flac",)
    settings = {k: v for k, v in OmegaConf.to_container(p, resolve=True).items() if k not in ("name", "llm", "split", "device")}
    identity = {"llm": llm_version(model), "llm_path": str(model.resolve()), **settings}
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

    def to_sample(row) -> Sample:
        j, m = row["meta"]["json"], row["meta"]
        out = {k: j[k] for k in ("text", "language", "speaker", "split", "prompt", "provenance")}
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

    stage = LlmEdit if kind == "edit" else LlmClone
    params = {"llm": str(model), "device": p.device, "seed": p.seed, "temperature": p.temperature,
              "n_iter": p.get("n_iter", 1), "prompt_fixed": bool(p.get("prompt_fixed", False))}
    name = p.out_name or f"{kind}_{rel.pipeline}"
    return execute(cfg, name, rows, [(stage, params)], to_sample,
                   extra_run_info={"llm": identity, "source": str(cfg.data)})
