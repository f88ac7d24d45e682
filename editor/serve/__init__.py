"""Serving the editor: the command line (cli.py, `python -m editor`) and the HTTP API on Ray Serve
(schema.py: requests and answers; app.py: the deployment). docs/serving.md tells how to use them."""
