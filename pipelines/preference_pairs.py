"""Preference pairs from the SFT editor's own answers, rated by the machine (docs/preference.md).

    python run.py pipeline=preference_pairs editor=DIR data=outputs/emotion_triplets_tokens[,...]

Prompts are chat examples of the token releases' train split (clone and edit tasks, a seeded choice of
`prompts_per_task` per task). The editor answers each prompt K times (distinct seeds, one
temperature) on a GPU actor where Ray sees one, else in this process; the answers are decoded with the
editor's codec, the voice taken from the prompt's reference clip in the audio release the token
release was made from. The machine rater (scorers/candidate_rater.py) scores each answer 1-10 against
the prompt's source, and every two answers whose scores differ by more than `threshold` make a pair
(editor/llm/pair_rule.py).

Output: a release under output_dir/preference_pairs/ through the shared runner (lock, partial,
resume after the last finished shard, reuse of finished prompts, atomic publish): one
`preference_candidates` sample per prompt (docs/samples.md), and beside them `pairs.parquet`
(editor/llm/pairs.py, rater "machine:<rule version>") and `report.json` (pairs surviving each
threshold, per task). The threshold and the split rule are not part of the sample keys: a rerun with
another threshold reuses every answer and rewrites only the pairs."""
import hashlib
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from core.keys import make_key
from core.reader import Release
from core.sample import SAMPLE_VERSION, Sample, clone_example, token_member
from editor.artifacts import content_digest
from editor.llm import pairs as pairs_table
from editor.llm.data import TASKS, codec, load_examples, token_release
from editor.llm.editor import codec_digest_of, codec_version_of
from editor.llm.pair_rule import check_threshold, prompt_split, scored_pairs, survival
from pipelines.runner import check_output_dir, execute
from stages.base import new_row
from stages.llm_candidates import LlmCandidates
from stages.rate_candidates import RateCandidates

NAME = "preference_pairs"
REPORT = "report.json"


def editor_dir(path) -> Path:
    if not path:
        raise ValueError("pipeline=preference_pairs needs editor=DIR (the SFT audio-LLM artifact to sample from)")
    d = Path(str(path))
    if not (d / "llm_vocab.json").is_file():
        raise ValueError(f"editor={d}: not an audio-LLM artifact (no llm_vocab.json; "
                         "python run.py pipeline=train_editor makes one)")
    return d


def llm_version(d: Path) -> str:
    info = d / "training.json"
    return json.loads(info.read_text()).get("version", d.name) if info.is_file() else d.name


def check_settings(p) -> dict:
    """The run's settings, checked: each bad one named."""
    k = p.k
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"pipeline.k={k!r}: need at least 2 answers per prompt to compare")
    tasks = list(p.tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks:
        raise ValueError(f"pipeline.tasks is empty; tasks are {', '.join(TASKS)}")
    if unknown:
        raise ValueError(f"pipeline.tasks: unknown tasks {unknown}; tasks are {', '.join(TASKS)}")
    vf = p.validation_fraction
    if not isinstance(vf, (int, float)) or not 0 <= vf < 1:
        raise ValueError(f"pipeline.validation_fraction={vf!r}: need a fraction in [0, 1)")
    n = p.prompts_per_task
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"pipeline.prompts_per_task={n!r}: need a positive int, or null for every prompt")
    temp = p.temperature
    if not isinstance(temp, (int, float)) or temp <= 0:
        raise ValueError(f"pipeline.temperature={temp!r}: sampling needs a temperature > 0 "
                         "(at 0 every answer would be the same)")
    return {"k": k, "tasks": tasks, "threshold": check_threshold(p.threshold, "pipeline.threshold"),
            "report_thresholds": [check_threshold(t, "pipeline.report_thresholds") for t in p.report_thresholds],
            "validation_fraction": float(vf), "prompts_per_task": n, "temperature": float(temp), "seed": int(p.seed)}


def audio_release(rel: Release, data, override) -> Release:
    """The audio release(s) the token releases were made from (their run.json `source`), or `override`:
    the reference clips the decoder takes the voice from."""
    if override:
        return Release(str(override))
    sources = []
    for root in rel.roots:
        run = root / "run.json"
        src = json.loads(run.read_text()).get("source") if run.is_file() else None
        if not src:
            raise ValueError(f"data={data}: token release {root} does not record the audio release it was made from "
                             "(run.json 'source'); pass pipeline.audio=AUDIO_RELEASE")
        sources.append(src)
    try:
        return Release(",".join(dict.fromkeys(sources)))
    except ValueError as e:
        raise ValueError(f"data={data}: the audio release it was made from cannot be read ({e}); "
                         "pass pipeline.audio=AUDIO_RELEASE") from e


