"""Noise turns: the clips (synthetic and packaged recordings) and the stage that makes their audio."""
