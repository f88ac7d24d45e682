"""The editing benchmark: python run.py pipeline=edit_benchmark pipeline.editor=DIR [pipeline.judge=DIR].

The set (benchmark/bench_set.py) is cloned (Iter0) and edited three times by the editor, feeding
back and, as the seed's ablation, with the prompt fixed; the same edits run on audio the editor did
not make (the factory engine's clones, plain Piper/espeak-ng renderings, the user's recordings); the
identity and the factory engine edit the editor's Iter0 as baselines; paralinguistic prompts get
one edit, with the factory's substitution and its own tagged rendering beside it. Every clip is
scored (judge, similarity to Iter0, English WER, or the paralinguistic 1-3 score).

Output (core.releases.PipelineDir, as every pipeline): output_dir/edit_benchmark/releases/<id>/
with manifest.json (the set), audio/ (every clip), results.json (cells and summary), tables.md,
accuracy_<category>.png, rejects.json, run.json; `latest` switches when the run is whole. A killed
run resumes from its clips (benchmark/store.py). The chains are dependent calls of one editor, not
independent rows, so they run in this process rather than through the runner's Ray stages."""
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from benchmark import bench_set, protocol, recordings, tables
from benchmark.choose import load_editor, load_judge
from benchmark.editors import Failed, IdentityEditor
from benchmark.engine_editor import EngineEditor
from benchmark.scoring import Scorer
from benchmark.store import ClipStore
from core.releases import PipelineDir
from pipelines.runner import check_output_dir

NAME = "edit_benchmark"


def refuse_trained_on_benchmark(editor_spec: str, languages) -> None:
    """An editor whose training.json lists a benchmark speaker is refused: its numbers would not be held out."""
    info = Path(str(editor_spec)) / "training.json"
    if not info.is_file():
        return
    overlap = bench_set.training_speakers(json.loads(info.read_text())) & {s.id for s in bench_set.speakers(languages)}
    if overlap:
        raise ValueError(f"pipeline.editor={editor_spec}: its training.json lists benchmark speakers "
                         f"{sorted(overlap)}; the benchmark needs voices the editor never trained on")


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


def _cells(scorer, run, source, mode, prompts, start, iters) -> list[dict]:
    """Cells of chains: Iter0 = start, then the iterations (judged prompts)."""
    out = []
    for p in prompts:
        ref = start[p["id"]]
        ref_emb = scorer.embedding(ref)
        chain = [ref, *iters[p["id"]]] if iters is not None else [ref]
        for k, y in enumerate(chain):
            base = {"run": run, "source": source, "mode": mode, "id": p["id"], "language": p["language"],
                    "category": p["category"], "label": p["label"], "speaker": p["speaker"], "iter": k}
            out.append({**base, **scorer.judged(y, p, ref_emb)})
    return out


