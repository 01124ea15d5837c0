"""dataengine: spoken-instruction datasets for speech LLMs."""

from dataengine import numerics as _numerics

_numerics.apply()  # before numpy, torch or CTranslate2 load: they read their kernel choice at load time

__version__ = "0.1.0"
