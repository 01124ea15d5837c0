"""Tiny, randomly initialised T2S checkpoints, built with ``whisperspeech2``'s own ``TSARTransformer`` and
saved with its ``save_model`` (the format of WhisperSpeech's published ``t2s-*.model`` files).

Like WhisperSpeech's ``make_model``, each one copies a tokenizer's codebook into its frozen input embedding
(``load_frozen_semantic_embeddings``), so it is in that tokenizer's token space. Random weights never end
their speech, so the decoder's final LayerNorm is set to emit one fixed hidden state, and the end-of-speech
logit is set from the code logits that state gives: every step then ends the speech with probability
``p_end``. Forced drift: ``p_end`` near 0 (always cut off: too long), or one code made to win every step
(degenerate repeats), or another codebook (another token space).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from dataengine.t2s.model import tokenizer_codebook


def tiny_t2s(
    path: Path,
    codebook: torch.Tensor | None = None,
    p_end: float = 1 / 25,
    repeat_code: int | None = None,
    stoks_len: int = 150,
    seed: int = 0,
) -> Path:
    """A 2-head, 1-layer T2S in ``codebook``'s token space (default: the embedded tiny.en tokenizer's)."""
    from whisperspeech2.t2s_up_wds_mlang_enclm import TSARTransformer, Tunables

    codebook = tokenizer_codebook("default") if codebook is None else codebook
    torch.manual_seed(seed)
    model = TSARTransformer(
        depth=1, n_head=2, head_width=16, ffn_mult=1, ttoks_len=200, stoks_len=stoks_len,
        stoks_codes=codebook.shape[0], stoks_width=codebook.shape[1], tunables=Tunables(),
    )  # fmt: skip
    emb = model.embeddings.embedding
    with torch.no_grad():
        emb.set_frozen_embeddings(codebook)
        direction = torch.nn.functional.normalize(torch.randn(model.width), dim=0)
        model.decoder.ln_post.weight.zero_()  # every step's hidden state is `direction`
        model.decoder.ln_post.bias.copy_(direction)
        if repeat_code is not None:  # the projection lands on one code's embedding: it wins every step
            emb.hidden_to_emb.weight.zero_()
            emb.hidden_to_emb.bias.copy_(codebook[repeat_code] * 200)
        model.eval()
        scale = model.tunables.output_mult / (model.width / model.base_width)
        logits = emb.unembed(direction[None, None])[0, 0, : emb.codes].float() * scale
        end_logit = torch.logsumexp(logits, 0) + math.log(p_end / (1 - p_end))
        emb.special.weight[0] = direction * end_logit / scale
    model.train()
    model.save_model(path)
    return path


def hub_file(hf_home: Path, ref: str, source: Path) -> Path:
    """Put ``source`` where `hf download` would put ``org/repo:file`` in the cache under ``hf_home``."""
    repo, _, filename = ref.partition(":")
    rev = "e" * 40
    repo_dir = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(rev)
    target = repo_dir / "snapshots" / rev / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    return target
