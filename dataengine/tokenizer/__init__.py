"""WhisperVQ sound tokens: Whisper encoder + vector-quantizer codebook, and the pipeline stage using them."""

from dataengine.tokenizer.errors import TokenizerError
from dataengine.tokenizer.whispervq import WhisperVQ, load_whispervq

__all__ = ["TokenizerError", "WhisperVQ", "load_whispervq"]
