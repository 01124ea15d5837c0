"""Real-world conditions on kept speech: background noise, rooms, levels and noise floors, mild codecs.

:mod:`~dataengine.augment.plan` draws which spoken turns are augmented (and, in ``beside`` mode, adds the
augmented copies to the task's stream); :mod:`~dataengine.augment.stage` applies the conditions after
TTS, before the audio filters; :mod:`~dataengine.augment.stability` tokenizes the clean audio too and
measures how far the sound tokens moved.
"""
