"""pipeline=train_judge: train the benchmark's judge (emotion and style classifiers on audio), report
its accuracy on voices it never trained on, and publish the artifact atomically.

Its data is its own: factory runs of emotion_triplets / style_triplets with the judge's voice pool,
seed and texts (pipeline.factory; rendered here when pipeline.emotion_data / style_data are null),
without the margin scorer (the judge is kept apart from what selects the editor's data). Each
triplet gives two clips: src (neutral) and tgt (its tag). Speakers are split into training and
held-out voices, and texts into training and held-out texts (each tag has its own sentences, so a
model that heard a sentence could name the tag from the words): the headline number is on held-out
voices saying held-out texts. The published model is the one trained on the training voices and
texts only, so the held-out numbers in meta.json are the shipped model's own.

Each task's training writes a checkpoint every epoch (<artifact>/../.<name>.checkpoints/<task>.pt);
`resume=true` continues a killed run from them (the factory data is reused by its own releases), and
a run without it starts afresh. The checkpoints go when the artifact is published."""
import hashlib
import shutil
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from core import splits
from core.reader import Release
from pipelines.runner import check_output_dir
from scorers.judge import artifact, fit
from scorers.judge.labels import PIPELINE_OF, TASKS, check_task
from scorers.judge.local import waveform


def factory_cfg(cfg, task: str):
    """The config of the judge's own factory run for one task (its pool, seed, texts; no margin scorer,
    no split: every clip is the judge's, and the judge splits by speaker itself)."""
    f = cfg.pipeline.factory
    sub = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(sub):
        sub.pipeline = {"name": PIPELINE_OF[task], "texts_per_tag": f.texts_per_tag}
        sub.output_dir = f.output_dir
        sub.seed = f.seed
        sub.voice_bank.pool = f.pool
        sub.voice_bank.per_language = f.per_language
        sub.texts.extra_dir = f.texts_dir
        sub.texts.shipped = False
        sub.texts_per_tag = f.texts_per_tag
        sub.margin.enabled = False
        sub.splits.enabled = False
        sub.quality.prompt_similarity.enabled = False
        sub.limit = None
        if task == "emotion":
            sub.emotions = [c for c in TASKS[task] if c != "neutral"]
        else:
            sub.styles = [c for c in TASKS[task] if c != "neutral"]
    return sub


def task_data(cfg, task: str) -> str:
    given = cfg.pipeline.get(f"{task}_data")
    if given:
        return given
    from pipelines import triplets
    sub = factory_cfg(cfg, task)
    print(f"== train_judge: rendering the judge's own {task} data ({PIPELINE_OF[task]}, pool {sub.voice_bank.pool}, "
          f"seed {sub.seed}) -> {sub.output_dir}", flush=True)
    triplets.run(sub, task)
    return str(Path(sub.output_dir) / PIPELINE_OF[task])


def read_clips(data: str, task: str, pool: str) -> list[dict]:
    """One record per clip: src as neutral, tgt as its tag. Every speaker must be the judge pool's."""
    rel = Release(data)
    out, foreign = [], set()
    for s in rel.samples(members=["src.flac", "tgt.flac"]):
        j = s.json
        if not str(j.get("speaker", "")).startswith(f"{pool}_"):
            foreign.add(j.get("speaker"))
            continue
        tag = j.get("edit_info")
        if tag not in TASKS[task]:
            continue
        for member, label in (("src.flac", "neutral"), ("tgt.flac", tag)):
            x, sr = s.members[member]
            out.append({"x": waveform((x, sr), f"{data}#{s.key}.{member}"), "label": label, "speaker": j["speaker"],
                        "language": j["language"], "gender": j.get("gender"), "text": j["text"],
                        "voice_bank": j.get("provenance", {}).get("voice_bank"), "base_voice": j.get("base_voice")})
    if foreign:
        raise ValueError(f"pipeline.{task}_data={data}: speakers outside the judge's voice pool {pool!r} "
                         f"({sorted(map(str, foreign))[:5]}): the judge trains on its own voices only")
    if not out:
        raise ValueError(f"pipeline.{task}_data={data}: no {task} clips of the {pool!r} pool")
    return out


def engine_speakers(records: list[dict], engines) -> set[str]:
    """The speakers rendered on a base voice of one of these engines (splits.held_out_engines)."""
    return {r["speaker"] for r in records if splits.on_engine(r.get("base_voice"), engines)}


def heldout_speakers(records: list[dict], given, engines=()) -> list[str]:
    """Given, or per language the last female and the last male speaker by id (drawn speakers are
    numbered, so this is the same choice at any pool size); and every speaker of a held-out engine
    (splits.held_out_engines), so that the judge, like the codec and the editor, never trains on it."""
    by_engine = engine_speakers(records, engines)
    speakers = {r["speaker"]: (r["language"], r["gender"]) for r in records if r["speaker"] not in by_engine}
    if given:
        unknown = sorted(set(given) - set(speakers) - by_engine)
        if unknown:
            raise ValueError(f"pipeline.heldout_speakers: {unknown} not in the data ({sorted(speakers)})")
        return sorted(set(given) | by_engine)
    out = sorted(by_engine)
    for lang in sorted({l for l, _ in speakers.values()}):
        for gender in ("female", "male"):
            ids = sorted((s for s, lg in speakers.items() if lg == (lang, gender)), key=lambda s: (len(s), s))
            if len(ids) >= 2:
                out.append(ids[-1])
    if len(out) == len(by_engine):
        raise ValueError("too few speakers to hold any out: need at least 2 of one language and gender")
    return sorted(out)


