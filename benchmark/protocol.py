"""The seed's protocol on any editor: Iter0 clones, Iter1..K edits that feed back, the prompt-fixed
ablation, and edits of audio the editor did not make.

Feedback: iteration k edits iteration k-1's output. Prompt-fixed: every iteration edits the same
start clip (Iter0) again, with iteration k's seed. A failed clip fails every later iteration of its
chain with the reason ("no input: ..."), never the run. Clips go through a ClipStore under
`<run>/<prompt id>/iter<k>`, so a rerun makes only the missing ones.

Iteration k of every chain set is one round of calls: the chains are independent of one another,
so a round's requests run together, on as many workers as the calls have (benchmark/calls.py)."""
from dataclasses import dataclass

from benchmark.calls import LocalCalls
from benchmark.editors import Failed
from benchmark.store import ClipStore


@dataclass
class Chains:
    """One set of chains: its store prefix, which editor edits, the prompts and each one's Iter0."""
    run: str                   # "<run>/<source>/<mode>": where its clips are stored
    editor: str                # the editor's key in the calls (its pipeline.editor spec)
    prompts: list[dict]
    start: dict                # {prompt id: Iter0 clip or Failed}
    n_iter: int
    prompt_fixed: bool = False


def edit_request(p: dict, wav, seed: int) -> dict:
    para = p["category"] == "paralinguistic"
    return {"wav": wav, "text": p["text"], "edit_type": p["category"],
            "edit_info": p["text_with_tags"] if para else p["label"], "language": p["language"], "seed": seed}


def clone_request(p: dict, prompt: dict, seed: int) -> dict:
    return {"prompt_wav": prompt["wav"], "prompt_text": prompt["text"], "text": p["text"], "language": p["language"],
            "seed": seed}


def _calls(calls_or_editor):
    """Calls as given, or a single editor object wrapped to run here under the key "editor"."""
    return calls_or_editor if callable(calls_or_editor) else LocalCalls({"editor": calls_or_editor})


def _through_store(calls, method: str, jobs: list[tuple[str, str, dict]], store: ClipStore) -> list:
    """jobs: (clip name, editor key, request). Stored clips are read back; the missing ones are made
    and stored one by one as they come, so a killed run keeps every clip it finished."""
    out = [store.get(name) for name, _, _ in jobs]
    todo = [i for i, y in enumerate(out) if y is None]
    for i, y in zip(todo, calls(method, [(jobs[i][1], jobs[i][2]) for i in todo])):
        out[i] = store.put(jobs[i][0], y)
    return out


def clone_all(calls, prompts: list[dict], voice_prompts: dict, store: ClipStore, run: str, seed: int,
              editor: str = "editor") -> dict:
    """Iter0 of every prompt: {prompt id: clip or Failed}."""
    jobs = [(f"{run}/{p['id']}/iter0", editor, clone_request(p, voice_prompts[p["speaker"]], seed)) for p in prompts]
    return {p["id"]: y for p, y in zip(prompts, _through_store(_calls(calls), "clone", jobs, store))}


def iterate_all(calls, sets: list[Chains], store: ClipStore, seed: int) -> list[dict]:
    """For each chain set, {prompt id: [iter1, ..., iterN]} (clips or Failed)."""
    calls = _calls(calls)
    outs = [{p["id"]: [] for p in c.prompts} for c in sets]
    for k in range(1, max((c.n_iter for c in sets), default=0) + 1):
        jobs, where = [], []
        for ci, c in enumerate(sets):
            if k > c.n_iter:
                continue
            for p in c.prompts:
                src = c.start[p["id"]] if (k == 1 or c.prompt_fixed) else outs[ci][p["id"]][-1]
                if isinstance(src, Failed):
                    outs[ci][p["id"]].append(Failed(src.reason if src.reason.startswith("no input")
                                                    else f"no input: {src.reason}"))
                    continue
                jobs.append((f"{c.run}/{p['id']}/iter{k}", c.editor, edit_request(p, src, seed + k)))
                where.append((ci, p["id"]))
        for (ci, pid), y in zip(where, _through_store(calls, "edit", jobs, store)):
            outs[ci][pid].append(y)
    return outs


def iterate(calls, prompts: list[dict], start: dict, n_iter: int, prompt_fixed: bool, store: ClipStore, run: str,
            seed: int, editor: str = "editor") -> dict:
    """One chain set: {prompt id: [iter1, ..., iterN]} from start = {prompt id: Iter0 clip or Failed}."""
    return iterate_all(calls, [Chains(run, editor, prompts, start, n_iter, prompt_fixed)], store, seed)[0]
