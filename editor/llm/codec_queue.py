"""One thread that decodes answers to audio, merging whatever is queued into one codec batch.

A server that completes each request as soon as its own answer ends hands the codec one or two answers
at a time. One codec batch costs about the same for one answer as for forty (the decoder and vocoder
are wide and short), so decoding each hand-off alone would make the codec the bottleneck; here every
hand-off that arrived while the previous batch decoded goes into the next one. On CUDA the decodes run
on a stream of their own, beside the LLM's steps.
"""
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Callable

import torch

log = logging.getLogger(__name__)


class CodecQueue:
    """decode(ids_list, refs) -> one output per answer, called from this queue's thread only, on `stream`
    (None: the current one). `submit` returns a Future of its answers' outputs, in order; a decode that
    fails fails the futures of the hand-offs it merged, and the queue goes on."""

    def __init__(self, decode: Callable[[list, list], list], stream=None, max_answers: int = 64):
        self.decode, self.stream, self.max_answers = decode, stream, max_answers
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = 0                    # codec calls made (a bench reads it: answers per call)
        self._thread = threading.Thread(target=self._loop, name="codec-decode", daemon=True)
        self._thread.start()

    def submit(self, ids_list: list, refs: list) -> Future:
        fut = Future()
        self._jobs.put((list(ids_list), list(refs), fut))
        return fut

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _take(self) -> list | None:
        """The first queued hand-off (waiting for one), then every other one already queued, up to
        max_answers answers in all (a hand-off is never split); None once closed."""
        first = self._jobs.get()
        if first is None:
            return None
        jobs, n = [first], len(first[0])
        while n < self.max_answers:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:               # close after this batch
                self._jobs.put(None)
                break
            jobs.append(job)
            n += len(job[0])
        return jobs

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            ids = [x for j in jobs for x in j[0]]
            refs = [r for j in jobs for r in j[1]]
            try:
                with torch.cuda.stream(self.stream):       # None: the current stream
                    outs = self.decode(ids, refs)
                self.batches += 1
            except Exception as e:          # the callers see it in their futures
                log.exception("codec decode failed")
                for *_, fut in jobs:
                    fut.set_exception(e)
                continue
            k = 0
            for j_ids, _, fut in jobs:
                fut.set_result(outs[k:k + len(j_ids)])
                k += len(j_ids)
