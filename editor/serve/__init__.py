"""Serving the editor: the command line (cli.py, `python -m editor`), the HTTP API on Ray Serve
(schema.py: requests and answers; app.py: the deployment) and the web demo (demo.py, Gradio).
docs/serving.md and docs/demo.md tell how to use them."""
