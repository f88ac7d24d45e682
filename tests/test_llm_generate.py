"""The decode loop: a tiny model trained here to memorise three answers must reproduce them greedily,
batched or one at a time; limits, <|eos|>, the audio-only restriction and the repetition guard."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from editor.llm.chat import IGNORE, build_example, build_prompt
from editor.llm.generate import Layout, SampleConfig, generate, pick
from editor.llm.model import build_model, load_preset
from editor.llm.vocab import AUDIO_SIZE, load_vocab


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def examples(n=3, src_len=20, tgt_len=30, seed=0):
    rng = np.random.default_rng(seed)
    return [{"system": "edit", "instruction": f"Make the following audio more {tag}.",
             "source_tokens": rng.integers(0, AUDIO_SIZE, src_len), "target_tokens": rng.integers(0, AUDIO_SIZE, tgt_len)}
            for tag in ("happy", "sad", "angry")[:n]]


def train_tiny(exs, vocab, steps=400, seed=0):
    """Plain full-sequence cross-entropy on the answer tokens until every answer is memorised."""
    torch.manual_seed(seed)
    model = build_model(load_preset("tiny"), vocab)
    rows = [build_example(e, vocab) for e in exs]
    L = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), L), vocab.pad, dtype=torch.long)
    labels = torch.full((len(rows), L), IGNORE, dtype=torch.long)
    for i, r in enumerate(rows):   # right padding: causal attention never looks at it
        ids[i, :len(r["input_ids"])] = torch.as_tensor(r["input_ids"], dtype=torch.long)
        labels[i, :len(r["labels"])] = torch.as_tensor(r["labels"], dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    answer = labels[:, 1:] != IGNORE          # the lm_head only where there is a label: much cheaper
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                  # tiny matmuls: threads cost more than they give
    try:
        model.train()
        for step in range(steps):
            hidden = model.model(input_ids=ids).last_hidden_state[:, :-1][answer]
            logits = model.lm_head(hidden)
            loss = torch.nn.functional.cross_entropy(logits, labels[:, 1:][answer])
            opt.zero_grad()
            loss.backward()
            opt.step()
            # right under teacher forcing is not enough: generation takes other kernels (KV cache, left
            # padding), so the answers need a margin that survives their rounding (seen on an AMD EPYC)
            if bool((logits.argmax(-1) == labels[:, 1:][answer]).all()) and loss.item() < 0.005:
                break
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def vocab():
    return load_vocab()


@pytest.fixture(scope="module")
def trained(vocab):
    exs = examples()
    return train_tiny(exs, vocab), exs


@pytest.fixture(scope="module")
def untrained(vocab):
    torch.manual_seed(1)
    return build_model(load_preset("tiny"), vocab).eval()


class ConstLM(torch.nn.Module):
    """A 'model' whose next-token logits are always the same vector: a controlled distribution."""

    def __init__(self, config, logits):
        super().__init__()
        self.config, self.logits, self.w = config, logits, torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, **kw):
        return SimpleNamespace(logits=self.logits.expand(input_ids.shape[0], input_ids.shape[1], -1))


def test_trained_model_reproduces_targets_greedily(trained, vocab):
    model, exs = trained
    prompts = [build_prompt(e, vocab) for e in exs]
    out = generate(model, vocab, prompts, 100, temperature=0)
    for o, e in zip(out, exs):
        np.testing.assert_array_equal(o, e["target_tokens"])   # <|eos|> stopped it, stripped


@pytest.mark.parametrize("static", [True, False])
def test_batched_equals_one_at_a_time(trained, vocab, static):
    model, exs = trained
    # prompts of different lengths: left padding must not change anything
    prompts = [build_prompt({**e, "source_tokens": e["source_tokens"][:k]}, vocab) for e, k in zip(exs, (20, 7, 13))]
    for temp in (0, 0.7):
        batch = generate(model, vocab, prompts, [60, 45, 30], seeds=[5, 6, 7], temperature=temp, static_cache=static)
        one = [generate(model, vocab, [p], n, seeds=s, temperature=temp, static_cache=static)[0]
               for p, n, s in zip(prompts, [60, 45, 30], [5, 6, 7])]
        for a, b in zip(batch, one):
            np.testing.assert_array_equal(a, b)
        # rounded up to 4 rows (as CUDA graphs are): the same answers, and only the 3 requests' own
        stats = {}
        padded = generate(model, vocab, prompts, [60, 45, 30], seeds=[5, 6, 7], temperature=temp, static_cache=static,
                          stats=stats, round_batch=True)
        assert len(padded) == 3 and len(stats["guard_fired"]) == 3
        for a, b in zip(padded, one):
            np.testing.assert_array_equal(a, b)


def test_seed_reproducible_and_temperature_samples(untrained, vocab):
    p = [build_prompt(examples(1)[0], vocab)]
    a = generate(untrained, vocab, p, 40, seeds=3, temperature=1.0)[0]
    np.testing.assert_array_equal(a, generate(untrained, vocab, p, 40, seeds=3, temperature=1.0)[0])
    assert not np.array_equal(a, generate(untrained, vocab, p, 40, seeds=4, temperature=1.0)[0])


def test_limits_and_whole_blocks(untrained, vocab):
    p = build_prompt(examples(1)[0], vocab)
    out = generate(untrained, vocab, [p, p, p], [7, 23, 50], temperature=1.0)
    assert [len(o) for o in out] == [5, 20, 50]   # random weights never pick eos: runs to the limit, cut to blocks
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(untrained, vocab, [p], 0)
    with pytest.raises(ValueError, match="2 values for 1"):
        generate(untrained, vocab, [p], [3, 4])
    assert generate(untrained, vocab, [], 10) == []


def test_eos_stops_one_row_while_others_continue(trained, vocab):
    model, exs = trained
    prompts = [build_prompt(e, vocab) for e in exs]
    stats = {}
    out = generate(model, vocab, prompts, [100, 10, 100], temperature=0, stats=stats)
    np.testing.assert_array_equal(out[1], exs[1]["target_tokens"][:10])
    assert len(out[0]) == len(out[2]) == 30
    # 30 answers + the <|eos|> step, rounded up to the every-8-steps stop check; not the 100 allowed
    assert 31 <= stats["steps"] <= 38


def test_only_audio_ids_even_when_text_is_likelier(untrained, vocab):
    logits = torch.zeros(vocab.size)
    logits[:vocab.audio_offset] = 30.0                       # text ids dominate...
    logits[vocab.special_offset:] = 30.0                     # ...and so do specials other than eos
    logits[vocab.eos] = -30.0
    model = ConstLM(untrained.config, logits)
    p = build_prompt(examples(1)[0], vocab)
    out = generate(model, vocab, [p, p], 25, seeds=[0, 1], temperature=1.0)
    assert all(len(o) == 25 and o.min() >= 0 and o.max() < AUDIO_SIZE for o in out)


def test_layout_grammar(untrained, vocab):
    p = build_prompt(examples(1)[0], vocab)
    lay = Layout(2, 3, 1024)
    out = generate(untrained, vocab, [p], 60, temperature=1.0, layout=lay)[0].reshape(-1, 5)
    assert (out[:, :2] < 1024).all() and (out[:, 2:] >= 1024).all()


def test_repetition_guard_fires_on_degenerate_distribution(untrained, vocab):
    x = 77
    logits = torch.full((vocab.size,), -1e4)
    audio = slice(vocab.audio_offset, vocab.special_offset)
    logits[audio] = 0.0
    logits[vocab.audio_offset + x] = np.log(0.6 * (AUDIO_SIZE - 1) / 0.4)   # p(x) = 0.6 untempered
    model = ConstLM(untrained.config, logits)
    p = build_prompt(examples(1)[0], vocab)
    cold = 0.05                                              # tempered, x is certain
    off, on = {}, {}
    loop = generate(model, vocab, [p], 100, temperature=cold, cfg=SampleConfig(repeat_max=0), stats=off)[0]
    assert (loop == x).all() and off["guard_fired"] == [0]
    guarded = generate(model, vocab, [p], 100, temperature=cold, cfg=SampleConfig(repeat_max=3), stats=on)[0]
    assert on["guard_fired"][0] > 10
    assert 10 < (guarded != x).sum() < 90                    # broken up by draws from the untempered distribution
    # greedy stays greedy: the guard is part of sampling only
    assert (generate(model, vocab, [p], 20, temperature=0, stats=on)[0] == x).all() and on["guard_fired"] == [0]


def test_pick_window_counts_only_recent_tokens():
    logits = torch.full((1, 6), -10.0)
    logits[0, 2] = 10.0
    noise = torch.rand(2, 1, 6, generator=torch.Generator().manual_seed(0))
    cfg = SampleConfig(repeat_window=4, repeat_max=2)
    t = torch.tensor([0.7])
    old = torch.tensor([[2, 2, 2, 0, 1, 0, 1]])             # 2s only outside the last 4
    assert not pick(logits, old, 7, t, cfg, noise)[1].item()
    recent = torch.tensor([[0, 1, 0, 2, 1, 2, 0]])
    assert pick(logits, recent, 7, t, cfg, noise)[1].item()


def test_min_new_tokens_holds_the_end_back(trained, untrained, vocab):
    logits = torch.full((vocab.size,), -1e4)
    logits[vocab.audio_offset:vocab.special_offset] = 0.0
    logits[vocab.eos] = 30.0                                  # a model that wants to stop at once
    model = ConstLM(untrained.config, logits)
    p = build_prompt(examples(1)[0], vocab)
    lay = Layout(2, 3, 1024)                                  # <|eos|> only between blocks
    out = generate(model, vocab, [p, p, p], 100, temperature=0.7, layout=lay, min_new_tokens=[0, 20, 33])
    assert [len(o) for o in out] == [0, 20, 35]              # the first block boundary at or after the minimum
    # a trained model that would end its 30-token answer goes on to the minimum, then ends when it may
    model, exs = trained
    out = generate(model, vocab, [build_prompt(exs[0], vocab)], 100, temperature=0, min_new_tokens=40)[0]
    assert 40 <= len(out) < 100
    np.testing.assert_array_equal(out[:30], exs[0]["target_tokens"])


def naive_guided(model, vocab, prompt, negative, w, n):
    """The guidance formula step by step without a cache: full forwards of both prompts + the answer so far."""
    out = []
    for _ in range(n):
        ls = []
        for p in (prompt, negative):
            ids = torch.as_tensor(np.concatenate([p, np.asarray(out, np.int64) + vocab.audio_offset]))[None]
            logits = model(input_ids=ids).logits[0, -1]
            cand = torch.cat([logits[vocab.audio_offset:vocab.audio_offset + AUDIO_SIZE], logits[vocab.eos:vocab.eos + 1]])
            ls.append(torch.log_softmax(cand.float(), -1))
        tok = int((ls[1] + w * (ls[0] - ls[1])).argmax())
        if tok == AUDIO_SIZE:
            break
        out.append(tok)
    return np.asarray(out[:len(out) - len(out) % 5])


@torch.no_grad()
def test_guidance_follows_the_formula_and_leaves_other_rows_alone(untrained, vocab):
    exs = examples(3)
    prompt, negative, other = (build_prompt(e, vocab) for e in exs)
    plain = generate(untrained, vocab, [prompt], 20, temperature=0)[0]
    for static in (True, False):
        guided = generate(untrained, vocab, [prompt], 20, temperature=0, negatives=[negative], guidance=3.0,
                          static_cache=static)[0]
        np.testing.assert_array_equal(guided, naive_guided(untrained, vocab, prompt, negative, 3.0, 20))
    assert not np.array_equal(guided, plain)           # the negative prompt moved the answer
    # w = 1, or the prompt itself as its negative: no change
    np.testing.assert_array_equal(generate(untrained, vocab, [prompt], 20, temperature=0, negatives=[negative])[0], plain)
    np.testing.assert_array_equal(
        generate(untrained, vocab, [prompt], 20, temperature=0, negatives=[prompt], guidance=3.0)[0], plain)
    # batched beside unguided rows (one padded to a power of two): each row as alone
    alone_other = generate(untrained, vocab, [other], 15, temperature=0.7, seeds=4)[0]
    mixed = generate(untrained, vocab, [other, prompt], [15, 20], temperature=[0.7, 0], seeds=[4, 0],
                     negatives=[None, negative], guidance=[1.0, 3.0], round_batch=True)
    np.testing.assert_array_equal(mixed[0], alone_other)
    np.testing.assert_array_equal(mixed[1], guided)
    with pytest.raises(ValueError, match="negatives: 2 prompts for 1"):
        generate(untrained, vocab, [prompt], 5, negatives=[negative, negative], guidance=2.0)


def test_decode_attention_reads_the_gqa_cache_once_with_sdpa_results(untrained, vocab, monkeypatch):
    """The decode step's attention packs the query heads of each key/value head instead of repeating
    the cache per head; the sampled answers and the logits stay SDPA's."""
    import copy
    from editor.llm import decode_attention
    # enough rows that the step is packed (a smaller one is left to transformers: docs of the module)
    rows = -(-decode_attention.PACK_MIN_BLOCKS // untrained.config.num_key_value_heads)
    prompts = [build_prompt({**e, "source_tokens": e["source_tokens"][:k]}, vocab)
               for e, k in zip(examples() * rows, range(20, 0, -1))][:rows]
    assert len(prompts) == rows
    reference = copy.deepcopy(untrained)
    reference.set_attn_implementation("sdpa")     # earlier tests' generate switched the fixture's model
    with monkeypatch.context() as plain:
        plain.setattr(decode_attention, "use", lambda m: None)
        want = generate(reference, vocab, prompts, 40, seeds=3, temperature=0.7)
    assert reference.config._attn_implementation == "sdpa"

    shapes = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda q, k, v, **kw: shapes.append((q.shape, k.shape)) or sdpa(q, k, v, **kw))
    model = copy.deepcopy(reference)
    got = generate(model, vocab, prompts, 40, seeds=3, temperature=0.7)
    assert model.config._attn_implementation == decode_attention.NAME
    c = model.config
    heads, kv_heads = c.num_attention_heads, c.num_key_value_heads
    steps = [(q, k) for q, k in shapes if q[2] == heads // kv_heads and q[1] == kv_heads]
    assert steps and all(k[1] == kv_heads for _, k in steps)      # the cache as stored: no repeated heads
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    from transformers.integrations import sdpa_attention
    plain_steps, plain = [], sdpa_attention.sdpa_attention_forward
    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward",
                        lambda m, q, *a, **kw: plain_steps.append(q.shape[2]) or plain(m, q, *a, **kw))
    generate(model, vocab, prompts, 5, seeds=3, temperature=0.7)
    assert plain_steps and 1 not in plain_steps            # packed rows: only the prefill is transformers'
    generate(model, vocab, prompts[:1], 5, seeds=3, temperature=0.7)
    assert plain_steps.count(1) > 0                         # a lone row's steps are left to transformers

    # one decode step's logits against transformers' SDPA on the same cache
    from transformers import StaticCache
    ids = torch.as_tensor(prompts[0])[None].repeat(rows, 1)
    outs = []
    for m in (reference, model):
        cache = StaticCache(config=m.config, max_cache_len=ids.shape[1] + 1)
        with torch.no_grad():
            m(input_ids=ids, past_key_values=cache, use_cache=True)
            outs.append(m(input_ids=ids[:, -1:], past_key_values=cache, use_cache=True,
                          cache_position=torch.tensor([ids.shape[1]])).logits)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)


