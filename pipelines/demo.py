"""pipeline=demo: the editor's web page on host:port until interrupted (editor/serve/demo.py).

    python run.py pipeline=demo [llm=DIR] [pipeline.port=7861]"""
import logging

log = logging.getLogger(__name__)


def run(cfg):
    from editor.artifacts import SHIPPED_LLM
    from editor.llm.editor import Editor   # torch and gradio load only for this pipeline
    from editor.serve.demo import Demo
    p = cfg.pipeline
    editor = Editor.load(p.llm or SHIPPED_LLM, p.tokenizer, p.decoder, device=p.device or "auto")
    demo = Demo(editor, p.workdir, max_n_iter=p.max_n_iter, seed=p.seed, temperature=p.temperature)
    log.info("demo on http://%s:%d (results in %s); Ctrl-C stops it", p.host, p.port, demo.workdir)
    demo.launch(p.host, p.port, max_file_size=p.max_file_size)
