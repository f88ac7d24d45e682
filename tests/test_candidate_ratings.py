"""People's 5-point ratings of candidate answers (pipeline=label_margins pipeline.mode=candidates): the
store, the pairs export's margin rule, the server under bad input, and the page in a real browser."""
import http.client
import json
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

from conftest import run_pipeline
from editor.llm import pairs
from editor.llm.pair_rule import prompt_split
from pipelines.label_candidates import CandidateDataset, open_store, start_server
from scorers.labels import LabelStore
from scorers.people_pairs import export, item_id, people_pairs
from test_label_page import CHROMEDRIVER, CHROMIUM, _browser

K = 3  # candidates per prompt


def _npy(ids) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, np.asarray(ids, dtype="<i2"))
    return buf.getvalue()


def _tone(hz: float, seconds: float = 1.2, sr: int = 16000) -> bytes:
    from core.audio import encode_flac
    t = np.arange(int(seconds * sr)) / sr
    return encode_flac(0.3 * np.sin(2 * np.pi * hz * t).astype(np.float32), sr)


def tokens(p: int, i: int) -> list[int]:
    """Candidate i of prompt p's codec ids: distinct per candidate, so a swapped pair shows."""
    return [100 * p + 10 * i + j for j in range(5 + i)]


def write_candidates_release(pipe_dir: Path, n_prompts: int = 3) -> Path:
    """A preference_candidates release as pipeline=preference_pairs writes it (shards, manifest,
    latest): prompt 0 and 1 edits, the last a clone; real FLAC tones and int16 token arrays."""
    from core.reader import flatten
    from core.sample import SAMPLE_VERSION, Sample
    from core.shards import ShardWriter

    rel = pipe_dir / "releases" / "r1"
    writer = ShardWriter(rel / "shards", pipe_dir.name, 2, 2 ** 30)
    rows = []
    for p in range(n_prompts):
        clone = p == n_prompts - 1
        text = f"Sentence number {p} to say."
        instruction = None if clone else f"Make the following audio more happy: {text}"
        ex = {"system": "clone" if clone else "edit", "instruction": instruction, "text": text, "target_text": text,
              "language": "en", "source_tokens": [7, 8, 9 + p],
              **({"speaker": {"name": "en_f1", "prompt_text": "A prompt."}} if clone else {})}
        js = {"task": "preference_candidates", "sample_version": SAMPLE_VERSION, "text": text, "language": "en",
              "speaker": "en_f1", "split": "train", "sample_rate": 16000,
              "durations": {"src": 1.2, **{f"cand{i}": 1.2 for i in range(K)}}, "provenance": {}, "prompt": None,
              "prompt_key": f"prompt-{p}", "source_task": "clone" if clone else "emotion_edit",
              "instruction": instruction, "edit_type": None if clone else "emotion",
              "edit_info": None if clone else "happy", "llm": "tiny-sft", "temperature": 0.8,
              "candidates": [{"member": f"cand{i}.flac", "seed": i, "score": None, "rater": None} for i in range(K)],
              "example": pairs.example_json(ex)}
        members = {"src.flac": _tone(220 + 20 * p)}
        for i in range(K):
            members[f"cand{i}.flac"] = _tone(330 + 40 * i + 20 * p)
            members[f"cand{i}.tok.npy"] = _npy(tokens(p, i))
        key = f"pref_{p:02d}-abcdef{p}"
        shard = writer.write(Sample(key, js, members))
        rows.append({"key": key, "shard": shard, **flatten(js)})
    writer.close()
    pd.DataFrame(rows).to_parquet(rel / "manifest.parquet")
    (pipe_dir / "latest").symlink_to("releases/r1")
    for name in ("shards", "manifest.parquet"):
        (pipe_dir / name).symlink_to(f"latest/{name}")
    return pipe_dir


@pytest.fixture
def release(tmp_path):
    d = write_candidates_release(tmp_path / "preference_pairs")
    return d, CandidateDataset(d).keys


def _rate(store, key, annotator, scores):
    store.rate_many({item_id(key, i): s for i, s in enumerate(scores)}, annotator)


# (a) the store: a prompt's ratings saved together, replaced, resumed, per annotator, with agreement

