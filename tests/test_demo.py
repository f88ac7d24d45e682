"""The editor's web page (editor/serve/demo.py) end to end in headless Chromium, served on 127.0.0.1
with a tiny random LLM: upload, edit, play, download, iterate, history, errors; and pipeline=demo's wiring."""
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_cfg, voiced
from editor.llm.editor import SR, Editor

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.usefixtures("one_torch_thread")
in_browser = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="chromium and chromedriver are not installed (setup.sh installs them from Debian)")


@pytest.fixture(scope="module")
def demo(llm_dir, tmp_path_factory):
    from editor.serve.demo import Demo
    ed = Editor.load(llm_dir, device="cpu")
    ed.margin_tokens = 10      # a random model never says <|eos|>: keep its outputs short
    d = Demo(ed, tmp_path_factory.mktemp("results"))
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    page = d.launch("127.0.0.1", port, block=False)
    d.url = f"http://127.0.0.1:{port}/"
    yield d
    page.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--window-size=1200,1600", f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})   # every request the page makes
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.downloads = downloads
    yield driver
    driver.quit()


class Page:
    """The few moves the tests make on the demo page."""

    def __init__(self, driver, url):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
        self.d, self.By, self.Wait = driver, By, WebDriverWait
        driver.get(url)     # a fresh load is a fresh session: empty history
        self.wait(lambda: self.css("#edit_src input[type=file]"), "the page loads")

    def wait(self, cond, what, timeout=60):
        return self.Wait(self.d, timeout).until(lambda _: cond(), message=what)

    def css(self, sel):
        return self.d.find_elements(self.By.CSS_SELECTOR, sel)

    def js(self, script):
        return self.d.execute_script(script)

    def upload(self, elem_id, wav, path):
        sf.write(path, wav, SR)
        self.css(f"#{elem_id} input[type=file]")[0].send_keys(str(path))
        self.wait(lambda: self.css(f"#{elem_id} [data-testid=waveform-controls]"), f"{elem_id}: the clip is uploaded")

    def type(self, elem_id, text):
        box = self.css(f"#{elem_id} textarea, #{elem_id} input")[0]
        box.clear()
        box.send_keys(text)

    def choose(self, elem_id, option):
        from selenium.webdriver.common.keys import Keys
        box = self.css(f"#{elem_id} input")[0]
        box.click()
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(option, Keys.ENTER)

    def value(self, elem_id):
        box = self.css(f"#{elem_id} input")
        return box[0].get_attribute("value") if box else None     # None: hidden

    def result(self, elem_id):
        """The result player's URL once it holds decodable audio."""
        audio = f"document.querySelector('#{elem_id} audio')"
        return self.wait(lambda: self.js(f"const a = {audio}; return a && a.src && a.duration > 0 && a.src"),
                         f"{elem_id}: a playable result")

    # read in one script: the versions list is rendered anew on every change, so elements found
    # earlier can be gone by the time they are read
    def versions(self):
        return self.js("return [...document.querySelectorAll('.version [data-testid=block-label]')].map(e => e.innerText.trim())")

    def errors(self):
        return self.js("return [...document.querySelectorAll('[data-testid=toast-body]')].map(e => e.innerText)")


@in_browser
def test_edit_play_download_and_iterate(demo, browser, tmp_path):
    from core import tags
    p = Page(browser, demo.url)
    p.upload("edit_src", voiced(1.0), tmp_path / "clip.wav")
    p.type("edit_text", "hello there")
    p.choose("edit_type", "speed")      # the value menu follows the type
    p.wait(lambda: p.value("edit_value") == tags.SPEED_TAGS[0], "speed's values")
    p.choose("edit_type", "denoise")
    p.wait(lambda: not p.css("#edit_value input"), "denoise takes no value")
    p.choose("edit_type", "paralinguistic")
    p.wait(lambda: p.value("edit_value") == tags.PARALINGUISTIC_TAGS[0] and p.css("#edit_tagged textarea"),
           "the tags and a box for the tagged text")
    p.choose("edit_type", "emotion")
    p.wait(lambda: p.value("edit_value") == tags.EMOTIONS[0] and not p.css("#edit_tagged textarea"), "emotion's values")
    p.choose("edit_value", "sad")
    p.wait(lambda: p.value("edit_value") == "sad", "sad chosen")
    p.type("edit_n_iter", "2")
    p.css("#edit_go")[0].click()

    url = p.result("edit_out")
    assert p.js("return document.querySelector('#edit_out audio').play().then(() => true)")   # plays
    p.wait(lambda: p.versions() == ["v2: emotion 'sad' on the source clip, iteration 2/2",
                                    "v1: emotion 'sad' on the source clip, iteration 1/2"], "two versions listed")
    name = url.rsplit("/", 1)[1]
    assert name.startswith("v2-")

    p.css("#edit_out a[download] button")[0].click()
    got = browser.downloads / name
    p.wait(got.is_file, "the result downloads")
    info = sf.info(got)
    assert info.format == "WAV" and info.samplerate == SR and info.frames > 0.3 * SR
    assert got.read_bytes() == (demo.workdir / name).read_bytes()

    p.css("#edit_from_last input")[0].click()      # edit v2 again
    p.type("edit_n_iter", "1")
    p.choose("edit_type", "style")
    p.wait(lambda: p.value("edit_value") == tags.STYLES[0], "style's values")
    p.css("#edit_go")[0].click()
    p.wait(lambda: p.versions()[:1] == [f"v3: style '{tags.STYLES[0]}' on v2, iteration 1/1"], "the third version")
    assert len(p.versions()) == 3 and p.result("edit_out").rsplit("/", 1)[1].startswith("v3-")
    p.wait(lambda: p.js("return [...document.querySelectorAll('.version audio')].every(a => a.duration > 0)"),
           "every version plays")

    requests = [json.loads(e["message"])["message"]["params"].get("request", {}).get("url", "")
                for e in browser.get_log("performance")]
    outside = [u for u in requests if u.startswith(("http", "ws")) and not u.startswith(demo.url.replace("http", "ws"))
               and not u.startswith(demo.url)]
    assert not outside, outside       # no fonts, scripts or telemetry from the internet


