"""``dataengine card|push|pull|verify``: dataset cards and versioned publishing (local folder or the Hub)."""

from __future__ import annotations

from pathlib import Path

import click

from dataengine.commands import UserError


def _target(repo: str) -> Path | None:
    """The local folder ``repo`` names, None for a Hub ``ORG/NAME``; PublishError for anything else."""
    from dataengine.publish.local import local_root

    return local_root(repo)


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--repo", "repo_id", help="Repository name to show in the card's loading examples.")
@click.option("--version", help="Version to show in the card (vX.Y.Z).")
def card(out: Path, repo_id: str | None, version: str | None) -> None:
    """Write the dataset card OUT/README.md and its plots OUT/plots/*.png from the manifest and recipe."""
    from dataengine.publish import PublishError
    from dataengine.publish.card import write_card

    try:
        path = write_card(out, repo_id, version)
    except PublishError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"wrote {path} and {path.parent / 'plots'}/*.png")


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--repo", required=True, help="ORG/NAME on the Hub, or file:///dir (or a path) for a local repo."
)
@click.option("--version", required=True, help="Version tag, vX.Y.Z.")
@click.option("--endpoint", envvar="HF_ENDPOINT", help="Hub URL (default: huggingface.co or $HF_ENDPOINT).")
@click.option("--private", is_flag=True, help="Create the Hub repo as private.")
def push(out: Path, repo: str, version: str, endpoint: str | None, private: bool) -> None:
    """Publish the build OUT as one commit (shards, manifest, card, plots) tagged VERSION.

    The token comes from $HF_TOKEN or `hf auth login`. Re-pushing the same build is a no-op; a different
    build under an existing version is refused.
    """
    from dataengine.publish import PublishError

    try:
        root = _target(repo)
        if root is not None:
            from dataengine.publish.local import push_local

            message = push_local(out, root, version)
        else:
            from dataengine.publish.hub import push_hub

            message = push_hub(out, repo, version, endpoint=endpoint, private=private)
    except PublishError as exc:
        raise UserError(str(exc)) from None
    click.echo(message)


@click.command()
@click.argument("repo")
@click.option("--version", required=True, help="Version tag, vX.Y.Z.")
@click.option(
    "--out", type=click.Path(path_type=Path), help="Destination folder (default: build/<NAME>-<VERSION>)."
)
@click.option("--endpoint", envvar="HF_ENDPOINT", help="Hub URL (default: huggingface.co or $HF_ENDPOINT).")
def pull(repo: str, version: str, out: Path | None, endpoint: str | None) -> None:
    """Fetch VERSION of REPO (ORG/NAME or file:///dir) and verify it against its manifest hashes."""
    from dataengine.publish import PublishError
    from dataengine.publish.verify import verify_build

    try:
        root = _target(repo)
        dest = out or Path("build") / f"{(root.name if root else repo.split('/')[-1])}-{version}"
        if root is not None:
            from dataengine.publish.local import pull_local

            pull_local(root, version, dest)
        else:
            from dataengine.publish.hub import pull_hub

            pull_hub(repo, version, dest, endpoint=endpoint)
        report = verify_build(dest)
    except PublishError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"pulled {repo}@{version} into {dest}; {report.summary()}")


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
def verify(out: Path) -> None:
    """Recompute every sample's hash from OUT's shards and compare with its manifest (and checksums.json)."""
    from dataengine.publish import PublishError
    from dataengine.publish.verify import verify_build

    try:
        report = verify_build(out)
    except PublishError as exc:
        raise UserError(str(exc)) from None
    if not report.ok:
        raise UserError(report.summary())
    click.echo(report.summary())
    click.echo(_numerics_line(out))


def _numerics_line(out: Path) -> str:
    """Under which condition the build's bytes can be reproduced (from build.json's ``numerics``)."""
    import json

    from dataengine.numerics import reproducibility_note

    try:
        info = json.loads((out / "build.json").read_text(encoding="utf-8")).get("numerics")
    except (OSError, ValueError, AttributeError):
        info = None
    return reproducibility_note(info)
