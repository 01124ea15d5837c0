"""The ASR round trip scored on simulated TTS failures: each utterance as spoken (must be kept), cut
after a third (the TTS stopped early), paired with another prompt's text (wrong audio), and reversed
in time (garbage). Prints precision/recall of ``asr_mismatch`` and the share of good pairs kept."""

from __future__ import annotations

from dataclasses import dataclass

from dataengine.audio.asr import WhisperASR, check_asr, decoder_beam
from dataengine.audio.io import resample
from dataengine.evaluation.corpus import corpus_texts, speak
from dataengine.recipe import ASRConfig, TokenizerConfig
from dataengine.sample import AUDIO_SAMPLE_RATE as SR
from dataengine.tokenizer.whisper_pass import shared_whisper


@dataclass(frozen=True)
class ASRScore:
    kept_good: float
    precision: float
    recall: float
    n_good: int
    n_bad: int
    wrong: list[str]
    cer: dict[str, float]
    """Character error rate of every case, by case id."""

    def format(self) -> str:
        return (
            f"asr_mismatch: precision {self.precision:.3f} recall {self.recall:.3f} over {self.n_bad} TTS "
            f"failures; good pairs kept {self.kept_good:.3f} of {self.n_good}"
            + "".join(f"\n  wrong: {w}" for w in self.wrong)
        )


def asr_cases(utterances: int, seed: int = 0) -> list[tuple[str, bool, object, str]]:
    """(case id, is a TTS failure, 16 kHz audio, text) for ``utterances`` prompts."""
    texts = corpus_texts(utterances, seed + 2)
    audios = [resample(*speak(t, (1.0, 0.85, 1.2)[i % 3]), SR) for i, t in enumerate(texts)]
    cases = []
    for i, (text, audio) in enumerate(zip(texts, audios, strict=True)):
        cases.append((f"a{i:02d}-as_spoken", False, audio, text))
        cases.append((f"a{i:02d}-cut_after_a_third", True, audio[: len(audio) // 3], text))
        cases.append((f"a{i:02d}-wrong_text", True, audio, texts[(i + 1) % len(texts)]))
        cases.append((f"a{i:02d}-reversed", True, audio[::-1].copy(), text))
    return cases


def score_asr(
    utterances: int, config: ASRConfig, seed: int = 0, tokenizer: TokenizerConfig | None = None
) -> ASRScore:
    """Run :func:`check_asr` (the build's implementation) on :func:`asr_cases` and score it. With the
    ``tokenizer`` the build would share its encoder with (:func:`shared_whisper`), the ASR decoder reads
    that encoder's output, as in the build."""
    config = config.model_copy(update={"model": config.model if config.model != "none" else "tiny.en"})
    encoder = None
    if tokenizer is not None and shared_whisper(config, tokenizer) is not None:
        from dataengine.tokenizer.whispervq import load_whispervq

        encoder = load_whispervq(tokenizer.checkpoint, tokenizer.whisper, tokenizer.device, tokenizer.dtype)
    asr = WhisperASR(config.model, config.cpu_threads, decoder_beam(config, encoder is not None))
    good_kept = tp = fp = n_bad = 0
    wrong = []
    cer: dict[str, float] = {}
    cases = asr_cases(utterances, seed)
    for case_id, is_bad, audio, text in cases:
        state = None if encoder is None else encoder.encode_with_states([audio])[0][1]
        metrics, failing, heard = check_asr(audio, text, config, asr, state)
        cer[case_id] = metrics["asr_cer"]
        flagged = bool(failing)
        n_bad += is_bad
        tp += is_bad and flagged
        fp += flagged and not is_bad
        good_kept += (not is_bad) and not flagged
        if flagged != is_bad:
            wrong.append(f"{case_id}: heard {heard!r} for {text!r}")
    n_good = len(cases) - n_bad
    return ASRScore(
        kept_good=good_kept / n_good if n_good else 1.0,
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / n_bad if n_bad else 1.0,
        n_good=n_good,
        n_bad=n_bad,
        wrong=wrong,
        cer=cer,
    )
