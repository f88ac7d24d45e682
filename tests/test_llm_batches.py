"""Packed training batches: every drawn example is trained once, in the step it was drawn or the next one;
drawing past a miss fills the rows' ends; a stopped stream resumes to the same batches."""
from collections import Counter

import numpy as np
import pytest

from editor.llm import chat
from editor.llm.batches import Batches
from editor.llm.data import Mixture
from editor.llm.vocab import load_vocab

V = load_vocab()
ROWS, MAX_LEN = 4, 512


def _examples(n=60, seed=0):
    """Edit examples of 40 to about 400 tokens, each with source tokens no other example has."""
    rng = np.random.default_rng(seed)
    out = {"emotion_edit": [], "speed_edit": []}
    for i in range(n):
        task = "emotion_edit" if i % 2 else "speed_edit"
        src = np.concatenate([[i], rng.integers(0, 5120, int(rng.integers(10, 200)))])
        out[task].append({"system": "edit", "text": "t", "target_text": "t",
                          "instruction": "Make the following audio more happy. The text corresponding to the audio is: t",
                          "source_tokens": src, "target_tokens": rng.integers(0, 5120, int(rng.integers(10, 200)))})
    return out


class Recording(Mixture):
    """The mixture stream, with every reference it hands out written down."""

    def __init__(self, *a):
        super().__init__(*a)
        self.drawn = []

    def next_ref(self):
        ref = super().next_ref()
        self.drawn.append(ref)
        return ref


def _segments(batch: dict) -> list[tuple]:
    """The examples of a collated batch, as tuples of their input ids (the padding block left out)."""
    out = []
    for ids, pos, labels in zip(batch["input_ids"].tolist(), batch["position_ids"].tolist(), batch["labels"].tolist()):
        starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
        for a, b in zip(starts, starts[1:]):
            if any(y != chat.IGNORE for y in labels[a:b]):   # padding has no labels
                out.append(tuple(ids[a:b]))
    return out


def _batches(lookahead: int, steps: int, seed: int = 0):
    exs = _examples()
    mix = Recording(exs, {"emotion_edit": 1.0, "speed_edit": 1.0}, seed)
    b = Batches(mix, V, ROWS, MAX_LEN, lookahead)
    return exs, mix, b, [b.next()[0] for _ in range(steps)]


@pytest.mark.parametrize("lookahead", [1, 4])
def test_every_drawn_example_is_trained_once_in_its_step_or_the_next(lookahead):
    exs, mix, b, out = _batches(lookahead, 12)
    seq = lambda ref: tuple(chat.build_example(exs[ref[0]][ref[1]], V)["input_ids"])
    trained = [s for batch in out for s in _segments(batch)]
    waiting = [seq(r) for r in b.pending]
    assert len(b.pending) == lookahead
    # nothing lost, nothing twice: the stream is what was trained plus what waits
    assert sorted(trained + waiting) == sorted(seq(r) for r in mix.drawn)
    # no example waits more than one step: replaying the draws, each batch holds the examples that waited
    # from the step before and those drawn for it, less the ones that now wait
    mix2 = Recording(exs, {"emotion_edit": 1.0, "speed_edit": 1.0}, 0)
    b2 = Batches(mix2, V, ROWS, MAX_LEN, lookahead)
    for batch in out:
        before, carried = len(mix2.drawn), Counter(seq(r) for r in b2.pending)
        b2.next()
        expected = carried + Counter(seq(r) for r in mix2.drawn[before:]) - Counter(seq(r) for r in b2.pending)
        assert Counter(_segments(batch)) == expected


def test_drawing_past_a_miss_pads_less():
    def fill(lookahead):
        *_, out = _batches(lookahead, 40)
        return sum(len(s) for batch in out for s in _segments(batch)) / (40 * ROWS * MAX_LEN)
    assert fill(4) > fill(1) + 0.02, (fill(1), fill(4))


def test_a_stream_stopped_and_restored_gives_the_same_batches():
    exs, mix, b, _ = _batches(4, 5)
    st = b.state()
    after = [b.next()[0] for _ in range(4)]
    b2 = Batches(Mixture(exs, {"emotion_edit": 1.0, "speed_edit": 1.0}, 0), V, ROWS, MAX_LEN, 4)
    b2.load_state(st)
    again = [b2.next()[0] for _ in range(4)]
    for x, y in zip(after, again):
        assert all((x[k] == y[k]).all() for k in x)
    # a checkpoint of the earlier packer held its one waiting example as a bare (task, index) pair
    b2.load_state({"mixture": st["mixture"], "pending": list(st["pending"][0])})
    assert b2.pending == [tuple(st["pending"][0])]


@pytest.mark.parametrize("bad", [0, ROWS + 1])
def test_a_lookahead_past_the_rows_is_named(bad):
    mix = Mixture(_examples(), {"emotion_edit": 1.0}, 0)
    with pytest.raises(ValueError, match="pack_lookahead"):
        Batches(mix, V, ROWS, MAX_LEN, bad)