def choose(examples: dict[str, list[dict]], tasks: list[str], n, seed: int) -> list[dict]:
    """A seeded choice of n prompts per task (every prompt when n is None), in a stable order."""
    out = []
    for task in tasks:
        exs = sorted(examples.get(task, []), key=lambda e: e["key"])
        order = np.random.default_rng([seed, TASKS.index(task)]).permutation(len(exs))
        out += [exs[i] for i in order[:n]]
    return out


def reference(ex: dict, rel: Release, audio: Release, clone_sources: dict) -> tuple[list, str]:
    """Where the reference clip of a prompt lies in the audio release ([shard, offset, size]) and the
    token sample the prompt came from."""
    source_key = clone_sources[ex["key"]] if ex["system"] == "clone" else ex["key"]
    member = "prompt.flac" if ex["system"] == "clone" else "src.flac"
    try:
        span = audio.locate(source_key)[member]
    except KeyError:
        raise ValueError(f"pipeline.audio={audio.data}: no {member} of sample {source_key} (is it the audio "
                         "release the token release was made from?)") from None
    return [str(span.shard), span.offset, span.size], source_key


def run(cfg):
    p = cfg.pipeline
    check_output_dir(cfg.output_dir)
    s = check_settings(p)
    model = editor_dir(p.editor)
    if not cfg.data:
        raise ValueError("pipeline=preference_pairs needs data=TOKEN_RELEASES (pipeline=tokenize's output)")
    data = ",".join(map(str, cfg.data)) if OmegaConf.is_list(cfg.data) else str(cfg.data)   # data=[A,B] or A,B
    rel = token_release(data)
    data_info, llm_codec = codec(rel), codec_version_of(model)
    data_codec = data_info["tokenizer_version"]
    if llm_codec != data_codec:
        raise ValueError(f"editor={model} was trained on codec tokenizer {llm_codec}, but data={data} holds "
                         f"{data_codec} ids: tokenize the audio with the editor's tokenizer")
    ours, theirs = codec_digest_of(model), data_info.get("tokenizer_digest")
    if ours and theirs and ours != theirs:
        raise ValueError(f"editor={model} learned the ids of another tokenizer named {llm_codec} (weights {ours}) "
                         f"than data={data} holds ({theirs}): tokenize the audio with the editor's tokenizer")
    examples = load_examples(rel, "train", s["tasks"])
    if not any(examples.get(t) for t in s["tasks"]):
        raise ValueError(f"data={data}: no train-split examples of tasks {s['tasks']} (prompts are held to "
                         "the train split)")
    audio = audio_release(rel, data, p.audio)
    clone_sources = {}
    if "clone" in s["tasks"]:
        train = rel.manifest[rel.manifest["split"] == "train"]
        for key in train["key"]:
            c = clone_example(rel.sample(key))
            if c is not None:
                clone_sources.setdefault(c.key, key)
    # the editor by what it is (its files' bytes): one retrained in place answers anew
    identity = {"llm": llm_version(model), "llm_content": content_digest(model), "codec": data_codec, "k": s["k"],
                "temperature": s["temperature"], "seed": s["seed"],
                "margin_scorer": str(p.margin_scorer or "shipped"), "rater": "candidate_rater-v1"}
    rows = []
    for ex in choose(examples, s["tasks"], s["prompts_per_task"], s["seed"]):
        span, source_key = reference(ex, rel, audio, clone_sources)
        j = rel.sample(source_key, members=[]).json
        info = {"text": ex["target_text"] if ex["system"] == "clone" else ex["text"], "language": ex["language"],
                "edit_type": j.get("edit_type") if ex["system"] == "edit" else None,
                "edit_info": j.get("edit_info") if ex["system"] == "edit" else None,
                "text_with_tags": j.get("text_with_tags"), "factor": j.get("factor")}
        tokens = hashlib.sha1(np.ascontiguousarray(ex["source_tokens"], "<i2").tobytes()).hexdigest()
        key = make_key(["pref", ex["task"], ex["speaker_id"]], {"prompt": ex["key"], "tokens": tokens, **identity})
        example = {k: ex.get(k) for k in ("system", "instruction", "text", "target_text", "language", "speaker")}
        example["source_tokens"] = [int(t) for t in ex["source_tokens"]]
        rows.append(new_row(key, {"task": ex["task"], "prompt_key": ex["key"], "source_key": source_key,
                                  "speaker": str(ex["speaker_id"]), "example": example, "info": info,
                                  "ref_span": span, "seeds": [s["seed"] + i for i in range(s["k"])]}))

    def to_sample(row) -> Sample:
        m = row["meta"]
        ex = {**m["example"], "source_tokens": np.asarray(m["example"]["source_tokens"])}
        out = {"task": "preference_candidates", "sample_version": SAMPLE_VERSION, "text": ex["target_text"],
               "language": ex["language"], "speaker": m["speaker"], "split": "train", "sample_rate": 16000,
               "durations": m["seconds"], "prompt": None,
               "provenance": {"token_release": data, "audio_release": audio.data, "source_key": m["source_key"]},
               "prompt_key": m["prompt_key"], "source_task": m["task"], "instruction": ex.get("instruction"),
               "edit_type": m["info"]["edit_type"], "edit_info": m["info"]["edit_info"], "llm": identity["llm"],
               "temperature": s["temperature"], "candidates": m["answers"], "example": pairs_table.example_json(ex),
               "k": s["k"], "empty_answers": m["empty_answers"], "unrated": m["unrated"],
               "pair_split": prompt_split(m["prompt_key"], s["validation_fraction"])}
        return Sample(row["key"], out, dict(row["members"]))

    stages = [(LlmCandidates, {"llm": str(model), "device": p.device, "temperature": s["temperature"]}),
              (RateCandidates, {"margin_scorer": p.margin_scorer})]
    settings = OmegaConf.to_container(p, resolve=True)
    return execute(cfg, NAME, rows, stages, to_sample,
                   extra_run_info={"llm": identity, "source": data, "audio": audio.data, "settings": settings},
                   finish=lambda release: write_pairs(release, s, data_codec))


