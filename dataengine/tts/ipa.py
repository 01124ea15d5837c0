"""Text -> IPA phonemes with the espeak-ng binary, in the form Kokoro-82M reads.

espeak-ng (``-q --ipa``, stress marks included) prints one line per clause and drops the punctuation,
which Kokoro uses for pauses and intonation. So the text is cut into clauses here, at clause punctuation
that is followed by a space or the end (``5.50`` and ``e.g`` stay whole), each clause is phonemized on its
own and its punctuation put back. The few rewrites after that are Kokoro's own for its espeak-ng path
(hexgrad's ``kokoro.py`` v0.19: ``r`` -> ``ɹ``, ``ʲ`` -> ``j``...). The text goes in on stdin, never on the
command line. Output is deterministic for the same espeak-ng binary.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache

from dataengine.tts.espeak import TIMEOUT_S, espeak_binary

CLAUSE_PUNCTUATION = ".,;:!?…—"
_CLAUSE_END = re.compile(rf"(?<=[{CLAUSE_PUNCTUATION}])\s+")
_TRAILING = re.compile(rf"[{CLAUSE_PUNCTUATION}]+$")
_REWRITES = (("ʲ", "j"), ("r", "ɹ"), ("x", "k"), ("ɬ", "l"))
UNSUPPORTED = ("ja", "zh", "cmn")
"""Kokoro languages whose phonemes come from misaki's own frontends (pyopenjtalk, jieba), not espeak-ng."""


def clauses(text: str) -> list[tuple[str, str]]:
    """``(words, punctuation)`` per clause; punctuation is what ended the clause (may be empty)."""
    out = []
    for piece in _CLAUSE_END.split(" ".join(text.split())):
        match = _TRAILING.search(piece)
        punct = match.group(0) if match else ""
        words = piece[: len(piece) - len(punct)].strip()
        if words or punct:
            out.append((words, punct))
    return out


def _espeak(words: str, language: str) -> str:
    proc = subprocess.run(
        [espeak_binary(), "-q", "--ipa", "-v", language],
        input=words.encode("utf-8"),
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ValueError(f"espeak-ng language {language!r}: {lines[0] if lines else proc.returncode}")
    return " ".join(proc.stdout.decode("utf-8").split())


def _kokoro_rewrites(phonemes: str, language: str) -> str:
    for old, new in _REWRITES:
        phonemes = phonemes.replace(old, new)
    phonemes = re.sub(r"(?<=[a-zɹː])(?=hˈʌndɹɪd)", " ", phonemes)
    if language == "en-us":
        phonemes = re.sub(r"(?<=nˈaɪn)ti(?!ː)", "di", phonemes)
    return phonemes


def phonemize(text: str, language: str = "en-us") -> str:
    """IPA phonemes of ``text`` with its clause punctuation kept, clauses separated by one space."""
    check_language(language)
    parts = []
    for words, punct in clauses(text):
        ipa = _kokoro_rewrites(_espeak(words, language), language) if words else ""
        parts.append(ipa + punct)
    return " ".join(p for p in parts if p).strip()


def check_language(language: str) -> None:
    """ValueError (one line) for a language this phonemizer cannot serve or espeak-ng does not know."""
    if language.split("-")[0].lower() in UNSUPPORTED:
        raise ValueError(
            f"language {language!r}: Kokoro's Japanese/Chinese phonemes need misaki's frontends, which "
            "dataengine does not use; espeak-ng languages such as en-us, en-gb, es, fr-fr, it, pt-br, hi work"
        )
    _probe(language)


@cache
def _probe(language: str) -> None:
    """espeak-ng fails on an unknown voice: one short run per language and process (cached when it works)."""
    _espeak("a", language)


@cache
def espeak_version() -> str:
    """The espeak-ng release (``1.51``...), a part of every cache key that depends on its phonemes."""
    out = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=False).stdout
    return out.split(":")[1].split()[0] if ":" in out else out.strip()
