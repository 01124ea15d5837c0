"""dataengine: spoken-instruction datasets for speech LLMs."""

from pathlib import Path as _Path

from dataengine import numerics as _numerics

_numerics.apply()  # before numpy, torch or CTranslate2 load: they read their kernel choice at load time

__version__ = "0.1.0"

# ``dataengine.training`` and ``dataengine.cards`` are the repository's training/ and cards/ folders, which
# an install maps into this package (pyproject.toml ``package-dir``). Run from a source tree without
# installing (PYTHONPATH), the folders beside this package serve as those subpackages.
_source_root = _Path(__file__).resolve().parent.parent
if (_source_root / "pyproject.toml").is_file() and (_source_root / "training" / "__init__.py").is_file():
    __path__.append(str(_source_root))  # noqa: F821 - the package's own search path
