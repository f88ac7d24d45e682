"""python -m editor clone|edit ...: the editor's command line (editor/serve/cli.py)."""
import sys
import warnings

warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)   # pyworld's import; not ours to fix
from editor.serve.cli import main  # noqa: E402

sys.exit(main())
