"""The editing benchmark: python run.py pipeline=edit_benchmark pipeline.editor=DIR [pipeline.judge=DIR].

The set (benchmark/bench_set.py) is cloned (Iter0) and edited three times by the editor, feeding
back and, as the seed's ablation, with the prompt fixed; the same edits run on audio the editor did
not make (the factory engine's clones, plain Piper/espeak-ng renderings, plain voices of an engine no
model heard, the user's recordings); the
identity and the factory engine edit the editor's Iter0 as baselines; paralinguistic prompts get
one edit, with the factory's substitution and its own tagged rendering beside it. Every clip is
scored (judge, similarity to Iter0, English WER, or the paralinguistic 1-3 score).

Output (core.releases.PipelineDir, as every pipeline): output_dir/edit_benchmark/releases/<id>/
with manifest.json (the set), audio/ (every clip), results.json (cells and summary), tables.md,
accuracy_<category>.png, rejects.json, run.json; `latest` switches when the run is whole. A killed
run resumes from its clips and scores (benchmark/store.py, benchmark/score_jobs.py).

Each round of the protocol (Iter0, then iteration k of every chain, then the scoring) runs as rows
through the runner's stages (stages/benchmark_call.py, stages/benchmark_score.py): on Ray, the audio
LLM on GPU actors where the cluster has GPUs; where Ray is absent (the GPU machine), the same stages
in this process (ray.enabled)."""
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from benchmark import bench_set, protocol, recordings, tables
from benchmark.calls import StageCalls
from benchmark.choose import editor_name, load_judge
from benchmark.editors import Failed
from benchmark.engine_editor import EngineEditor
from benchmark.score_jobs import ScoreJobs
from benchmark.store import ClipStore
from core.releases import PipelineDir
from core.splits import ENGINES
from pipelines.runner import check_output_dir, use_ray
from stages.benchmark_call import is_llm

NAME = "edit_benchmark"
GENERALISATION = ("engine_clone", "base_voice", "other_engine")


def model_digest(spec) -> str | None:
    """The content of a model directory (an LLM editor with its codec, a judge); None for what is not a
    directory (identity, engine, an http:// editor)."""
    from editor.artifacts import codec_dirs, content_digest
    from editor.llm.editor import codec_version_of
    d = Path(str(spec)) if spec else None
    if d is None or not d.is_dir():
        return None
    parts = [content_digest(d)]
    version = codec_version_of(d) if (d / "llm_vocab.json").is_file() else None
    found = (codec_dirs(version, d.parent) or codec_dirs(version)) if version else None
    parts += [content_digest(x) for x in found or ()]
    return "+".join(parts)


def refuse_trained_on_benchmark(editor_spec: str, languages, judge_dir=None) -> None:
    """An editor whose training.json lists a benchmark speaker, or a speaker the judge trained on, is
    refused: its numbers would not be held out, or the judge would hear voices the editor learned.
    Warped copies (`name~vtlp1.12`) count as their speaker."""
    info = Path(str(editor_spec)) / "training.json"
    if not info.is_file():
        return
    trained = {s.split("~", 1)[0] for s in bench_set.training_speakers(json.loads(info.read_text()))}
    overlap = trained & {s.id for s in bench_set.speakers(languages)}
    if overlap:
        raise ValueError(f"pipeline.editor={editor_spec}: its training.json lists benchmark speakers "
                         f"{sorted(overlap)}; the benchmark needs voices the editor never trained on")
    meta = Path(str(judge_dir)) / "meta.json" if judge_dir else None
    if meta is not None and meta.is_file():
        judged = {s.split("~", 1)[0] for s in bench_set.training_speakers(json.loads(meta.read_text()))}
        if trained & judged:
            raise ValueError(f"pipeline.editor={editor_spec}: it trained on speakers the judge ({judge_dir}) trained on, "
                             f"{sorted(trained & judged)}: the judge must be independent of the editor's data")


def voice_prompts(cfg, languages, engine) -> dict:
    """The benchmark speakers' neutral prompt clips (rendered once into the voice-bank cache)."""
    from core import audio
    from tts.voice_bank import GeneratedVoiceBank
    bank = GeneratedVoiceBank(cfg.voice_bank.cache_dir, cfg.sample_rate, languages, tuple(cfg.voice_bank.intensity),
                              cfg.seed, bench_set.PER_LANGUAGE, bench_set.POOL)
    for job in bank.missing(["neutral"]):
        bank.render(engine, job)
    out = {}
    for s in bank.speakers:
        clip = bank.clip(s.id, "neutral")
        out[s.id] = {"wav": audio.load(clip["path"], 16000), "text": clip["text"], "speaker": s}
    return out


