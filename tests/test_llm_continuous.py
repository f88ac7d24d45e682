"""Continuous batching (editor/llm/continuous.py): requests that join and leave one running decode get
the answers generate() gives them alone, through a ring cache that wraps, with guidance, limits and
errors; the Editor on it gives the audio it gives without it, from many threads at once."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import voiced
from test_llm_generate import examples, train_tiny

from editor.llm.chat import build_prompt
from editor.llm.continuous import ContinuousDecoder, Request
from editor.llm.generate import Layout, generate
from editor.llm.model import build_model, load_preset
from editor.llm.vocab import load_vocab

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def vocab():
    return load_vocab()


@pytest.fixture(scope="module")
def untrained(vocab):
    torch.manual_seed(1)
    return build_model(load_preset("tiny"), vocab).eval()


def alone(model, vocab, r: Request, layout=None):
    return generate(model, vocab, [r.prompt], r.max_new, seeds=r.seed, temperature=r.temperature,
                    min_new_tokens=r.min_new, negatives=[r.negative], guidance=r.guidance, layout=layout)[0]


def prompts_of(vocab, n):
    lengths = (20, 7, 13, 5, 18, 11, 3, 9, 16, 14)
    return [build_prompt({**e, "source_tokens": e["source_tokens"][:k]}, vocab)
            for e, k in zip(examples() * 4, lengths[:n])]


def test_trained_answers_as_alone_while_rows_are_reused(vocab):
    """A model that memorised its answers (they end with <|eos|> at different lengths): nine requests
    through four rows, so rows are taken again as answers end, and the ring of 192 slots wraps."""
    exs = examples()
    model = train_tiny(exs, vocab)
    prompts = [build_prompt(e, vocab) for e in exs] + prompts_of(vocab, 6)   # the trained ones first
    reqs = [Request(p, n, seed=s, temperature=t) for t in (0, 0.7)
            for s, (p, n) in enumerate(zip(prompts, (60, 45, 30, 25, 50, 40, 35, 20, 55)))]
    dec = ContinuousDecoder(model, vocab, rows=4, cache_len=192)
    try:
        got = [f.result(120) for f in [dec.submit(r) for r in reqs]]
        assert dec.steps >= dec.L   # the ring went round: the first prompts sat in its last slots, steps wrote every slot
    finally:
        dec.close()
    for r, g in zip(reqs, got):
        np.testing.assert_array_equal(g, alone(model, vocab, r))
    # greedy, the trained prompts get their memorised answers (all 30 tokens: <|eos|> ended them)
    for g, e in zip(got[:3], exs):
        np.testing.assert_array_equal(g, e["target_tokens"])


def test_guidance_grammar_and_minimum_as_alone(untrained, vocab):
    """Guided requests take two rows; with three rows a guided one waits for two to be free."""
    layout = Layout()
    prompts = prompts_of(vocab, 6)
    reqs = [Request(prompts[i], 30 + 5 * i, seed=i, temperature=0.7 if i % 2 else 0, min_new=10 if i == 3 else 0,
                    negative=prompts[5 - i] if i in (1, 2, 4) else None, guidance=2.5 if i in (1, 2, 4) else 1.0)
            for i in range(6)]
    dec = ContinuousDecoder(untrained, vocab, rows=3, cache_len=160, layout=layout)
    try:
        got = [f.result(120) for f in [dec.submit(r) for r in reqs]]
    finally:
        dec.close()
    for r, g in zip(reqs, got):
        np.testing.assert_array_equal(g, alone(untrained, vocab, r, layout))
        assert len(g) == r.max_new - r.max_new % 5         # a random model never says <|eos|>
    assert not np.array_equal(got[1], alone(untrained, vocab, Request(prompts[1], 35, seed=1, temperature=0.7)))


def test_requests_from_many_threads_each_get_their_own_answer(untrained, vocab):
    prompts = prompts_of(vocab, 10)
    reqs = [Request(p, 10 + 3 * i, seed=100 + i, temperature=1.0) for i, p in enumerate(prompts)]
    dec = ContinuousDecoder(untrained, vocab, rows=4, cache_len=144)
    try:
        with ThreadPoolExecutor(5) as pool:
            got = list(pool.map(lambda r: dec.submit(r).result(120), reqs))
    finally:
        dec.close()
    for r, g in zip(reqs, got):
        np.testing.assert_array_equal(g, alone(untrained, vocab, r))


def test_steps_run_over_the_lowest_rows_that_hold_every_request(untrained, vocab):
    """A lone request takes row 0 and its steps cover 8 rows of 32; twelve at once need steps of 16. A
    guided request across rows 7 and 8 leaves no trace that a later step over 8 rows would read."""
    prompts = prompts_of(vocab, 10)
    dec = ContinuousDecoder(untrained, vocab, rows=32, cache_len=144)
    assert dec.sizes == [8, 16, 32]
    widths = []
    real = dec._one_step
    dec._one_step = lambda n: widths.append(n) or real(n)
    try:
        lone = Request(prompts[0], 20, seed=1, temperature=1.0)
        assert np.array_equal(dec.submit(lone).result(60), alone(untrained, vocab, lone))
        assert set(widths) == {8}
        widths.clear()
        reqs = [Request(p, 15, seed=i, temperature=1.0) for i, p in enumerate(prompts[:7])]
        reqs.append(Request(prompts[7], 15, seed=7, temperature=1.0, negative=prompts[8], guidance=2.0))  # rows 7, 8
        reqs += [Request(p, 15, seed=10 + i, temperature=1.0) for i, p in enumerate(prompts[:3])]
        got = [f.result(120) for f in dec.submit_many(reqs)]
        assert set(widths) == {16}
        widths.clear()
        again = Request(prompts[9], 20, seed=5, temperature=1.0)
        assert np.array_equal(dec.submit(again).result(60), alone(untrained, vocab, again))
        assert set(widths) == {8}
    finally:
        dec.close()
    for r, g in zip(reqs, got):
        np.testing.assert_array_equal(g, alone(untrained, vocab, r))


def test_refusals_and_a_failure_reach_every_caller(untrained, vocab):
    p = prompts_of(vocab, 1)[0]
    dec = ContinuousDecoder(untrained, vocab, rows=2, cache_len=64)
    try:
        with pytest.raises(ValueError, match=f"{len(p)} prompt tokens and 40 new ones does not fit the decoder's 64"):
            dec.submit(Request(p, 40))
        with pytest.raises(ValueError, match="max_new must be >= 1"):
            dec.submit(Request(p[:10], 0))
        assert dec.fits(Request(p[:10], 10, negative=p[:10], guidance=2.0))    # its two rows: all there are
        # a step that raises: the waiting request and later submits get the error, nothing hangs
        boom = RuntimeError("device lost")
        dec._one_step = lambda n: (_ for _ in ()).throw(boom)
        fut = dec.submit(Request(p[:10], 10))
        with pytest.raises(RuntimeError, match="device lost"):
            fut.result(30)
        with pytest.raises(RuntimeError, match="continuous decoder stopped"):
            dec.submit(Request(p[:10], 10))
    finally:
        dec.close()


def clips_of(result) -> list[np.ndarray]:
    """A clone_many result (a clip per request) or an edit_many one (per request, a clip per iteration)."""
    return [c for r in result for c in ([r] if isinstance(r, np.ndarray) else r)]


@pytest.fixture
def fresh_editor(llm_dir):
    from editor.llm.editor import Editor
    e = Editor.load(llm_dir, device="cpu")
    e.margin_tokens = 10
    yield e
    e.close()


def test_editor_on_continuous_decoding_gives_the_same_audio_from_many_threads(fresh_editor):
    """Edits (two iterations, guided ones), a clone and an edit too long for the decoder's cache (decoded in
    a batch of its own), from four threads at once: the audio of plain batch decoding."""
    ed = fresh_editor
    ed.guidance = {"emotion": 2.0}
    edits = [dict(wav=voiced(0.5 + 0.1 * i, seed=i), text="hello there", edit_type=("emotion", "speed")[i % 2],
                  edit_info=("sad", "faster")[i % 2], seed=i, n_iter=1 + i % 2) for i in range(4)]
    clones = [dict(prompt_wav=voiced(0.8, seed=5), prompt_text="hello there", text="hi you", seed=3)]
    long_edit = [dict(wav=voiced(2.5, seed=9), text="a longer clip to edit", edit_type="style", edit_info="whisper")]
    jobs = [("edit", edits[:2]), ("clone", clones), ("edit", edits[2:]), ("edit", long_edit)]
    plain = [ed.run(ed.analyse(kind, reqs)) for kind, reqs in jobs]
    a = ed.analyse("edit", long_edit)
    long_prompt = ed._edit_rows(a, a.items, ed._encode(a.frames), 0)
    need = len(long_prompt["prompts"][0]) + long_prompt["max_new"][0]
    ed.use_continuous(rows=4, cache_len=need - 1)          # every request but the long one fits
    assert ed.concurrent_start
    submitted = []
    real_submit = ed.continuous.submit_many
    ed.continuous.submit_many = lambda rs: submitted.extend(len(r.prompt) for r in rs) or real_submit(rs)
    barrier = threading.Barrier(len(jobs))

    def run(job):
        kind, reqs = job
        analysed = ed.analyse(kind, reqs)
        barrier.wait()                                     # every start at once, as a server's batches
        return ed.start(analysed)()
    with ThreadPoolExecutor(len(jobs)) as pool:
        got = list(pool.map(run, jobs))
    assert len(submitted) == 5 + 2            # 5 first answers, 2 second iterations; not the long edit
    assert ed.continuous.steps > 0
    for want, have in zip(plain, got):
        for w, h in zip(clips_of(want), clips_of(have), strict=True):
            assert len(w) > 0
            np.testing.assert_array_equal(w, h)
    ed.close()
    assert ed.continuous is None and not ed.concurrent_start
    with pytest.raises(ValueError, match="rows 1"):
        ed.use_continuous(rows=1)


def test_random_traffic_every_answer_as_alone(untrained, vocab):
    """Batches of one to six requests (most guided, some with a minimum, greedy and sampled, of 5 to 60
    tokens) from six threads at random moments through 16 rows: rows freed and taken again in every
    order, guided pairs split across both halves of the rows; every answer generate()'s alone."""
    import random
    rng, layout = random.Random(0), Layout()
    prompts = prompts_of(vocab, 10)

    def request(seed):
        guided = rng.random() < 0.6
        return Request(prompts[rng.randrange(10)], rng.randrange(5, 60), seed=seed, temperature=rng.choice([0, 0.7, 1.0]),
                       min_new=rng.choice([0, 0, 10]), negative=prompts[rng.randrange(10)] if guided else None,
                       guidance=2.0 if guided else 1.0)
    batches = [[request(100 * b + j) for j in range(rng.randrange(1, 7))] for b in range(30)]
    pauses = [rng.random() * 0.05 for _ in batches]
    dec = ContinuousDecoder(untrained, vocab, rows=16, cache_len=192, layout=layout)
    widths = set()
    real = dec._one_step
    dec._one_step = lambda n: widths.add(n) or real(n)

    def send(k):
        time.sleep(pauses[k])
        return [f.result(300) for f in dec.submit_many(batches[k])]
    try:
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(send, range(len(batches))))
    finally:
        dec.close()
    assert 16 in widths and dec.error is None      # batches of up to 11 rows: steps over the upper half too
    for batch, answers in zip(batches, got):
        for r, g in zip(batch, answers, strict=True):
            np.testing.assert_array_equal(g, alone(untrained, vocab, r, layout))
