"""Where the teacher-vs-student app (``spaces_app/``) lies, however hf-distill was installed.

The app is a program of its own (a Space runs ``app.py`` without hf_distill installed), kept once at the top of the
source tree. A wheel or an sdist install ships that folder inside the package as ``hf_distill/spaces_app/`` (the
``package-dir`` mapping in pyproject.toml); a source checkout, an editable install or ``PYTHONPATH=<checkout>`` finds
it beside the package. ``hf-distill demo`` runs it and ``hf-distill push --space-id`` uploads it from here.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["APP_FILENAME", "find_app_dir"]

APP_FILENAME = "app.py"
_FOLDER = "spaces_app"


def find_app_dir() -> Path:
    """Return the folder holding the demo app's ``app.py``, ``requirements.txt`` and ``README.md``.

    Looks inside the installed package first (wheel and sdist installs), then beside it (a checkout).

    Raises:
        FileNotFoundError: neither place has ``app.py`` (an install that left the app out).
    """
    package = Path(__file__).resolve().parent
    candidates = (package / _FOLDER, package.parent / _FOLDER)
    for folder in candidates:
        if (folder / APP_FILENAME).is_file():
            return folder
    tried = "\n  ".join(str(folder / APP_FILENAME) for folder in candidates)
    raise FileNotFoundError(
        f"cannot find the demo app; tried:\n  {tried}\nReinstall hf-distill (its wheel ships {_FOLDER}/)"
    )