def _labels(p) -> dict:
    return {"emotion": list(p.emotions), "style": list(p.styles), "paralinguistic": list(p.paralinguistic)}


def _iter0(start_run: str, pid: str) -> str:
    return f"{start_run}/{pid}/iter0"


def run(cfg):
    p = cfg.pipeline
    t0 = time.time()
    languages = list(p.languages)
    labels = _labels(p)
    if not p.editor:
        raise ValueError("pipeline.editor is required: an audio-LLM artifact dir, identity, engine or http://URL")
    spec = str(p.editor)
    from benchmark.choose import SHIPPED_JUDGE
    judge_spec = p.judge or SHIPPED_JUDGE          # the judge the run loads (null: the shipped one)
    refuse_trained_on_benchmark(spec, languages, judge_spec)
    for b in p.baselines:
        if b not in ("identity", "engine"):
            raise ValueError(f"pipeline.baselines: unknown {b!r}; known: identity, engine")
    for src in p.generalisation:
        if src not in GENERALISATION:
            raise ValueError(f"pipeline.generalisation: unknown {src!r}; known: {', '.join(GENERALISATION)}")
    other_voices = other_engine_voices(p.other_engine, languages) if "other_engine" in p.generalisation else {}
    prompts = bench_set.build(languages, labels, int(p.n), int(p.seed))
    judged = [x for x in prompts if x["category"] != "paralinguistic"]
    para = [x for x in prompts if x["category"] == "paralinguistic"]
    if p.quantize not in (None, "int8"):
        raise ValueError(f"pipeline.quantize={p.quantize!r}: null or int8")
    if p.quantize and not is_llm(spec):
        raise ValueError(f"pipeline.quantize={p.quantize}: only an audio-LLM editor is quantized, not {spec}")
    name = editor_name(spec, p.quantize)
    judge = load_judge(p.judge)
    engine = EngineEditor()    # here: the voice prompts and the sources it renders (base voice, factory clips)
    settings = OmegaConf.to_container(p, resolve=True)
    # the editor and the judge by what they are (their files' bytes, and the codec the editor decodes with),
    # not where they lie: a run killed and resumed after one was retrained in place starts again instead
    # of mixing two models' clips; a model moved elsewhere resumes
    identity = {"set": prompts, "editor": name, "editor_content": model_digest(spec), "judge": judge.version,
                "judge_content": model_digest(judge_spec), "settings": {k: v for k, v in settings.items() if k != "editor"},
                "voice_bank_seed": cfg.seed}
    fingerprint = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    specs = sorted({spec, *p.baselines, *(["engine"] if "engine_clone" in p.generalisation else [])})
    calls = StageCalls(cfg.ray, specs, device=p.device, temperature=float(p.temperature), quantize=p.quantize)

    out = PipelineDir(check_output_dir(cfg.output_dir), NAME)
    out.lock()
    try:
        partial = out.partial(fingerprint)
        store = ClipStore(partial / "audio")
        (partial / "manifest.json").write_text(json.dumps(prompts, ensure_ascii=False, indent=1))
        vp = voice_prompts(cfg, languages, engine.engine)
        seed, n_iter = int(p.seed), int(p.n_iter)
        rejects = []
        print(f"edit_benchmark: {len(judged)} emotion/style and {len(para)} paralinguistic prompts, "
              f"editor {name}, judge {judge.version}", flush=True)

        # (run, source, mode, chains, the store prefix of its Iter0 clips)
        _say("Iter0: the editor clones every prompt")
        iter0 = protocol.clone_all(calls, prompts, vp, store, "editor/own", seed, editor=spec)
        runs = [("editor", "own", "feedback", protocol.Chains("editor/own/feedback", spec, judged, iter0, n_iter), "editor/own")]
        if p.prompt_fixed:
            runs.append(("editor", "own", "prompt_fixed",
                         protocol.Chains("editor/own/prompt_fixed", spec, judged, iter0, n_iter, True), "editor/own"))
        for b in p.baselines:
            runs.append((b, "own", "feedback", protocol.Chains(f"{b}/own/feedback", b, judged, iter0, n_iter), "editor/own"))
        for src in p.generalisation:
            prefix, src_prompts = f"sources/{src}", judged
            if src == "engine_clone":
                _say("sources: the factory engine clones every prompt")
                start = protocol.clone_all(calls, judged, vp, store, prefix, seed, editor="engine")
            elif src == "base_voice":
                start = {x["id"]: _base_voice(store, engine.engine, x, vp[x["speaker"]]["speaker"]) for x in judged}
            else:
                src_prompts = [x for x in judged if x["language"] in other_voices]
                _say(f"sources: {p.other_engine} speaks the {len(src_prompts)} prompts of "
                     f"{', '.join(sorted(other_voices))}")
                start = {x["id"]: _other_engine(store, engine.engine, x, vp[x["speaker"]]["speaker"], other_voices)
                         for x in src_prompts}
            runs.append(("editor", src, "feedback",
                         protocol.Chains(f"editor/{src}/feedback", spec, src_prompts, start, n_iter), prefix))
        if p.recordings:
            recs, bad = recordings.read(p.recordings, languages)
            rejects += [{"what": "recording", **r} for r in bad]
            rprompts = recordings.prompts(recs, labels)
            by_name = {f"rec:{r['name']}": r["wav"] for r in recs}
            rstart = {x["id"]: _stored(store, _iter0("sources/recordings", x["id"]), lambda x=x: by_name[x["speaker"]])
                      for x in rprompts}
            runs.append(("editor", "recordings", "feedback",
                         protocol.Chains("editor/recordings/feedback", spec, rprompts, rstart, n_iter), "sources/recordings"))
        para_chains = protocol.Chains("editor/own/paralinguistic", spec, para, iter0, 1)
        sets = [r[3] for r in runs] + ([para_chains] if para else [])
        _say(f"Iter1..{n_iter}: {', '.join(c.run for c in sets)} ({sum(len(c.prompts) for c in sets)} chains)")
        iters = protocol.iterate_all(calls, sets, store, seed)

        scores = ScoreJobs(cfg.ray, partial / "scores", p)
        cells = []
        for (run_name, source, mode, chains, prefix), outs in zip(runs, iters):
            for x in chains.prompts:
                base = {"run": run_name, "source": source, "mode": mode, "id": x["id"], "language": x["language"],
                        "category": x["category"], "label": x["label"], "speaker": x["speaker"]}
                ref = (_iter0(prefix, x["id"]), chains.start[x["id"]])
                chain = [ref] + [(f"{chains.run}/{x['id']}/iter{k}", y) for k, y in enumerate(outs[x["id"]], 1)]
                for k, clip in enumerate(chain):
                    cells.append({**base, "iter": k, "score": scores.add("judged", clip, ref, x)})
        if para:
            cells += _paralinguistic(scores, engine, para, iter0, iters[-1], vp, store, seed, bool(p.paralinguistic_baselines))
        _say(f"scoring {scores.todo} clips ({len(scores.jobs) - scores.todo} scored before)")
        done = scores.run()
        for c in cells:
            c.update(done[c.pop("score")])
        rejects += [{"what": "cell", **{k: c[k] for k in ("run", "source", "mode", "id", "iter")}, "reason": c["failed"]}
                    for c in cells if "failed" in c]

        summary = tables.summarize(cells)
        head = (f"Editor `{name}` ({spec}), judge `{judge.version}`, n={p.n} per label and language, "
                f"seed {p.seed}, languages {', '.join(languages)}.")
        (partial / "tables.md").write_text(tables.markdown(summary, n_iter, head), encoding="utf-8")
        tables.plots(summary, n_iter, partial)
        _write_json(partial / "results.json", {"editor": name, "judge": judge.version, "summary": summary,
                                               "cells": cells})
        _write_json(partial / "rejects.json", rejects)
        _write_json(partial / "run.json", {"command": " ".join(sys.argv), "settings": settings, "fingerprint": fingerprint,
                                           "seconds": round(time.time() - t0, 1), "clips_failed": len(rejects),
                                           "ray": use_ray(cfg.ray)})
        release = out.publish(partial, time.strftime("%Y%m%d-%H%M%S-") + fingerprint, int(cfg.release.keep))
    finally:
        out.unlock()
    print(f"edit_benchmark: release {release} ({time.time() - t0:.0f} s)", flush=True)
    return {"release": str(release), "summary": summary}


