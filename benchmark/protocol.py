"""The seed's protocol on any editor: Iter0 clones, Iter1..K edits that feed back, the prompt-fixed
ablation, and edits of audio the editor did not make.

Feedback: iteration k edits iteration k-1's output. Prompt-fixed: every iteration edits the same
start clip (Iter0) again, with iteration k's seed. A failed clip fails every later iteration of its
chain with the reason ("no input: ..."), never the run. Clips go through a ClipStore under
`<run>/<prompt id>/iter<k>`, so a rerun makes only the missing ones."""
from benchmark.editors import Failed, run_safely
from benchmark.store import ClipStore

BATCH = 16     # requests per editor call: the unit of work a killed run loses


def edit_request(p: dict, wav, seed: int) -> dict:
    para = p["category"] == "paralinguistic"
    return {"wav": wav, "text": p["text"], "edit_type": p["category"],
            "edit_info": p["text_with_tags"] if para else p["label"], "language": p["language"], "seed": seed}


def clone_request(p: dict, prompt: dict, seed: int) -> dict:
    return {"prompt_wav": prompt["wav"], "prompt_text": prompt["text"], "text": p["text"], "language": p["language"],
            "seed": seed}


def _through_store(editor, method: str, names: list[str], requests: list[dict], store: ClipStore) -> list:
    out = [store.get(n) for n in names]
    todo = [i for i, y in enumerate(out) if y is None]
    for k in range(0, len(todo), BATCH):
        idx = todo[k:k + BATCH]
        for i, y in zip(idx, run_safely(editor, method, [requests[i] for i in idx])):
            out[i] = store.put(names[i], y)
    return out


def clone_all(editor, prompts: list[dict], voice_prompts: dict, store: ClipStore, run: str, seed: int) -> dict:
    """Iter0 of every prompt: {prompt id: clip or Failed}."""
    names = [f"{run}/{p['id']}/iter0" for p in prompts]
    reqs = [clone_request(p, voice_prompts[p["speaker"]], seed) for p in prompts]
    return {p["id"]: y for p, y in zip(prompts, _through_store(editor, "clone", names, reqs, store))}


def iterate(editor, prompts: list[dict], start: dict, n_iter: int, prompt_fixed: bool, store: ClipStore, run: str,
            seed: int) -> dict:
    """{prompt id: [iter1, ..., iterN]} (clips or Failed) from start = {prompt id: Iter0 clip or Failed}."""
    outs = {p["id"]: [] for p in prompts}
    for k in range(1, n_iter + 1):
        names, reqs, ids = [], [], []
        for p in prompts:
            src = start[p["id"]] if (k == 1 or prompt_fixed) else outs[p["id"]][-1]
            if isinstance(src, Failed):
                outs[p["id"]].append(Failed(src.reason if src.reason.startswith("no input") else f"no input: {src.reason}"))
                continue
            names.append(f"{run}/{p['id']}/iter{k}")
            reqs.append(edit_request(p, src, seed + k))
            ids.append(p["id"])
        for i, y in zip(ids, _through_store(editor, "edit", names, reqs, store)):
            outs[i].append(y)
    return outs
