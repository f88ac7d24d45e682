"""Serving the editor smaller and sooner: the streaming decode and int8 weights, on a tiny random LLM
with the shipped codec."""
import numpy as np
import pytest
import torch
from conftest import voiced
from editor.llm.editor import Editor
from editor.llm.generate import generate, generate_stream
from editor.llm.quantize import Int8Linear, quantize_int8, weight_bytes
from editor.llm.streaming import AudioStream, stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ed(short_editor):
    return short_editor


def test_streamed_answers_are_prefixes_of_the_final_one(ed):
    prompts = [np.arange(9400, 9410), np.arange(9400, 9404)]
    items = list(generate_stream(ed.model, ed.vocab, prompts, [60, 40], [1, 2], 0.7, layout=ed.layout, every=10))
    assert len(items) >= 4
    final = generate(ed.model, ed.vocab, prompts, [60, 40], [1, 2], 0.7, layout=ed.layout)
    for row in range(2):
        assert np.array_equal(items[-1][row], final[row])
        for it in items[:-1]:
            assert len(it[row]) % ed.layout.block == 0
            assert np.array_equal(it[row], final[row][:len(it[row])])
    assert len(items[0][0]) < len(final[0])


def test_audio_stream_gives_the_whole_decode_in_chunks_and_decodes_few_times():
    full = np.sin(np.arange(384 * 500) * 0.05).astype(np.float32)
    calls = []

    def decode(ids):                 # a causal decode: a prefix's audio is the start of the whole
        calls.append(len(ids))
        return full[:384 * len(ids)]
    audio = AudioStream(decode, tokens_per_s=41.67, chunk_s=0.5)
    answers = [[np.zeros(n, np.int32)] for n in range(10, 501, 10)]
    chunks = list(stream(answers, audio))
    assert np.allclose(np.concatenate(chunks), full, atol=1e-6)
    assert len(chunks) >= 4 and len(chunks[0]) < 0.25 * len(full)
    assert sum(calls) < 4 * 500        # growing by half each time: a few whole decodes' worth


def test_edit_stream_gives_edit_audio_in_chunks_without_seams(ed):
    src = voiced(1.0)
    whole = ed.edit(src, "hello there", "emotion", "happy", seed=3)[0]
    chunks = list(ed.edit_stream(src, "hello there", "emotion", "happy", seed=3, chunk_s=0.5))
    got = np.concatenate(chunks)
    assert len(chunks) >= 2 and len(chunks[0]) < len(whole) / 2     # audio before the answer is done
    assert len(got) == len(whole)                                     # the same tokens, the same length
    # each join: the step across it no larger than the steps of the audio around it
    steps = np.abs(np.diff(got))
    for j in np.cumsum([len(c) for c in chunks[:-1]]):
        assert steps[j - 1] <= 3 * np.percentile(steps[max(0, j - 800):j + 800], 99) + 1e-4
    # and the level over 50 ms windows follows the whole decode's
    lv = lambda x: np.sqrt(np.mean(x[:len(x) // 800 * 800].reshape(-1, 800) ** 2, 1))
    assert np.corrcoef(lv(got), lv(whole))[0, 1] > 0.9


def test_streaming_rejects_audio_it_cannot_stream(ed):
    with pytest.raises(ValueError, match="a streamed edit takes at most"):
        ed.edit_stream(np.tile(voiced(1.0), 31), "x", "emotion", "happy")
    with pytest.raises(ValueError, match="edit_type"):
        ed.edit_stream(voiced(1.0), "x", "shout", "happy")


def test_int8_weights_are_smaller_and_give_nearly_the_same_logits(llm_dir):
    ref = Editor.load(llm_dir, device="cpu").model
    q = Editor.load(llm_dir, device="cpu", quantize="int8").model
    lin = [m for m in q.modules() if isinstance(m, Int8Linear)]
    assert len(lin) == 7 * len(q.get_decoder().layers)      # q, k, v, o, gate, up, down per layer
    layer_bytes = lambda m: sum(weight_bytes(layer) for layer in m.get_decoder().layers)
    assert layer_bytes(q) < 0.3 * layer_bytes(ref)
    ids = torch.arange(9400, 9440)[None]
    with torch.no_grad():
        a, b = ref(input_ids=ids).logits, q(input_ids=ids).logits
    assert ((a - b).norm() / a.norm()) < 0.02
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9


def test_int8_editor_edits_and_bad_quantize_is_named(llm_dir):
    e = Editor.load(llm_dir, device="cpu", quantize="int8")
    e.margin_tokens = 10
    out = e.edit(voiced(1.0), "hello there", "emotion", "sad", seed=1)[0]
    assert len(out) > 16000 and np.isfinite(out).all()
    with pytest.raises(ValueError, match="quantize='int4'"):
        Editor.load(llm_dir, device="cpu", quantize="int4")
    with pytest.raises(ValueError, match="no linear layers"):
        quantize_int8(torch.nn.Sequential())