def run(cfg):
    p = cfg.pipeline
    t0 = time.time()
    languages = list(p.languages)
    labels = _labels(p)
    if not p.editor:
        raise ValueError("pipeline.editor is required: an audio-LLM artifact dir, identity, engine or http://URL")
    refuse_trained_on_benchmark(p.editor, languages)
    prompts = bench_set.build(languages, labels, int(p.n), int(p.seed))
    judged = [x for x in prompts if x["category"] != "paralinguistic"]
    para = [x for x in prompts if x["category"] == "paralinguistic"]
    editor = load_editor(p.editor, device=p.device, temperature=float(p.temperature))
    judge = load_judge(p.judge)
    engine = EngineEditor()
    settings = OmegaConf.to_container(p, resolve=True)
    identity = {"set": prompts, "editor": editor.name, "editor_spec": str(p.editor), "judge": judge.version,
                "settings": settings, "voice_bank_seed": cfg.seed}
    fingerprint = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]

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
              f"editor {editor.name}, judge {judge.version}", flush=True)

        iter0 = protocol.clone_all(editor, prompts, vp, store, "editor/own", seed)
        runs = [("editor", "own", "feedback", editor, judged, iter0)]
        if p.prompt_fixed:
            runs.append(("editor", "own", "prompt_fixed", editor, judged, iter0))
        for b in p.baselines:
            if b not in ("identity", "engine"):
                raise ValueError(f"pipeline.baselines: unknown {b!r}; known: identity, engine")
            runs.append((b, "own", "feedback", IdentityEditor(engine) if b == "identity" else engine, judged, iter0))
        for src in p.generalisation:
            if src == "engine_clone":
                start = protocol.clone_all(engine, judged, vp, store, "sources/engine_clone", seed)
            elif src == "base_voice":
                start = {x["id"]: _base_voice(store, engine.engine, x, vp[x["speaker"]]["speaker"]) for x in judged}
            else:
                raise ValueError(f"pipeline.generalisation: unknown {src!r}; known: engine_clone, base_voice")
            runs.append(("editor", src, "feedback", editor, judged, start))
        if p.recordings:
            recs, bad = recordings.read(p.recordings, languages)
            rejects += [{"what": "recording", **r} for r in bad]
            rprompts = recordings.prompts(recs, labels)
            rstart = {x["id"]: next(r["wav"] for r in recs if f"rec:{r['name']}" == x["speaker"]) for x in rprompts}
            runs.append(("editor", "recordings", "feedback", editor, rprompts, rstart))

        scorer = Scorer(judge, similarity=bool(p.similarity), wer=bool(p.wer))
        cells = []
        for run_name, source, mode, ed, ps, start in runs:
            print(f"  {run_name} / {source} / {mode}: {len(ps)} chains x {n_iter} iterations", flush=True)
            iters = protocol.iterate(ed, ps, start, n_iter, mode == "prompt_fixed", store, f"{run_name}/{source}/{mode}", seed)
            cells += _cells(scorer, run_name, source, mode, ps, start, iters)
        cells += _paralinguistic(scorer, editor, engine, para, iter0, vp, store, seed, bool(p.paralinguistic_baselines))
        rejects += [{"what": "cell", **{k: c[k] for k in ("run", "source", "mode", "id", "iter")}, "reason": c["failed"]}
                    for c in cells if "failed" in c]

        summary = tables.summarize(cells)
        head = (f"Editor `{editor.name}` ({p.editor}), judge `{judge.version}`, n={p.n} per label and language, "
                f"seed {p.seed}, languages {', '.join(languages)}.")
        (partial / "tables.md").write_text(tables.markdown(summary, n_iter, head), encoding="utf-8")
        tables.plots(summary, n_iter, partial)
        _write_json(partial / "results.json", {"editor": editor.name, "judge": judge.version, "summary": summary,
                                               "cells": cells})
        _write_json(partial / "rejects.json", rejects)
        _write_json(partial / "run.json", {"command": " ".join(sys.argv), "settings": settings, "fingerprint": fingerprint,
                                           "seconds": round(time.time() - t0, 1), "clips_failed": len(rejects)})
        release = out.publish(partial, time.strftime("%Y%m%d-%H%M%S-") + fingerprint, int(cfg.release.keep))
    finally:
        out.unlock()
    print(f"edit_benchmark: release {release} ({time.time() - t0:.0f} s)", flush=True)
    return {"release": str(release), "summary": summary}


def _base_voice(store, eng, x, speaker):
    """The plain base voice (Piper or espeak-ng, no timbre) speaking the text: a source the editor did not make."""
    name = f"sources/base_voice/{x['id']}/iter0"
    got = store.get(name)
    if got is None:
        got = store.put(name, eng.base(x["text"], x["language"], speaker.base_voice))
    return got


def _paralinguistic(scorer, editor, engine, para, iter0, vp, store, seed, baselines) -> list[dict]:
    """Editor Iter0 (no tags yet) and Iter1 (one edit adding them), both scored against Iter0; the
    factory's substitution and tagged renderings scored against its own tag-free rendering."""
    if not para:
        return []
    iters = protocol.iterate(editor, para, iter0, 1, False, store, "editor/own/paralinguistic", seed)
    cells = []

    def cell(run, mode, x, source, y):
        return {"run": run, "source": "own", "mode": mode, "id": x["id"], "language": x["language"],
                "category": "paralinguistic", "label": x["label"], "speaker": x["speaker"],
                "iter": 1 if mode != "iter0" else 0, **scorer.paralinguistic(source, y, x, scorer.embedding(source))}
    for x in para:
        cells.append(cell("editor", "iter0", x, iter0[x["id"]], iter0[x["id"]]))
        cells.append(cell("editor", "iter1", x, iter0[x["id"]], iters[x["id"]][0]))
    if baselines:
        for x in para:
            src, sub, tgt = _factory_para(store, engine.engine, x, vp[x["speaker"]]["speaker"], seed)
            cells.append(cell("factory", "substitution", x, src, sub))
            cells.append(cell("factory", "tagged_rendering", x, src, tgt))
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
    return got


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