def test_kept_decoders_are_lent_to_one_caller_at_a_time(monkeypatch):
    """CUDA keeps decoders (their graphs) per shape; a decoder in use is never handed to a second caller
    (a stream and a batch of one shape in two threads would step one state together), a returned one is
    reused, and no more than _MAX_DECODERS idle ones are kept, the least recently used dropped first."""
    from editor.llm import generate as g
    made = []

    class Fake:
        def __init__(self, *args):
            made.append(self)

    monkeypatch.setattr(g, "_Decoder", Fake)
    monkeypatch.setattr(g, "_DECODERS", g.OrderedDict())
    monkeypatch.setattr(g, "_MAX_DECODERS", 3)
    cuda, cfg = torch.device("cuda"), g.SampleConfig()
    take = lambda B, model=None: g._take_decoder(model, None, B, 256, cfg, None, cuda, True)
    (a, ka), (b, kb) = take(4), take(4)
    assert a is not b and ka == kb                  # the second caller of a held shape gets its own
    g._return_decoder(a, ka)
    assert take(4)[0] is a                           # an idle one is reused...
    assert take(4)[0] not in (a, b)                  # ...and lent once
    for d, k in [(a, ka), (b, kb)] + [take(n) for n in (1, 2)]:
        g._return_decoder(d, k)
    assert sum(len(v) for v in g._DECODERS.values()) == 3
    assert [len(v) for v in g._DECODERS.values()] == [1, 1, 1]   # one of batch 4's two was dropped first
    # a shape whose last idle decoder is lent holds no empty entry that eviction would trip on
    held, kh = take(4)
    assert kh not in g._DECODERS
    for n in (8, 16, 32):
        g._return_decoder(*take(n))
    assert sum(len(v) for v in g._DECODERS.values()) == 3
    g._return_decoder(held, kh)
    assert g._DECODERS[kh] == [held] and sum(len(v) for v in g._DECODERS.values()) == 3
    # on the CPU nothing is kept: every call gets a fresh decoder
    d, k = g._take_decoder(None, None, 4, 256, cfg, None, torch.device("cpu"), True)
    assert k is None and d is made[-1]


