"""WhisperSpeech's text-to-semantic model (``whisperspeech2``'s ``TSARTransformer``): find, check, generate.

The checkpoint is a WhisperSpeech ``save_model`` file (``{"config", "tunables", "state_dict"}``), named by a
preset, a local path or ``org/repo:file`` (the huggingface_hub cache first, then the Hub, like the
tokenizer's checkpoints). The network, weights and sampling maths are the library's own: ``load_model``,
``optimize`` (inference conversion and KV caches), ``run_encoder``, ``decoder.fill_cross_kv_cache``, the
model's forward pass with ``_mask_special_tokens``, and ``inference.logits_to_probs``. Only two things
differ from ``TSARTransformer.generate``: several texts run in one batch (``generate`` repeats one text
``bs`` times; ``generate_batch`` calls the forward pass with arguments it no longer takes, see
:func:`library_generate_batch_works`), and each row draws its sampling noise from its own seeded
generator, so a turn's tokens do not depend on which other turns share its batch.

A T2S model emits ids of the WhisperVQ codebook it was trained on: WhisperSpeech's ``make_model`` copies
that codebook into the model's input embedding (``embeddings.embedding.main``, frozen), so the checkpoint
carries its token space, and :func:`check_token_space` compares it with the recipe's tokenizer.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.hubfile import hub_file
from dataengine.t2s.presets import T2S_PRESETS


class T2SError(ValueError):
    """A T2S checkpoint that cannot be used (missing, unreadable, or in another token space): one line."""


MAIN_EMBEDDING = "embeddings.embedding.main.weight"
"""The T2S input embedding that holds the (frozen) WhisperVQ codebook."""
MAX_CODEBOOK_ERROR = 1e-2
"""Relative Frobenius difference up to which two codebooks are the same (fp16 storage is ~1e-3)."""


def resolve_t2s(ref: str) -> Path:
    """A preset name, local path or ``org/repo:file`` -> the local checkpoint file (cache first)."""
    if ref in T2S_PRESETS:
        ref = T2S_PRESETS[ref].checkpoint
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    repo, sep, filename = ref.partition(":")
    if not sep or "/" not in repo or not filename:
        raise T2SError(f"T2S checkpoint {ref!r}: no such file (expected a path, org/repo:file or a preset)")
    return hub_file(repo, filename, "T2S checkpoint", T2SError)


def read_t2s(path: Path, ref: str) -> dict[str, Any]:
    """The ``save_model`` dict, loaded with ``weights_only=True``; anything else is one line."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise T2SError(
            f"{ref}: not a T2S checkpoint (holds Python objects other than plain tensors)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user-facing error
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise T2SError(f"{ref}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first})") from None
    if not isinstance(spec, dict) or not {"config", "state_dict"} <= set(spec):
        raise T2SError(f"{ref}: not a T2S checkpoint (no 'config' and 'state_dict' entries)")
    if MAIN_EMBEDDING not in spec["state_dict"] or "stoks_codes" not in spec["config"]:
        raise T2SError(f"{ref}: not a WhisperSpeech T2S checkpoint (no {MAIN_EMBEDDING} or stoks_codes)")
    return spec


def tokenizer_codebook(ref: str) -> Any:
    """The codebook (codes + mask code, width) of a tokenizer checkpoint, read without building Whisper."""
    from dataengine.tokenizer.whispervq import _read_checkpoint, _resolve_checkpoint

    state = _read_checkpoint(_resolve_checkpoint(ref), ref)[2]
    embed = state["rq.layers.0._codebook.embed"].float()
    return embed[0] if embed.ndim == 3 else embed


def check_token_space(spec: dict[str, Any], t2s_ref: str, tokenizer_ref: str) -> None:
    """Refuse (one-line T2SError) a T2S checkpoint whose ids are not the tokenizer's: a preset trained on
    another tokenizer, another number of codes, or another codebook in its frozen embedding."""
    from dataengine.tokenizer.presets import PRESETS

    preset = T2S_PRESETS.get(t2s_ref)
    if preset is not None:
        same = {preset.tokenizer, PRESETS[preset.tokenizer].checkpoint}
        if tokenizer_ref not in same:
            raise T2SError(
                f"T2S {t2s_ref!r} emits tokens of tokenizer {preset.tokenizer!r}, but tokenizer.checkpoint "
                f"is {tokenizer_ref!r}: the ids would mean other sounds (set tokenizer.checkpoint: "
                f"{preset.tokenizer})"
            )
    theirs = spec["state_dict"][MAIN_EMBEDDING].float()
    ours = tokenizer_codebook(tokenizer_ref)
    if tuple(theirs.shape) != tuple(ours.shape):
        raise T2SError(
            f"T2S {t2s_ref!r} emits {theirs.shape[0]} codes of width {theirs.shape[1]}, tokenizer "
            f"{tokenizer_ref!r} has {ours.shape[0]} of width {ours.shape[1]}: different token spaces"
        )
    error = float((theirs - ours).norm() / ours.norm().clamp_min(1e-12))
    if error > MAX_CODEBOOK_ERROR:
        raise T2SError(
            f"T2S {t2s_ref!r} was trained on another codebook than tokenizer {tokenizer_ref!r} (its frozen "
            f"embedding differs by {error:.3g} relative): the ids would mean other sounds"
        )


