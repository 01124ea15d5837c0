"""Audio helpers: I/O, resampling, quality metrics, voice activity and the audio filter stage."""