def test_a_decode_returns_its_decoder_once_however_it_ends(untrained, vocab, monkeypatch):
    """generate_stream gives its decoder back exactly once: after its last answer, when its reader stops
    after an intermediate answer, and when the decode fails."""
    from editor.llm import generate as g
    lent, back = [], []
    take = g._take_decoder
    monkeypatch.setattr(g, "_take_decoder", lambda *a: (lent.append(take(*a)[0]) or lent[-1], "key"))
    monkeypatch.setattr(g, "_return_decoder", lambda dec, key: back.append(dec))
    p = [build_prompt(examples(1)[0], vocab)]
    answers = list(g.generate_stream(untrained, vocab, p, 40, every=10, temperature=1.0))
    assert len(answers) == 4 and back == lent[:1]
    stream = g.generate_stream(untrained, vocab, p, 40, every=10, temperature=1.0)
    next(stream)
    assert len(back) == 1          # still decoding: not given back yet
    stream.close()
    assert back == lent[:2]
    monkeypatch.setattr(g._Decoder, "step", lambda self: (_ for _ in ()).throw(RuntimeError("device fault")))
    with pytest.raises(RuntimeError, match="device fault"):
        list(g.generate_stream(untrained, vocab, p, 40, temperature=1.0))
    assert back == lent[:3]