def turn_seed(seed: int, key: str) -> int:
    """The sampling seed of one turn (recipe seed + turn key): independent of batches and workers."""
    return int.from_bytes(hashlib.sha256(f"{seed}:t2s:{key}".encode()).digest()[:8], "little") >> 1


@dataclass
class Generated:
    tokens: np.ndarray
    cut_off: bool
    """True when the model hit its token limit before emitting end-of-speech."""


def _import_t2s() -> Any:
    try:
        from whisperspeech2.t2s_up_wds_mlang_enclm import TSARTransformer
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken install: one line
        first = (str(exc).splitlines() or [""])[0]
        raise ImportError(
            f"t2s needs whisperspeech2 ({type(exc).__name__}: {first}): pip install whisperspeech2==2.0.1"
        ) from None
    return TSARTransformer


class T2SModel:
    """A loaded T2S checkpoint, converted for inference with KV caches for ``batch_size`` rows."""

    def __init__(self, path: Path, batch_size: int, device: str = "cpu", dtype: str = "float32") -> None:
        import torch

        from dataengine.tokenizer.whispervq import DTYPES, resolve_device

        cls = _import_t2s()
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model = cls.load_model(local_filename=str(path), device=self.device)
        self.model.optimize(max_batch_size=batch_size, dtype=DTYPES[dtype], torch_compile=False)
        self.model.ensure_tokenizer()
        self._torch = torch

    @property
    def max_text_bytes(self) -> int:
        """UTF-8 bytes of text the model reads (one position holds the start token)."""
        return int(self.model.ttoks_len) - 1

    @property
    def max_tokens(self) -> int:
        return int(self.model.stoks_len) - 1

    def text_bytes(self, text: str) -> int:
        return len(self.model.tokenizer.encode(text))

    def generate(
        self,
        texts: list[str],
        seeds: list[int],
        *,
        temperature: float = 0.0,
        top_k: int | None = None,
        cps: float = 15.0,
        language: str = "en",
    ) -> list[Generated]:
        """Semantic tokens for each text (``temperature`` 0: greedy), in batches of ``batch_size``."""
        out: list[Generated] = []
        for start in range(0, len(texts), self.batch_size):
            end = start + self.batch_size
            out += self._batch(texts[start:end], seeds[start:end], temperature, top_k, cps, language)
        return out

    def _batch(
        self, texts: list[str], seeds: list[int], temperature: float, top_k: int | None, cps: float, lang: str
    ) -> list[Generated]:
        torch = self._torch
        import torch.nn.functional as F
        from whisperspeech2 import inference, languages

        model, dev = self.model, self.device
        n_rows, length = len(texts), int(model.stoks_len)
        eot, eos = model.tokenizer.eot, model.stoks_codes + model.tunables.padding_token_offset
        rows = []
        for text in texts:
            ids = model.tokenizer.encode(text)
            if len(ids) > self.max_text_bytes:
                raise ValueError(f"text of {len(ids)} bytes: T2S reads at most {self.max_text_bytes}")
            rows.append(
                F.pad(torch.tensor(ids, dtype=torch.long), (1, model.ttoks_len - len(ids) - 1), value=eot)
            )
        with torch.no_grad():
            ttoks = torch.stack(rows).to(dev)
            langs = torch.full((n_rows,), languages.to_id(lang), dtype=torch.long, device=dev)
            cpss = torch.full((n_rows,), float(cps), device=dev)
            xenc, xenc_positions, cps_emb = model.run_encoder(ttoks, langs, cpss)
            model.decoder.fill_cross_kv_cache(xenc, xenc_positions)
            toks = torch.zeros((n_rows, length), dtype=torch.long, device=dev)
            toks[:, 0] = eos
            positions = torch.arange(length + 1, device=dev)
            generators = [torch.Generator(device=dev).manual_seed(s) for s in seeds]
            ends = [None] * n_rows
            for i in range(length - 1):
                logits, _ = model(
                    None, None, None, None, toks[:, i : i + 1].contiguous(),
                    in_stoks_positions=positions[i : i + 1], loss=None,
                    xenc=xenc, xenc_positions=xenc_positions, cps_emb=cps_emb,
                )  # fmt: skip
                logits = model._mask_special_tokens(logits[:, -1]).float()
                if temperature == 0:
                    nxt = logits.argmax(dim=-1)
                else:
                    probs = inference.logits_to_probs(logits, temperature, top_k)
                    noise = torch.stack(
                        [torch.empty_like(probs[0]).exponential_(1, generator=g) for g in generators]
                    )
                    nxt = torch.argmax(probs / noise, dim=-1)
                toks[:, i + 1] = nxt
                for row in range(n_rows):
                    if ends[row] is None and int(nxt[row]) == eos:
                        ends[row] = i + 1
                if all(e is not None for e in ends):
                    break
        result = []
        for row in range(n_rows):
            end = ends[row]
            tokens = toks[row, 1 : end if end is not None else length].cpu().numpy().astype(np.int64)
            result.append(Generated(tokens=tokens, cut_off=end is None))
        return result


def library_generate_batch_works(model: Any) -> bool:
    """Whether whisperspeech2's own ``generate_batch`` runs (2.0.1: it calls ``forward(ttoks, toks,
    loss=None)``, which lacks the ``languages``, ``cpss`` and ``in_stoks`` arguments, so it raises)."""
    try:
        model.generate_batch(["a"], show_progress_bar=False)
    except TypeError:
        return False
    return True