def heldout_texts(records: list[dict], per_tag: int) -> set[str]:
    """Per language and tag, per_tag of its texts, chosen by a hash of the text (stable at any corpus size)."""
    by = {}
    for r in records:
        if r["label"] != "neutral":
            by.setdefault((r["language"], r["label"]), set()).add(r["text"])
    out = set()
    for (lang, tag), texts in sorted(by.items()):
        if len(texts) <= per_tag:
            raise ValueError(f"pipeline.heldout_texts_per_tag={per_tag}: {lang}/{tag} has only {len(texts)} texts; "
                             "some must be left to train on")
        out |= set(sorted(texts, key=lambda t: hashlib.sha1(t.encode()).hexdigest())[:per_tag])
    return out


def summary(records: list[dict], classes) -> dict:
    return {"clips": len(records), "speakers": sorted({r["speaker"] for r in records}),
            "texts": len({r["text"] for r in records if "text" in r}),
            "clips_per_class": {c: sum(r["label"] == c for r in records) for c in classes},
            "seconds": round(sum(len(r["x"]) for r in records) / 16000, 1)}


def checkpoints(out: Path, resume: bool) -> Path:
    """The run's checkpoint folder beside the artifact: kept by resume=true, else started afresh."""
    ck = out.with_name(f".{out.name}.checkpoints")
    if ck.exists() and not resume:
        shutil.rmtree(ck)
    ck.mkdir(parents=True, exist_ok=True)
    return ck


def run(cfg):
    check_output_dir(cfg.output_dir)
    p = cfg.pipeline
    tasks = [check_task(t) for t in p.tasks]
    out = Path(p.artifact_out or Path(cfg.output_dir) / "judge" / p.version)
    ck = checkpoints(out, bool(cfg.resume))
    torch_threads(p.threads)
    models, meta = {}, {"version": p.version, "command": "python run.py " + " ".join(sys.argv[1:]),
                        "model": "LogMelCNN (scorers/judge/cnn.py): 4 conv blocks over 64-band log-mel, "
                                 "mean+std pooling over time, linear head", "train": OmegaConf.to_container(p.train),
                        "factory": OmegaConf.to_container(p.factory, resolve=True), "tasks": {}}
    if p.extend:
        models, meta = extended(p, meta)
    for task in tasks:
        if task == "vocalization":
            models[task], meta["tasks"][task] = train_vocalization(cfg, ck / f"{task}.pt")
            continue
        data = task_data(cfg, task)
        classes = TASKS[task]
        records = read_clips(data, task, p.factory.pool)
        engines = splits.held_out_engines(cfg.splits)
        held = set(heldout_speakers(records, p.heldout_speakers, engines))
        held_texts = heldout_texts(records, p.heldout_texts_per_tag)
        train = [r for r in records if r["speaker"] not in held and r["text"] not in held_texts]
        test = [r for r in records if r["speaker"] in held and r["text"] in held_texts]
        seen_texts = [r for r in records if r["speaker"] in held and r["text"] not in held_texts]
        if not train or not test:
            raise ValueError(f"{task}: {len(train)} training and {len(test)} held-out clips; need both")
        idx = {c: i for i, c in enumerate(classes)}
        t0 = time.time()
        print(f"== train_judge {task}: {len(train)} training clips ({len({r['speaker'] for r in train})} speakers), "
              f"{len(test)} held-out clips (speakers {sorted(held)}, {len(held_texts)} held-out texts)", flush=True)
        model = fit.train([r["x"] for r in train], [idx[r["label"]] for r in train], len(classes),
                          seed=cfg.seed, log=print, checkpoint=ck / f"{task}.pt", **OmegaConf.to_container(p.train))
        ev = fit.evaluate(fit.predict(model, [r["x"] for r in test]), [idx[r["label"]] for r in test],
                          [r["speaker"] for r in test], classes)
        seen_ev = fit.evaluate(fit.predict(model, [r["x"] for r in seen_texts]), [idx[r["label"]] for r in seen_texts],
                               [r["speaker"] for r in seen_texts], classes) if seen_texts else None
        train_ev = fit.evaluate(fit.predict(model, [r["x"] for r in train]), [idx[r["label"]] for r in train],
                                [r["speaker"] for r in train], classes)
        models[task] = model
        meta["tasks"][task] = {
            "data": data, "voice_bank": sorted({str(r["voice_bank"]) for r in records}),
            "train": summary(train, classes), "heldout": summary(test, classes),
            "heldout_engines": sorted(engines), "heldout_engine_speakers": sorted(engine_speakers(records, engines)),
            "heldout_texts": sorted(held_texts),
            "heldout_eval": ev, "heldout_voices_training_texts_eval": seen_ev, "train_accuracy": train_ev["accuracy"], "train_seconds": round(time.time() - t0, 1)}
        print(f"   held out: accuracy {ev['accuracy']:.3f} (tagged classes, mean over speakers: "
              f"{ev['tagged_accuracy_mean_over_classes']:.3f}); held-out voices on training texts "
              f"{seen_ev['accuracy'] if seen_ev else float('nan'):.3f}; training accuracy {train_ev['accuracy']:.3f}\n"
              + fit.confusion_text(ev), flush=True)
    artifact.publish(out, p.version, models, p.train.width, meta)
    shutil.rmtree(ck, ignore_errors=True)
    print(f"== judge {p.version} -> {out}")
    return meta