@in_browser
def test_bad_input_shows_an_error_and_the_page_carries_on(demo, browser, tmp_path):
    p = Page(browser, demo.url)
    p.type("edit_text", "hello there")
    p.css("#edit_go")[0].click()
    p.wait(lambda: any("source audio: no audio" in e for e in p.errors()), "an error for the missing clip")
    p.upload("edit_src", np.zeros(SR, np.float32) + 1e-6, tmp_path / "silent.wav")
    p.css("#edit_go")[0].click()
    p.wait(lambda: any("silent" in e for e in p.errors()), "an error for the silent clip")
    assert p.versions() == []

    p.css("button[role=tab]")[1].click()       # the clone tab works after the errors
    p.upload("clone_prompt", voiced(1.0, seed=1), tmp_path / "prompt.wav")
    p.type("clone_prompt_text", "hello there")
    p.type("clone_text", "hi")
    p.css("#clone_go")[0].click()
    assert p.result("clone_out").rsplit("/", 1)[1].startswith("v1-")
    p.wait(lambda: p.versions() == ["v1: clone: 'hi'"], "the clone listed")


class StubEditor:
    """Records what the page asks the editor for; answers with one short tone per iteration."""

    def __init__(self):
        self.calls, self.kw = [], []

    def edit(self, wav, text, edit_type, edit_info=None, n_iter=1, **kw):
        self.calls.append((text, edit_type, edit_info, n_iter))
        self.kw.append(kw)
        return [voiced(0.5)] * n_iter


def test_paralinguistic_and_iterating_on_the_last_output(tmp_path):
    """The widgets' values as the editor receives them: a paralinguistic edit with no tagged text puts
    the tag after the words; the next edit of its output says that tagged text."""
    import gradio as gr
    from editor.serve.demo import Demo
    ed = StubEditor()
    demo = Demo(ed, tmp_path)
    sf.write(tmp_path / "clip.wav", voiced(1.0), SR)
    with pytest.raises(gr.Error, match="no output yet"):
        demo.edit(None, "so it goes", "emotion", "sad", "", 1, True, 0, 0.7, [])
    _, h = demo.edit(str(tmp_path / "clip.wav"), " so it goes ", "paralinguistic", "Laughter", "", 1, False, 0, 0.7, [])
    _, h = demo.edit(None, "ignored", "denoise", None, "", 2, True, None, None, h)   # emptied boxes: the defaults
    assert ed.kw[-1] == {"sr": SR, "seed": 0, "temperature": 0.7}
    with pytest.raises(gr.Error, match="the uploaded file is gone"):
        demo.edit(str(tmp_path / "deleted.wav"), "so it goes", "emotion", "sad", "", 1, False, 0, 0.7, [])
    assert ed.calls == [("so it goes", "paralinguistic", "so it goes [Laughter]", 1),
                        ("so it goes [Laughter]", "denoise", None, 2)]
    assert [v["what"] for v in h] == ["paralinguistic 'so it goes [Laughter]' on the source clip, iteration 1/1",
                                      "denoise on v1, iteration 1/2", "denoise on v1, iteration 2/2"]
    assert all(sf.info(v["path"]).frames == len(voiced(0.5)) for v in h)


def test_pipeline_wiring(llm_dir, monkeypatch, tmp_path):
    """`python run.py pipeline=demo llm=DIR`: the LLM dir, device and port reach the editor and the page."""
    import pipelines.demo
    from editor.serve.demo import Demo
    from run import model_shorthand
    seen = {}
    monkeypatch.setattr(Editor, "load", lambda *a, **k: seen.setdefault("load", (a, k)))
    monkeypatch.setattr(Demo, "launch", lambda self, *a, **k: seen.setdefault("launch", (a, k)))
    argv = model_shorthand(["pipeline=demo", f"llm={llm_dir}", "pipeline.port=7999", "pipeline.device=cpu",
                           f"pipeline.workdir={tmp_path}"])
    assert model_shorthand(["pipeline=demo", "llm=tiny"]) == ["pipeline=demo", "llm=tiny"]   # the size preset
    pipelines.demo.run(make_cfg(argv))
    assert seen["load"] == ((str(llm_dir), None, None), {"device": "cpu"})
    assert seen["launch"] == (("127.0.0.1", 7999), {"max_file_size": "50mb"})