def test_store_saves_a_prompt_whole_and_resumes(release, tmp_path):
    d, keys = release
    ds = CandidateDataset(d)
    db = tmp_path / "labels.sqlite"
    store = open_store(db, ds)
    store.add_items(ds.store_items())
    _rate(store, keys[0], "alice", [5, 1, 3])
    _rate(store, keys[0], "alice", [4, 2, 3])  # re-rating replaces
    assert [store.rating(item_id(keys[0], i), "alice") for i in range(K)] == [4, 2, 3]
    with pytest.raises(ValueError, match="not an integer on the scale 1..5"):
        _rate(store, keys[1], "alice", [5, 6, 1])  # one bad score: none of the prompt is stored
    with pytest.raises(KeyError):
        store.rate_many({item_id(keys[1], 0): 5, item_id(keys[1], 7): 5}, "alice")
    assert store.rated_ids("alice") == {item_id(keys[0], i) for i in range(K)}
    store.close()

    server, _ = start_server(d, db=db, port=0)  # a restart resumes each annotator at their first unrated prompt
    try:
        assert server.next_unrated("alice") == keys[1] and server.next_unrated("bob") == keys[0]
        _rate(server.store, keys[0], "bob", [4, 2, 1])
        state = server.state(None, "bob")
        assert state["key"] == keys[1] and state["rated"] == 1 and not state["done"]
        assert [c["score"] for c in server.state(keys[0], "bob")["candidates"]] == [4, 2, 1]
        assert [c["score"] for c in server.state(keys[0], "carol")["candidates"]] == [None] * K
        agreement = server.state(keys[0], "bob")["agreement"]  # on answers both rated: |4-4|, |2-2|, |3-1|
        assert agreement["items"] == K and agreement["mean_abs_diff"] == pytest.approx(2 / 3)
        assert agreement["pairs"] == [{"annotators": ["alice", "bob"], "n": K, "spearman": pytest.approx(0.5)}]
        # answer pairs both ordered: (0,1) and (0,2) the same way, (1,2) opposite (alice 2 < 3, bob 2 > 1)
        assert agreement["order"] == {"pairs": 3, "same_order": pytest.approx(2 / 3)}
        _rate(server.store, keys[0], "carol", [3, 3, 1])  # her tie of cand0 and cand1 is no order
        order = server.state(keys[0], "bob")["agreement"]["order"]
        assert order == {"pairs": 7, "same_order": pytest.approx(5 / 7)}
        assert server.state(keys[0], "bob")["counts"] == {"alice": K, "bob": K, "carol": K}
        margins = LabelStore(db)  # the margin task in the same database sees none of these
        assert margins.counts() == {}
        margins.close()
    finally:
        server.shutdown()
        server.server_close()


# (b) export: only pairs whose mean ratings differ by more than the threshold, higher one chosen