def _say(msg: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {msg}", flush=True)


def _stored(store, name: str, make):
    """The stored clip, or make() stored under that name (a rerun reuses it)."""
    got = store.get(name)
    return got if got is not None else store.put(name, make())


def _base_voice(store, eng, x, speaker):
    """The plain base voice (Piper or espeak-ng, no timbre) speaking the text: a source the editor did not make."""
    return _stored(store, _iter0("sources/base_voice", x["id"]), lambda: eng.base(x["text"], x["language"], speaker.base_voice))


def other_engine_voices(engine_name: str, languages: list[str]) -> dict[str, list[str]]:
    """language -> the installed voices of engine_name that speak it (sorted); languages it does not
    speak are left out of the other_engine row (flite and festival speak English only)."""
    from tts.base_voices import candidate_voices
    if engine_name not in ENGINES:
        raise ValueError(f"pipeline.other_engine={engine_name!r}: known engines {', '.join(ENGINES)}")
    out = {lang: sorted(v for v in candidate_voices(lang) if v.split(":")[0] == engine_name) for lang in languages}
    out = {lang: vs for lang, vs in out.items() if vs}
    if not out:
        raise ValueError(f"pipeline.other_engine={engine_name}: no installed voice of it speaks "
                         f"{', '.join(languages)} (setup.sh installs flite and festival voices)")
    return out


def other_engine_voice(speaker, voices: dict[str, list[str]]) -> str:
    """A benchmark speaker's stand-in on the other engine: a voice of its sex where the engine has one
    (else any), the same one on every run (picked by a hash of the speaker id)."""
    from tts.base_voices import base_voice_sex
    pool = voices[speaker.language]
    same_sex = [v for v in pool if base_voice_sex(v) == speaker.gender] or pool
    return same_sex[int(hashlib.sha1(speaker.id.encode()).hexdigest(), 16) % len(same_sex)]


def _other_engine(store, eng, x, speaker, voices):
    """The text in a plain voice of an engine none of the models heard: a held-out-engine source."""
    return _stored(store, _iter0("sources/other_engine", x["id"]),
                   lambda: eng.base(x["text"], x["language"], other_engine_voice(speaker, voices)))


def _paralinguistic(scores, engine, para, iter0, edits, vp, store, seed, baselines) -> list[dict]:
    """Editor Iter0 (no tags yet) and Iter1 (one edit adding them), both scored against Iter0; the
    factory's substitution and tagged renderings scored against its own tag-free rendering."""
    cells = []

    def cell(run, mode, x, source, y):
        return {"run": run, "source": "own", "mode": mode, "id": x["id"], "language": x["language"],
                "category": "paralinguistic", "label": x["label"], "speaker": x["speaker"],
                "iter": 1 if mode != "iter0" else 0, "score": scores.add("paralinguistic", y, source, x)}
    for x in para:
        src = (_iter0("editor/own", x["id"]), iter0[x["id"]])
        cells.append(cell("editor", "iter0", x, src, src))
        cells.append(cell("editor", "iter1", x, src, (f"editor/own/paralinguistic/{x['id']}/iter1", edits[x["id"]][0])))
    if baselines:
        for x in para:
            names, clips = _factory_para(store, engine.engine, x, vp[x["speaker"]]["speaker"], seed)
            src = (names[0], clips[0])
            cells.append(cell("factory", "substitution", x, src, (names[1], clips[1])))
            cells.append(cell("factory", "tagged_rendering", x, src, (names[2], clips[2])))
    return cells


def _factory_para(store, eng, x, speaker, seed):
    """The factory's own clips for a paralinguistic prompt, in the speaker's timbre: tag-free, the
    substitution baseline (tags spoken as words) and the tagged rendering (the pipeline's target)."""
    from core.nvspeech import substitute
    from tts.vocalizations import render_tagged
    names = [f"factory/{k}/{x['id']}" for k in ("tag_free", "substitution", "tagged_rendering")]
    got = [store.get(n) for n in names]
    if any(g is None for g in got):
        lang, v, base = x["language"], speaker.timbre, speaker.base_voice
        made = [eng.render(x["text"], lang, v, base, seed), eng.render(substitute(x["text_with_tags"], lang), lang, v, base, seed),
                render_tagged(eng, x["text_with_tags"], lang, v, base, seed)[0]]
        got = [store.put(n, np.asarray(y, np.float32)) for n, y in zip(names, made)]
    return names, got


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1, default=_jsonable), encoding="utf-8")
    os.replace(tmp, path)


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, Failed):
        return {"failed": x.reason}
    raise TypeError(f"not JSON: {type(x).__name__}")