def extended(p, meta: dict) -> tuple[dict, dict]:
    """pipeline.extend=DIR: that judge's tasks, weights and their meta, kept; the listed tasks are
    trained and added (or replace its own)."""
    import json
    config, models = artifact.load(p.extend)
    if config["width"] != p.train.width:
        raise ValueError(f"pipeline.extend={p.extend}: its networks have width {config['width']}, "
                         f"pipeline.train.width is {p.train.width}; one artifact has one width")
    old = json.loads((Path(p.extend) / "meta.json").read_text())
    meta["extends"] = {"path": str(p.extend), "version": config["version"], "command": old.get("command"),
                       "factory": old.get("factory")}
    meta["tasks"].update({t: m for t, m in old.get("tasks", {}).items() if t in models})
    return dict(models), meta


def train_vocalization(cfg, checkpoint: Path):
    """The vocalization task: trained on each event alone in the judge pool's voices (all but the held-out
    ones), scored on what the paralinguistic scorer cuts out of tagged utterances in the held-out voices."""
    from scorers.judge.vocalization_data import scorer_cut_clips, training_clips
    from tts.engine import LocalEngine
    from tts.texts import sentences
    from tts.voice_bank import generated_speakers
    p, v = cfg.pipeline, cfg.pipeline.vocalization
    classes = TASKS["vocalization"]
    speakers = generated_speakers(list(cfg.languages), p.factory.per_language, p.factory.pool)
    lines = {lang: [x for tag in TASKS["emotion"][1:] for x in sentences(lang, tag, p.factory.texts_dir, shipped=False)]
             for lang in cfg.languages}
    # voices of a held-out engine are held out here too, as in the other tasks
    held = set(heldout_speakers([{"speaker": s.id, "language": s.language, "gender": s.gender,
                                  "base_voice": s.base_voice} for s in speakers],
                                p.heldout_speakers, splits.held_out_engines(cfg.splits)))
    engine = LocalEngine(16000)
    t0 = time.time()
    train = training_clips(engine, [s for s in speakers if s.id not in held], lambda lang: lines[lang][0],
                           int(v.per_tag), int(p.factory.seed))
    print(f"== train_judge vocalization: {len(train)} training clips ({len(speakers) - len(held)} voices), "
          f"held-out voices {sorted(held)}", flush=True)
    test = scorer_cut_clips(engine, [s for s in speakers if s.id in held], lines.__getitem__, int(v.eval_per_tag),
                            int(p.factory.seed))
    found = [r for r in test if r["x"] is not None]
    if not found:
        raise ValueError("vocalization: the paralinguistic scorer found no event in any held-out utterance")
    idx = {c: i for i, c in enumerate(classes)}
    model = fit.train([r["x"] for r in train], [idx[r["label"]] for r in train], len(classes), seed=cfg.seed, log=print,
                      checkpoint=checkpoint, **{**OmegaConf.to_container(p.train), "crop_s": float(v.crop_s)})
    from benchmark.scoring import event_clip
    ev = fit.evaluate(fit.predict(model, [event_clip(r["x"]) for r in found]), [idx[r["label"]] for r in found],
                      [r["speaker"] for r in found], classes)
    train_ev = fit.evaluate(fit.predict(model, [event_clip(r["x"]) for r in train]), [idx[r["label"]] for r in train],
                            [r["speaker"] for r in train], classes)
    missed = {c: sum(r["x"] is None for r in test if r["label"] == c) for c in classes}
    print(f"   held out (events as the scorer cuts them): accuracy {ev['accuracy']:.3f}; events the scorer "
          f"missed {sum(missed.values())}/{len(test)}; training accuracy {train_ev['accuracy']:.3f}\n"
          + fit.confusion_text(ev), flush=True)
    meta = {"data": "rendered here: each vocalization alone (scorers/judge/vocalization_data.py)",
            "train": summary(train, classes), "heldout": {**summary(found, classes), "missed_by_scorer": missed},
            "heldout_eval": ev, "train_accuracy": train_ev["accuracy"], "settings": OmegaConf.to_container(v),
            "train_seconds": round(time.time() - t0, 1)}
    return model, meta


def torch_threads(n):
    if n:
        import torch
        torch.set_num_threads(int(n))
