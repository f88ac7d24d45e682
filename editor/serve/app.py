"""The editor as a Ray Serve deployment: POST /clone, POST /edit, GET /health (schema.py: the forms).

Each replica loads one Editor. Requests are checked one by one (a bad one is a 4xx for its client
alone), then @serve.batch gathers the concurrent good ones into one batch, analysed together (F0 and
mel on CPU threads; on CUDA also the tokenizer and the prompts). With continuous decoding (on CUDA by
default) the batch's answers then join the one running decode as rows come free
(editor/llm/continuous.py), and each request is answered as soon as its own audio is decoded, not when
the longest edit of its batch ends (Editor.start_each): the batch handler returns its requests' futures
once their rows are queued, and each client awaits its own. With batch decoding the batch is generated
(one batch at a time) and its audio decoded while the next batch generates. Replicas, batch size and
wait come from the config (configs/pipeline/serve.yaml; pipelines/serve.py starts it).
"""
import asyncio
import logging
import time
from concurrent.futures import Future

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
                     "continuous_rows": int(rows),
                     "load_s": round(time.perf_counter() - t0, 2)}
        for batcher in (self.clone_batch, self.edit_batch):
            batcher.set_max_batch_size(max_batch_size)
            batcher.set_batch_wait_timeout_s(batch_wait_timeout_s)
        log.info("editor replica ready: %s", self.info)

    def _start(self, kind: str, reqs: list[dict]) -> list:
        """The batch analysed and started in a worker thread's call; per request (the future of its
        result, batch size, start time)."""
        t0 = time.perf_counter()
        try:
            futs = self._analyse_start(kind, reqs)
        except ValueError:   # checked requests should not fail, but if one does, only it fails
            futs = []
            for r in reqs:
                try:
                    futs += self._analyse_start(kind, [r])
                except ValueError as e:
                    futs.append(Future())
                    futs[-1].set_exception(e)
        return [(f, len(reqs), t0) for f in futs]

    def _analyse_start(self, kind: str, reqs: list[dict]) -> list[Future]:
        analysed = self.editor.analyse(kind, reqs)     # beside the running decode and other batches
        return self.editor.start_each(analysed)        # rows queued (batch decoding: generated)

    # two batches in flight per route: one analysed while the other starts
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05, max_concurrent_batches=2)  # sizes from the config
    async def clone_batch(self, reqs: list[dict]) -> list:
        return await asyncio.to_thread(self._start, "clone", reqs)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05, max_concurrent_batches=2)
    async def edit_batch(self, reqs: list[dict]) -> list:
        return await asyncio.to_thread(self._start, "edit", reqs)

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
            if path == "/clone":
                req, every = clone_request(ctype, body, self.limits), False
                fut, batch_size, t0 = await self.clone_batch(req)
            else:
                req, every = edit_request(ctype, body, self.limits)
                fut, batch_size, t0 = await self.edit_batch(req)
        except BadRequest as e:
            return JSONResponse(e.body(), e.status)
        try:
            out = await asyncio.wrap_future(fut)
        except ValueError as e:
            return JSONResponse({"error": str(e), "field": "body"}, 422)
        media_type, data = answer([out] if path == "/clone" else out, every)
        return Response(data, media_type=media_type, headers={
            "X-Batch-Size": str(batch_size), "X-Compute-S": str(round(time.perf_counter() - t0, 3))})
