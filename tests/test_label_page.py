"""Margin labelling: the label store, the server's file boundary, and the page in a real browser."""
import http.client
import json
import shutil
import sqlite3
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

from conftest import RAW, run_pipeline
from pipelines.label_margins import PairDataset, start_server
from scorers.labels import EXPORT_COLUMNS, LabelStore

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, cache_dir, ray_local):
    """A tiny real dataset: happy, 4 English speakers, one text."""
    out = tmp_path_factory.mktemp("label")
    info, _ = run_pipeline(["pipeline=emotion_triplets", f"output_dir={out}", "languages=[en]", "emotions=[happy]",
                            *RAW, "texts_per_tag=1", "ray.progress=false"])
    assert info["counts"]["kept"] >= 3, info["counts"]
    d = out / "emotion_triplets"
    return d, list(pd.read_parquet(d / "manifest.parquet")["key"])


def _items(n):
    return [{"item_id": f"k{i}", "src": f"/d/s.tar#k{i}.src.flac", "tgt": f"/d/s.tar#k{i}.tgt.flac", "tag": "happy",
             "text": f"text {i}", "dataset": "/d"} for i in range(n)]


# (a) the store

def test_store_replaces_rating_and_resumes(tmp_path):
    db = tmp_path / "l.sqlite"
    s = LabelStore(db)
    s.add_items(_items(4))
    assert s.next_unrated("ann") == "k0"
    s.rate("k0", "ann", 3)
    s.rate("k0", "ann", 8)  # re-rating replaces
    s.rate("k2", "ann", 5)
    assert s.rating("k0", "ann") == 8 and len(s.ratings("ann")) == 2
    assert s.next_unrated("ann") == "k1" and s.next_unrated("bob") == "k0"
    assert s.next_unrated("ann", among=["k2", "k0"]) is None
    with pytest.raises(ValueError):
        s.rate("k1", "ann", 11)
    with pytest.raises(KeyError):
        s.rate("nope", "ann", 5)
    s.close()
    s = LabelStore(db)  # reopened: everything committed, adding the items again keeps the ratings
    s.add_items(_items(4))
    assert s.counts() == {"ann": 2} and s.next_unrated("ann") == "k1"
    other = LabelStore(db, task="preference", scale=(0, 1))  # another task on the same items is separate
    assert other.counts() == {} and other.next_unrated("ann") == "k0"
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_agreement(tmp_path):
    s = LabelStore(tmp_path / "l.sqlite")
    s.add_items(_items(5))
    a, b, c = [1, 4, 6, 8, 10], [3, 2, 7, 9, 10], [5, 5]
    for i, (x, y) in enumerate(zip(a, b)):
        s.rate(f"k{i}", "a", x)
        s.rate(f"k{i}", "b", y)
    for i, z in enumerate(c):
        s.rate(f"k{i}", "c", z)
    g = s.agreement()
    assert g["items"] == 5
    diffs = [2, 2, 1, 1, 0] + [4, 1] + [2, 3]  # a-b on 5 items, a-c and b-c on 2
    assert g["mean_abs_diff"] == pytest.approx(sum(diffs) / len(diffs))
    pairs = {tuple(p["annotators"]): p for p in g["pairs"]}
    assert pairs[("a", "b")]["n"] == 5 and pairs[("a", "b")]["spearman"] == pytest.approx(0.9)  # 1 - 6*2/(5*24)
    assert pairs[("a", "c")]["n"] == 2 and pairs[("a", "c")]["spearman"] is None  # < 3 common items
    assert LabelStore(tmp_path / "empty.sqlite").agreement() == {"items": 0, "mean_abs_diff": None, "pairs": []}


def test_store_export(tmp_path):
    s = LabelStore(tmp_path / "l.sqlite")
    s.add_items(_items(3))
    s.rate("k1", "a", 7)
    s.rate("k1", "b", 9)
    for name in ("labels.parquet", "labels.csv"):
        s.export(tmp_path / name)
        df = pd.read_parquet(tmp_path / name) if name.endswith("parquet") else pd.read_csv(tmp_path / name)
        assert list(df.columns) == EXPORT_COLUMNS
        assert df["score"].tolist() == [7, 9] and set(df["key"]) == {"k1"}
        assert df["src"][0] == "/d/s.tar#k1.src.flac" and df["text"][0] == "text 1"
    with pytest.raises(ValueError):
        s.export(tmp_path / "labels.json")


# (b) the server serves the dataset's clips by key, and nothing else

def _get(url, raw_path, method="GET", body=None, ctype="application/json"):
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request(method, raw_path, body=body, headers={"Content-Type": ctype} if body is not None else {})
    r = c.getresponse()
    return r.status, r.read()


def test_inputs_and_errors(dataset, tmp_path):
    d, keys = dataset
    tar = sorted((d / "shards").glob("*.tar"))[0]
    for data in (d, d / "shards", tar, d / "manifest.parquet"):
        ds = PairDataset(data)
        assert ds.keys == keys and ds.root.resolve() == d.resolve(), data
    assert PairDataset(d, max_items=2).keys == keys[:2]
    (tmp_path / "bad.tar").write_bytes(b"not a tar" * 100)
    (tmp_path / "empty").mkdir()
    for bad, msg in ((tmp_path / "missing", "does not exist"), (tmp_path / "bad.tar", "bad.tar is not a readable"),
                     (tmp_path / "empty", "no .tar shards"), (None, "data= is required")):
        with pytest.raises(ValueError, match=msg):
            PairDataset(bad)


