"""Tiny, randomly initialised TTS checkpoints built with the libraries' own classes, saved in their formats.

Real WhisperSpeech weights cannot be downloaded here. These stand in for them so that the library's own
loading and synthesis code runs end to end: ``whisperspeech2``'s T2S and S2A (``save_model``), a Vocos
vocoder (``config.yaml`` + ``pytorch_model.bin``, the layout of charactr/vocos-encodec-24khz) and
Encodec's 24 kHz model in torch.hub's checkpoint cache (Vocos builds it with ``pretrained=True``).

One change from pure random weights: a random T2S never ends its speech (it would always run into its
token limit), so its end-of-speech token is given a fixed logit through the decoder's final LayerNorm,
which makes it stop after a few dozen tokens like a trained one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent / "stubs"))
from torchaudio_standin import torchaudio_standin  # noqa: E402

ENCODEC_CHECKPOINT = "encodec_24khz-d7cc33bc.th"
VOCOS_REPO = "charactr/vocos-encodec-24khz"
T2S_TOKENS = 64
"""Semantic tokens (25/s) a tiny T2S can make: about 2.5 s of speech."""


def import_whisperspeech2():  # noqa: ANN201 - the module
    """``whisperspeech2.pipeline`` imported with the torchaudio stand-in (vocos imports torchaudio)."""
    with torchaudio_standin():
        import whisperspeech2.pipeline as pipeline
    return pipeline


def tiny_t2s(path: Path, eos_logit: float = 4.0) -> Path:
    """A 2-head, 1-layer ``TSARTransformer`` that ends its speech (p(end) ~ 1/20 per token)."""
    from whisperspeech2.t2s_up_wds_mlang_enclm import TSARTransformer, Tunables

    torch.manual_seed(0)
    model = TSARTransformer(
        depth=1, n_head=2, head_width=16, ffn_mult=1, ttoks_len=200, stoks_len=T2S_TOKENS, stoks_codes=1024,
        tunables=Tunables(),
    )  # fmt: skip
    with torch.no_grad():
        direction = torch.nn.functional.normalize(torch.randn(model.width), dim=0)
        model.decoder.ln_post.weight.zero_()  # every step's hidden state is `direction`...
        model.decoder.ln_post.bias.copy_(direction)
        model.embeddings.embedding.main.weight.normal_(0, 0.5)
        # ... so the end token (the first special code) always gets the same logit
        scale = model.tunables.output_mult / (model.width / model.base_width)
        model.embeddings.embedding.special.weight[0] = direction * eos_logit / scale
    model.save_model(path)
    return path


def tiny_s2a(path: Path) -> Path:
    """A 2-head, 1-layer ``SADelARTransformer`` with 2 Encodec quantizers and 192-wide speakers."""
    from whisperspeech2.s2a_delar_mup_wds_mlang import SADelARTransformer, Tunables

    torch.manual_seed(1)
    model = SADelARTransformer(
        depth=1, ctx_n=3 * T2S_TOKENS + 8, stoks_len=T2S_TOKENS + 2, stoks_codes=1025, spk_width=192,
        n_head=2, head_width=16, ffn_mult=1, quantizers=2, tunables=Tunables(),
    )  # fmt: skip
    with torch.no_grad():  # its init zeroes the output heads (uniform logits): give every layer weights
        for layer in model.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0, layer.in_features**-0.5)
    model.save_model(path)
    return path


def encodec_in_torch_hub(torch_home: Path) -> Path:
    """A random Encodec 24 kHz model where ``torch.hub`` keeps downloads (hash checked only then)."""
    from encodec import EncodecModel

    target = torch_home / "hub" / "checkpoints" / ENCODEC_CHECKPOINT
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(2)
    torch.save(EncodecModel.encodec_model_24khz(pretrained=False).state_dict(), target)
    return target


def tiny_vocos(folder: Path) -> Path:
    """``config.yaml`` + ``pytorch_model.bin`` of a 1-layer Vocos on Encodec features."""
    from vocos import Vocos

    config = {
        "feature_extractor": {
            "class_path": "vocos.feature_extractors.EncodecFeatures",
            "init_args": {"encodec_model": "encodec_24khz", "bandwidths": [1.5, 3.0, 6.0, 12.0]},
        },
        "backbone": {
            "class_path": "vocos.models.VocosBackbone",
            "init_args": {
                "input_channels": 128,
                "dim": 32,
                "intermediate_dim": 64,
                "num_layers": 1,
                "adanorm_num_embeddings": 4,
            },
        },  # fmt: skip
        "head": {
            "class_path": "vocos.heads.ISTFTHead",
            "init_args": {"dim": 32, "n_fft": 1280, "hop_length": 320, "padding": "same"},
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    torch.manual_seed(3)
    model = Vocos.from_hparams(str(folder / "config.yaml"))
    with torch.no_grad():  # a fresh Encodec's codebooks are zeros until k-means: every code would sound alike
        model.feature_extractor.codebook_weights.normal_(0, 1)
    # what from_pretrained reads: everything but the Encodec weights, which it takes from Encodec itself
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("feature_extractor.encodec.")}
    torch.save(state, folder / "pytorch_model.bin")
    return folder


def hub_snapshot(hf_home: Path, repo: str) -> Path:
    """The snapshot folder `hf download` fills for ``repo`` in the cache under ``hf_home``."""
    rev = "d" * 40
    repo_dir = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(rev)
    snapshot = repo_dir / "snapshots" / rev
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def offline_hub(home: Path, monkeypatch) -> None:  # noqa: ANN001 - pytest's MonkeyPatch
    """huggingface_hub offline, with its cache under ``home`` (its constants are read at import time, so
    both they and the environment are set): what a user's machine with a filled cache and no network has."""
    import huggingface_hub.constants as hub_constants

    for name, value in (
        ("HF_HUB_OFFLINE", True),
        ("HF_HOME", str(home)),
        ("HF_HUB_CACHE", str(home / "hub")),
    ):
        monkeypatch.setattr(hub_constants, name, value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
