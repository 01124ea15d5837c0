"""Sound tokens straight from text: WhisperSpeech's text-to-semantic model (:mod:`.model`), its stage
(:mod:`.stage`), the drift guard that compares it with the audio path (:mod:`.guard`, :mod:`.drift`) and
what a build reports about it (:mod:`.report`)."""