def test_server_serves_only_dataset_clips(dataset, tmp_path):
    d, keys = dataset
    server, url = start_server(d, db=tmp_path / "l.sqlite", port=0)
    try:
        status, data = _get(url, f"/audio/{keys[0]}/tgt")
        tar = sorted((d / "shards").glob("*.tar"))[0]
        with tarfile.open(tar) as t:
            assert status == 200 and data == t.extractfile(f"{keys[0]}.tgt.flac").read()
        assert _get(url, "/")[0] == 200
        for path in ["/../manifest.parquet", "/manifest.parquet", "/labels.sqlite", "/shards/" + tar.name,
                     "/scorers/label_page.html", "//etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/audio/../../etc/passwd",
                     "/audio/..%2F..%2Fmanifest.parquet/src", "/audio/%2e%2e/src", f"/audio/{keys[0]}/json",
                     f"/audio/{keys[0]}/../../manifest.parquet", f"/audio/{keys[0]}", "/audio/unknown_key/src",
                     f"/audio/{keys[0]}%2F..%2F..%2Fmanifest.parquet/src", "/api/item?key=../manifest.parquet",
                     "/api/item?key=unknown_key", f"/{tar}", "/etc/passwd"]:
            assert _get(url, path)[0] == 404, path
        rate = lambda body, ctype="application/json": _get(url, "/api/rate", "POST", json.dumps(body), ctype)[0]
        assert rate({"key": "../manifest.parquet", "annotator": "x", "score": 5}) == 404
        assert rate({"key": keys[0], "annotator": "x", "score": 11}) == 400
        assert rate({"key": keys[0], "annotator": " ", "score": 5}) == 400
        assert rate({"key": keys[0], "annotator": "x", "score": 5}, "text/plain") == 415  # no cross-site form posts
        assert _get(url, "/api/other", "POST", "{}")[0] == 404
        assert rate({"key": keys[0], "annotator": "x", "score": 5}) == 200
        assert server.store.counts() == {"x": 1}
    finally:
        server.shutdown()
        server.server_close()


# (c) the page, end to end in a real browser

def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


@pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                    reason="chromium and chromedriver are not installed (setup.sh installs them from Debian)")
def test_page_in_browser(dataset, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    d, keys = dataset
    db, n = tmp_path / "labels.sqlite", len(keys)
    server, url = start_server(d, db=db, port=0)
    port = urlsplit(url).port
    driver = _browser(tmp_path / "profile")
    text = lambda id_: driver.find_element(By.ID, id_).text
    wait = lambda cond, what: WebDriverWait(driver, 20).until(lambda _: cond(), message=what)
    press = lambda key: driver.find_element(By.TAG_NAME, "body").send_keys(key)
    selected = lambda: [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#scores button.selected")]
    stored = lambda: sqlite3.connect(db).execute("SELECT item_id, score FROM ratings WHERE annotator='alice'").fetchall()
    try:
        driver.get(url)
        wait(lambda: driver.find_element(By.ID, "name").is_displayed(), "the page asks for a name")
        driver.find_element(By.ID, "name").send_keys("alice", Keys.ENTER)
        wait(lambda: text("key") == keys[0] and text("who") == "alice", "first pair shown")
        assert text("tag") == "happy" and "(emotion)" in text("edit_type")
        assert text("text") and "Make the following audio more happy" in text("instruction")
        assert text("progress") == f"0/{n}"
        wait(lambda: driver.execute_script("return [src, tgt].every(a => a.readyState >= 1 && a.duration > 1)"),
             "both clips load and decode in the browser")
        press("t")
        wait(lambda: driver.execute_script("return !tgt.paused && src.paused"), "t plays the edited clip")

        press("7")
        wait(lambda: text("key") == keys[1] and text("progress") == f"1/{n}", "moved to the next pair")
        assert stored() == [(keys[0], 7)]

        driver.refresh()  # the name is remembered; the page resumes at the next unrated pair
        wait(lambda: text("key") == keys[1] and text("progress") == f"1/{n}", "resumed after reload")
        assert not driver.find_element(By.ID, "login").is_displayed()
        press(Keys.ARROW_LEFT)
        wait(lambda: text("key") == keys[0] and selected() == ["7"], "rating shown on the rated pair")
        assert "your rating: 7" in text("status") and "alice 1" in text("agreement")
        press("0")  # re-rate as 10: replaces, and moves on to the next unrated pair
        wait(lambda: text("key") == keys[1], "moved on after re-rating")
        assert stored() == [(keys[0], 10)]

        server.shutdown()
        server.server_close()
        server, url = start_server(d, db=db, port=port)  # same origin: the browser keeps the name
        assert server.store.rating(keys[0], "alice") == 10
        driver.get(url)
        wait(lambda: text("key") == keys[1] and text("progress") == f"1/{n}", "new server resumes at next unrated")
        press(Keys.ARROW_LEFT)
        wait(lambda: selected() == ["10"], "the rating survived the restart")
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
