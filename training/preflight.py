"""Check a ``stream_finetune`` config before ``tune run`` starts: the data, the tokenizer files and the
checkpoint must be there, or the user gets one line instead of a torchtune traceback minutes later."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dataengine.training.checkpoints import blocked_step_names, incomplete_note, latest_complete
from dataengine.training.shards import ShardError, resolve_shards


class PreflightError(ValueError):
    """A training config that cannot run; one line for the user."""


def _merge_overrides(cfg: Any, overrides: Sequence[str]) -> Any:
    """``tune run``'s override rules (torchtune 0.6.1 ``_merge_yaml_and_cli_args``) without importing
    torchtune (its import logs torchao warnings): ``~key`` removes a key, ``key=value`` sets one,
    ``key=path`` on a component sets its ``_component_``, ``None`` is null, ``max_filename`` a string."""
    from omegaconf import OmegaConf

    dotlist = []
    for arg in overrides:
        if arg.startswith("--"):
            raise PreflightError(f"{arg}: flags are not supported here; use key=value overrides")
        if arg.startswith("~"):
            parent, _, leaf = arg[1:].split("=")[0].rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            if node is None or leaf not in node:
                raise PreflightError(f"{arg}: no key {arg[1:]} in the config to remove")
            node.pop(leaf)
            continue
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise PreflightError(f"{arg}: overrides must be key=value")
        if key in cfg and OmegaConf.is_dict(cfg[key]) and "_component_" in cfg[key]:
            key += "._component_"
        value = "!!null" if value == "None" else f"!!str {value}" if "max_filename" in key else value
        dotlist.append(f"{key}={value}")
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))


def _missing(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value is OmegaConf's mandatory marker ``???`` (e.g. ``data`` in the 8B configs)."""
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in _missing(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if node == "???" else []


def load_run_config(config: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """The config as ``tune run`` sees it (YAML plus overrides), interpolations resolved."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = _merge_overrides(OmegaConf.load(config), overrides)
        missing = _missing(OmegaConf.to_container(cfg, resolve=False))
        if missing:
            raise PreflightError(
                f"{config}: {missing[0]} is not set (give {missing[0]}=... on the command line)"
            )
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except (OmegaConfBaseException, ValueError, OSError) as exc:
        if isinstance(exc, PreflightError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PreflightError(f"{config}: {first}") from None


def _hint(cfg: dict[str, Any]) -> str:
    return (
        " (make it with `dataengine train init-tiny DIR` and pass tiny_dir=DIR)" if "tiny_dir" in cfg else ""
    )


def _require_file(cfg: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and not Path(str(value)).expanduser().is_file():
        raise PreflightError(f"{key}: {value}: no such file{_hint(cfg)}")


def _checkpoint_files(files: Any) -> list[str]:
    if isinstance(files, dict):
        from torchtune.training import FormattedCheckpointFiles

        try:
            return FormattedCheckpointFiles.from_dict(files).build_checkpoint_filenames()
        except (ValueError, KeyError) as exc:
            raise PreflightError(f"checkpointer.checkpoint_files: {exc}") from None
    if isinstance(files, str):
        return [files]
    return [str(f) for f in files or []]


def check_run_config(config: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Raise PreflightError naming the first missing piece; return the resolved config when all is there.

    Checked: the dataset source (a build, published version or shard folder holding shards; ``hf://``
    sources are left to the run, which needs the network), the tokenizer's files, and the checkpoint
    files to start from (or, when resuming, a step folder in ``output_dir``)."""
    cfg = load_run_config(config, overrides)
    source = (cfg.get("dataset") or {}).get("source")
    if isinstance(source, str | Path) and not str(source).startswith("hf://"):
        try:
            resolve_shards(source)
        except ShardError as exc:
            raise PreflightError(f"data: {exc}") from None
    tokenizer = cfg.get("tokenizer") or {}
    _require_file(cfg, "tokenizer.path", tokenizer.get("path"))
    _require_file(cfg, "tokenizer.special_tokens_path", tokenizer.get("special_tokens_path"))
    checkpointer = cfg.get("checkpointer") or {}
    output_dir = Path(str(cfg.get("output_dir", "."))).expanduser()
    if output_dir.exists() and not output_dir.is_dir():
        raise PreflightError(f"output_dir: {output_dir} is a file, not a folder")
    if output_dir.is_dir() and (blocked := blocked_step_names(output_dir)):
        raise PreflightError(
            f"output_dir: {output_dir / blocked[0]} is not a folder: a checkpoint of that step could not be "
            "written there (move it away)"
        )
    if cfg.get("resume_from_checkpoint"):
        if latest_complete(output_dir) is None:
            raise PreflightError(f"resume_from_checkpoint: {incomplete_note(output_dir)}")
    elif "checkpoint_dir" in checkpointer:
        folder = Path(str(checkpointer["checkpoint_dir"])).expanduser()
        if not folder.is_dir():
            raise PreflightError(f"checkpointer.checkpoint_dir: {folder}: no such folder{_hint(cfg)}")
        for name in _checkpoint_files(checkpointer.get("checkpoint_files")):
            _require_file(cfg, "checkpointer.checkpoint_files", folder / name)
    return cfg