def test_export_keeps_pairs_over_the_margin(release, tmp_path):
    d, keys = release
    ds = CandidateDataset(d)
    store = open_store(tmp_path / "labels.sqlite", ds)
    store.add_items(ds.store_items())
    empty = tmp_path / "empty" / "pairs.parquet"  # no ratings yet: an empty table, still a pairs table
    assert export(store, ds.release, empty)["pairs"] == 0 and pairs.read_pairs(empty) == []
    _rate(store, keys[0], "alice", [5, 1, 3])
    _rate(store, keys[0], "bob", [4, 1, 3])  # means 4.5, 1, 3: only cand0 > cand1 (3.5)
    _rate(store, keys[1], "alice", [1, 5, 5])  # cand1 and cand2 over cand0 (4); their tie gives no pair
    _rate(store, keys[2], "bob", [4, 1, 2])  # margin exactly 3: not more than 3, no pair
    rows, counts = people_pairs(store, ds.release)
    got = {(r["prompt_key"], r["chosen_score"], r["rejected_score"], r["margin"], r["rater"]) for r in rows}
    assert got == {("prompt-0", 4.5, 1.0, 3.5, "people:alice,bob"), ("prompt-1", 5.0, 1.0, 4.0, "people:alice")} \
        and len(rows) == 3
    for r in rows:
        p = int(r["prompt_key"].split("-")[1])
        chosen, rejected = (int(x) for x in r["pair_id"].rsplit(":", 1)[1].replace("cand", "").split(">"))
        assert list(r["chosen"]) == tokens(p, chosen) and list(r["rejected"]) == tokens(p, rejected)
        assert r["task"] == "emotion_edit" and r["split"] == prompt_split(r["prompt_key"], 0.1)
    assert counts["pairs_over_margin"] == {0: 8, 1: 7, 2: 4, 3: 3} and counts["prompts_rated"] == 3

    out = tmp_path / "out" / "pairs.parquet"
    assert export(store, ds.release, out)["pairs"] == 3
    back = pairs.read_pairs(out)
    assert sorted(r["pair_id"] for r in back) == sorted(r["pair_id"] for r in rows)
    assert [p.name for p in out.parent.iterdir()] == ["pairs.parquet"]  # written by rename, no temp file left
    assert {r["split"] for r in people_pairs(store, ds.release, validation_fraction=0.0)[0]} == {"train"}
    loose = people_pairs(store, ds.release, min_margin=1)[0]  # a looser rule keeps cand2 > cand1 of prompt 0 (2)
    assert len(loose) == 7 and any(r["pair_id"].endswith("cand2>cand1") and r["prompt_key"] == "prompt-0"
                                   for r in loose)
    for bad in ({"min_margin": -1}, {"validation_fraction": 1.0}, {"min_margin": "3"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            people_pairs(store, ds.release, **bad)


def test_clone_prompt_exports_with_its_task(release, tmp_path):
    d, keys = release
    db = tmp_path / "labels.sqlite"
    server, _ = start_server(d, db=db, port=0)
    try:
        _rate(server.store, keys[2], "alice", [2, 5, 1])
    finally:
        server.shutdown()
        server.server_close()
    info, _ = run_pipeline(["pipeline=label_margins", "pipeline.mode=candidates", f"data={d}", f"pipeline.db={db}",
                            f"pipeline.export={tmp_path / 'pairs.parquet'}"])
    assert info["pairs"] == 1
    (pair,) = pairs.read_pairs(tmp_path / "pairs.parquet")
    assert pair["task"] == "clone" and pair["example"]["system"] == "clone" and list(pair["chosen"]) == tokens(2, 1)


def test_bad_inputs_are_named(release, tmp_path):
    d, _ = release
    with pytest.raises(ValueError, match="not preference_candidates"):
        from conftest import write_token_release
        CandidateDataset(write_token_release(tmp_path / "tok", [
            {"key": "k0", "split": "train", "speaker": "s", "tag": "happy", "text": "t", "src": [1], "tgt": [2]}]))
    with pytest.raises(ValueError, match="data= is required"):
        CandidateDataset(None)
    with pytest.raises(ValueError, match="pipeline.mode='triplets'"):
        run_pipeline(["pipeline=label_margins", "pipeline.mode=triplets", f"data={d}"])
    with pytest.raises(ValueError, match="pipeline.export is the candidates mode's"):
        run_pipeline(["pipeline=label_margins", f"data={d}", f"pipeline.export={tmp_path / 'x.parquet'}"])


# (c) the server: only the release's clips, named 4xx errors, nothing stored from a bad request

def _call(url, method, path, body=None, host=None):
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if host:
        headers["Host"] = host
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if r.headers["Content-Type"] == "application/json" else data)


def test_server_refuses_bad_ratings_by_name(release, tmp_path):
    d, keys = release
    db = tmp_path / "labels.sqlite"
    server, url = start_server(d, db=db, port=0)
    good = {"cand0": 5, "cand1": 1, "cand2": 3}
    try:
        assert _call(url, "POST", "/api/rate", {"key": keys[0], "annotator": "alice", "ratings": good}) == \
            (200, {"saved": True, "next": keys[1]})
        for ratings, status, message in [
            ({**good, "cand1": 6}, 400, "bad rating of cand1: score 6 is not an integer on the scale 1..5"),
            ({**good, "cand2": 0}, 400, "bad rating of cand2"), ({**good, "cand0": 2.5}, 400, "bad rating of cand0"),
            ({**good, "cand0": "4"}, 400, "bad rating of cand0"), ({**good, "cand0": True}, 400, "bad rating of cand0"),
            ({**good, "cand3": 4}, 400, "unknown candidate 'cand3'"), ({**good, "tgt": 4}, 400, "unknown candidate"),
            ({"cand0": 5, "cand1": 1}, 400, "rate every candidate: missing cand2"),
            ([5, 1, 3], 400, "ratings must be an object"), ({}, 400, "missing cand0, cand1, cand2")]:
            status_got, answer = _call(url, "POST", "/api/rate", {"key": keys[1], "annotator": "alice",
                                                                   "ratings": ratings})
            assert status_got == status and message in answer["error"], (ratings, answer)
        assert _call(url, "POST", "/api/rate", {"key": "nope", "annotator": "alice", "ratings": good}) == \
            (404, {"error": "unknown key"})
        assert _call(url, "POST", "/api/rate", {"key": keys[1], "annotator": "alice", "score": 5}) == \
            (400, {"error": "bad rating: missing ratings"})
        assert _call(url, "POST", "/api/rate", {"key": keys[1], "annotator": "a\x00", "ratings": good})[0] == 400
        assert _call(url, "POST", "/api/rate", {"key": keys[1], "annotator": "alice", "ratings": good},
                     host="evil.example")[0] == 421
        status, data = _call(url, "GET", f"/audio/{keys[0]}/cand2")
        assert status == 200 and data == server.dataset.release.read(keys[0], "cand2.flac")
        for path in [f"/audio/{keys[0]}/cand3", f"/audio/{keys[0]}/cand01", f"/audio/{keys[0]}/tgt",
                     f"/audio/{keys[0]}/cand0.tok.npy", f"/audio/{keys[0]}/json", "/audio/nope/src",
                     f"/audio/{keys[0]}/..%2F..%2Fmanifest.parquet", "/api/item?key=nope", "/labels.sqlite"]:
            assert _call(url, "GET", path)[0] == 404, path
        rows = sqlite3.connect(db).execute("SELECT item_id, score FROM ratings ORDER BY item_id").fetchall()
        assert rows == [(item_id(keys[0], i), s) for i, s in enumerate([5, 1, 3])]  # nothing of the refused ones
    finally:
        server.shutdown()
        server.server_close()


# (d) the page, end to end in a real browser

@pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                    reason="chromium and chromedriver are not installed (setup.sh installs them from Debian)")
def test_page_rates_candidates_in_browser(release, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    d, keys = release
    db, n = tmp_path / "labels.sqlite", len(keys)
    server, url = start_server(d, db=db, port=0)
    driver = _browser(tmp_path / "profile")
    text = lambda id_: driver.find_element(By.ID, id_).text
    wait = lambda cond, what: WebDriverWait(driver, 20).until(lambda _: cond(), message=what)
    button = lambda cand, score: driver.find_element(
        By.CSS_SELECTOR, f'.cand[data-member="cand{cand}"] button[data-score="{score}"]')
    selected = lambda: [b.text for b in driver.find_elements(By.CSS_SELECTOR, ".cand button.selected")]
    stored = lambda: sqlite3.connect(db).execute(
        "SELECT item_id, score FROM ratings WHERE annotator='alice' ORDER BY item_id").fetchall()
    try:
        driver.get(url)
        wait(lambda: driver.find_element(By.ID, "name").is_displayed(), "the page asks for a name")
        driver.find_element(By.ID, "name").send_keys("alice", Keys.ENTER)
        wait(lambda: text("key") == keys[0] and text("who") == "alice", "first prompt shown")
        assert "Make the following audio more happy" in text("instruction") and text("text") == "Sentence number 0 to say."
        assert len(driver.find_elements(By.CSS_SELECTOR, ".cand")) == K and text("progress") == f"0/{n}"
        wait(lambda: driver.execute_script(
            "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 && a.duration > 1)"),
            "the source and every candidate load and decode in the browser")
        save = driver.find_element(By.ID, "save")
        button(0, 5).click()
        button(1, 1).click()
        assert not save.is_enabled()  # not every candidate rated yet
        button(2, 4).click()
        button(2, 3).click()  # changed before saving: the last click counts
        assert selected() == ["5", "1", "3"] and save.is_enabled()
        save.click()
        wait(lambda: text("key") == keys[1] and text("progress") == f"1/{n}", "moved on to the next prompt")
        assert stored() == [(item_id(keys[0], i), s) for i, s in enumerate([5, 1, 3])]
        assert selected() == []

        driver.refresh()  # the name is remembered; the page resumes at the next unrated prompt
        wait(lambda: text("key") == keys[1] and text("progress") == f"1/{n}", "resumed after reload")
        driver.find_element(By.ID, "prev").click()
        wait(lambda: text("key") == keys[0] and selected() == ["5", "1", "3"], "saved ratings shown")
        assert "alice 3" in text("agreement")
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()

    out = tmp_path / "pairs.parquet"
    info, _ = run_pipeline(["pipeline=label_margins", "pipeline.mode=candidates", f"data={d}", f"pipeline.db={db}",
                            f"pipeline.export={out}"])
    (pair,) = pairs.read_pairs(out)  # 5 vs 1 is the only margin over 3
    assert pair["pair_id"] == f"people:{keys[0]}:cand0>cand1" and pair["margin"] == 4.0
    assert list(pair["chosen"]) == tokens(0, 0) and list(pair["rejected"]) == tokens(0, 1)
    assert pair["rater"] == "people:alice" and pair["prompt_key"] == "prompt-0"
