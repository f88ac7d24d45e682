"""python -m editor clone|edit ...: the editor's command line (editor/serve/cli.py)."""
import sys

from editor.serve.cli import main

sys.exit(main())
