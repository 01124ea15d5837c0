"""dataengine: spoken-instruction datasets for speech LLMs."""

__version__ = "0.1.0"