def write_pairs(release: Path, s: dict, codec: str) -> tuple[dict, list[str]]:
    """pairs.parquet and report.json of a release's candidates (all of them: computed now or reused);
    codec: the tokenizer the answers' ids are of."""
    rows, margins, prompts, unrated, scores = [], defaultdict(list), defaultdict(int), defaultdict(dict), defaultdict(list)
    out = Release(release) if (release / "manifest.parquet").is_file() and _has_rows(release) else None
    for key in (out.manifest["key"] if out else ()):
        sample = out.sample(key, decode=False)   # raw members: only the answers' ids are parsed
        j = sample.json
        task, cands = j["source_task"], j["candidates"]
        prompts[task] += 1
        if j["unrated"]:
            u = unrated[task]
            u["prompts"] = u.get("prompts", 0) + 1
            u["reason"] = j["unrated"]
            continue
        values = [c["score"] for c in cands]
        scores[task] += [v for v in values if v is not None]
        split = prompt_split(j["prompt_key"], s["validation_fraction"])
        for i, k, margin in scored_pairs(values, 0.0):
            margins[task].append(margin)
            if margin <= s["threshold"]:
                continue
            chosen, rejected = cands[i], cands[k]
            rows.append({"pair_id": f"{sample.key}-{chosen['member'].split('.')[0]}-{rejected['member'].split('.')[0]}",
                         "prompt_key": j["prompt_key"], "task": task, "split": split, "example": j["example"],
                         "chosen": _ids(sample.members[token_member(chosen["member"])]),
                         "rejected": _ids(sample.members[token_member(rejected["member"])]),
                         "chosen_score": chosen["score"], "rejected_score": rejected["score"], "margin": margin,
                         "rater": chosen["rater"], "tokenizer_version": codec})
    pairs_table.write_pairs(rows, release / pairs_table.FILE)
    by_task = {t: sum(r["task"] == t for r in rows) for t in sorted(prompts)}
    report = {"threshold": s["threshold"], "validation_fraction": s["validation_fraction"],
              "pairs": len(rows), "pairs_by_task": by_task,
              "pairs_by_split": {sp: sum(r["split"] == sp for r in rows) for sp in ("train", "validation")},
              "prompts_by_task": dict(sorted(prompts.items())),
              "pairs_over_threshold": survival({t: margins.get(t, []) for t in sorted(prompts)}, s["report_thresholds"]),
              "scores_by_task": {t: {"answers": len(v), "mean": round(float(np.mean(v)), 3),
                                     "min": round(float(min(v)), 3), "max": round(float(max(v)), 3)}
                                 for t, v in sorted(scores.items()) if v},
              "unrated": dict(unrated)}
    tmp = release / f".{REPORT}.tmp"
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    tmp.replace(release / REPORT)
    lines = [f"   pairs (margin > {s['threshold']:g}): {len(rows)} " + ", ".join(f"{t} {n}" for t, n in by_task.items())]
    lines += [f"   not rated: {t} ({u['prompts']} prompts): {u['reason']}" for t, u in unrated.items()]
    return {"preference": {k: report[k] for k in ("threshold", "pairs", "pairs_by_task", "pairs_by_split")}}, lines


def _ids(npy: bytes) -> np.ndarray:
    return np.load(io.BytesIO(npy), allow_pickle=False).astype(np.int64)


def _has_rows(release: Path) -> bool:
    import pyarrow.parquet as pq
    return pq.read_metadata(release / "manifest.parquet").num_rows > 0
