"""The editor as a Ray Serve deployment: POST /clone, POST /edit, GET /health (schema.py: the forms).

Each replica loads one Editor. Requests are checked one by one (a bad one is a 4xx for its client
alone), then @serve.batch gathers the concurrent good ones into one batch, so the GPU decodes them
together. A batch is analysed (F0 and mel on CPU threads; on CUDA also the tokenizer and the prompts)
before it takes the model and decoded by the codec after it gives the model back: with two batches in
flight per route, one batch's analysis and audio decode overlap the other's generation. With continuous
decoding (on CUDA by default) there is no model lock: every batch's answers join the one running
decode as rows come free (editor/llm/continuous.py). Replicas, batch size and wait come from the config
(configs/pipeline/serve.yaml; pipelines/serve.py starts it).
"""
import asyncio
import contextlib
import logging
import threading
import time

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from editor.serve.schema import BadRequest, Limits, answer, check_content_type, clone_request, edit_request

log = logging.getLogger("lms.serve")
CONTINUOUS_ROWS = 128     # continuous_rows=auto on CUDA: 64 guided requests (two rows each) at once


async def _body(request: Request, limits: Limits) -> bytes:
    """The body, refused unread when it is not a form, and as soon as it passes the size limit (a huge
    upload is not read to the end)."""
    check_content_type(request.headers.get("content-type"))
    cap = int(limits.max_body_mb * 1e6)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise BadRequest("body", f"{int(declared) / 1e6:.1f} MB, limit {limits.max_body_mb:g} MB", 413)
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > cap:
            raise BadRequest("body", f"more than {limits.max_body_mb:g} MB", 413)
        chunks.append(chunk)
    return b"".join(chunks)


# the Editor's argument names -> the request's fields, so an error that passed the form's checks names one
FIELDS = {"wav": "audio", "prompt_wav": "prompt_audio", "text": "text", "prompt_text": "prompt_text",
          "edit_info": "edit_info"}


def _failed(err: Exception) -> JSONResponse:
    """A request the editor refused (422, naming the field where the message does) or failed on (500)."""
    if not isinstance(err, ValueError):
        return JSONResponse({"error": f"internal error: {type(err).__name__}"}, 500)
    name, _, rest = str(err).partition(": ")
    if name in FIELDS:
        return JSONResponse({"error": rest, "field": FIELDS[name]}, 422)
    return JSONResponse({"error": str(err), "field": "body"}, 422)


@serve.deployment
class EditorServer:
    def __init__(self, llm_dir: str, tokenizer_dir, decoder_dir, device: str, limits: dict,
                 max_batch_size: int, batch_wait_timeout_s: float, analysis_processes: bool = False,
                 f0_decimation: int = 1, continuous_rows: int | str = "auto", continuous_cache_len: int = 1024):
        from editor.codec import use_analysis_processes
        from editor.llm.editor import Editor
        use_analysis_processes(analysis_processes)
        self.limits = Limits(**limits)
        t0 = time.perf_counter()
        self.editor = Editor.load(llm_dir, tokenizer_dir, decoder_dir, device=device, f0_decimation=f0_decimation)
        rows = continuous_rows
        if rows == "auto":       # a CPU computes every row of a step, busy or free: it gains nothing
            rows = CONTINUOUS_ROWS if self.editor.codec.device.type == "cuda" else 0
        if rows:
            self.editor.use_continuous(int(rows), int(continuous_cache_len))
        # the decoding a client's edits get: guidance comes with the LLM (its inference.json)
        self.info = {"llm": str(llm_dir), "device": str(self.editor.codec.device),
                     "guidance": self.editor.guidance, "guided_iterations": self.editor.guided_iterations,
                     "continuous_rows": int(rows), "vocoder_graphs": self.editor.codec.vocoder_graphs is not None,
                     "load_s": round(time.perf_counter() - t0, 2)}
        # batch decoding: one model call (Editor.start) at a time, as batches run in their own threads and
        # the editor's buffers and CUDA graphs are not made for two callers; the continuous decoder takes
        # every caller's rows itself. Analysis (tokenizer included) needs no lock
        self.lock = contextlib.nullcontext() if self.editor.concurrent_start else threading.Lock()
        for batcher in (self.clone_batch, self.edit_batch):
            batcher.set_max_batch_size(max_batch_size)
            batcher.set_batch_wait_timeout_s(batch_wait_timeout_s)
        log.info("editor replica ready: %s", self.info)

    def _run(self, kind: str, reqs: list[dict]) -> list:
        """The batch in a worker thread's call; per request (result, error or None, stats)."""
        t0 = time.perf_counter()
        try:
            outs = [(o, None) for o in self._analyse_run(kind, reqs)]
        except Exception:    # checked requests should not fail, but if one does, only it fails
            outs = []
            for r in reqs:
                try:
                    outs.append((self._analyse_run(kind, [r])[0], None))
                except Exception as e:
                    if not isinstance(e, ValueError):
                        log.exception("a %s request failed", kind)
                    outs.append((None, e))
        took = time.perf_counter() - t0
        return [(o, err, {"batch_size": len(reqs), "compute_s": round(took, 3)}) for o, err in outs]

    def _analyse_run(self, kind: str, reqs: list[dict]) -> list:
        analysed = self.editor.analyse(kind, reqs)     # beside another batch's LLM decode
        with self.lock:
            finish = self.editor.start(analysed)       # the LLM's part
        return finish()                                # the codec's decode, beside the next batch's LLM

    # two batches in flight per route: one analysed or decoded while the other has the model (self.lock)
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05, max_concurrent_batches=2)  # sizes from the config
    async def clone_batch(self, reqs: list[dict]) -> list:
        return await asyncio.to_thread(self._run, "clone", reqs)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05, max_concurrent_batches=2)
    async def edit_batch(self, reqs: list[dict]) -> list:
        return await asyncio.to_thread(self._run, "edit", reqs)

    async def __call__(self, request: Request) -> Response:
        path, method = request.url.path.rstrip("/") or "/", request.method
        routes = {"/health": "GET", "/clone": "POST", "/edit": "POST"}
        if path not in routes:
            return JSONResponse({"error": f"no route {path}; use POST /clone, POST /edit, GET /health"}, 404)
        if method != routes[path]:
            return JSONResponse({"error": f"{path} takes {routes[path]}, not {method}"}, 405)
        if path == "/health":
            return JSONResponse({"status": "ok", **self.info})
        try:
            body, ctype = await _body(request, self.limits), request.headers.get("content-type")
            # decoding and checking the audio is CPU work: off the event loop, which answers /health meanwhile
            if path == "/clone":
                req, every = await asyncio.to_thread(clone_request, ctype, body, self.limits), False
                out, err, stats = await self.clone_batch(req)
            else:
                req, every = await asyncio.to_thread(edit_request, ctype, body, self.limits)
                out, err, stats = await self.edit_batch(req)
        except BadRequest as e:
            return JSONResponse(e.body(), e.status)
        if err is not None:
            return _failed(err)
        media_type, data = answer([out] if path == "/clone" else out, every)
        return Response(data, media_type=media_type,
                        headers={"X-Batch-Size": str(stats["batch_size"]), "X-Compute-S": str(stats["compute_s"])})
