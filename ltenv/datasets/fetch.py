"""Download a dataset source into a folder: git (the ``git`` CLI, shallow and sparse where the server allows)
or a Hugging Face dataset repo (``huggingface_hub.snapshot_download``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ltenv.datasets.registry import DatasetError, GitSource, HFSource


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never stop for a password prompt in a batch job; fail with git's message instead.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_ASKPASS", "true")
    return env


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        "git",
        "-C",
        str(repo),
        # A stalled transfer (below 1 kB/s for a minute) fails instead of hanging a job forever.
        "-c",
        "http.lowSpeedLimit=1000",
        "-c",
        "http.lowSpeedTime=60",
        "-c",
        "advice.detachedHead=false",
        *args,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_git_env(), stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise DatasetError("the git command is not installed; it is needed to pull git datasets") from None
    if check and proc.returncode != 0:
        raise DatasetError(f"git {' '.join(args[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def fetch_git(source: GitSource, dest: Path) -> str:
    """Check ``source`` out into ``dest`` (only ``source.subdir`` when set) and return the commit it got.

    A pinned commit is fetched by id with depth 1 (GitHub and git >= 2.x servers allow it); when the server
    refuses, ``source.ref`` (or the default branch) is fetched and must contain the commit.
    """
    dest.mkdir(parents=True)
    _git(dest, "init", "-q")
    _git(dest, "remote", "add", "origin", source.url)
    if source.subdir:
        _git(dest, "sparse-checkout", "set", "--no-cone", f"/{source.subdir}/")
    fetch = ["fetch", "-q", "--no-tags", "--filter=blob:none", "origin"]
    if source.commit:
        by_id = _git(dest, *fetch[:-1], "--depth=1", "origin", source.commit, check=False)
        if by_id.returncode != 0:
            branch = _git(dest, *fetch, source.ref or "HEAD", check=False)
            if branch.returncode != 0:
                raise DatasetError(
                    f"git fetch {source.url}: commit {source.commit} could not be fetched "
                    f"({by_id.stderr.strip().splitlines()[-1] if by_id.stderr.strip() else 'refused'}), "
                    f"nor {source.ref or 'the default branch'}: {branch.stderr.strip()}"
                )
            have = _git(dest, "cat-file", "-e", f"{source.commit}^{{commit}}", check=False)
            if have.returncode != 0:
                raise DatasetError(
                    f"git fetch {source.url}: the server has no commit {source.commit} "
                    f"(not fetchable by id, and not in {source.ref or 'the default branch'}); "
                    "the pin is wrong or the history was rewritten: fix the registry entry's source.commit"
                )
        rev = source.commit
    else:
        _git(dest, *fetch[:-1], "--depth=1", "origin", source.ref or "HEAD")
        rev = _git(dest, "rev-parse", "FETCH_HEAD").stdout.strip()
    _git(dest, "checkout", "-q", "--detach", rev)
    if source.subdir and not (dest / source.subdir).is_dir():
        raise DatasetError(f"git {source.url} at {rev}: no folder {source.subdir!r}")
    shutil.rmtree(dest / ".git")
    return rev


def hf_endpoint(source: HFSource) -> str:
    return (source.endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def fetch_hf(source: HFSource, dest: Path) -> str:
    """Download ``source`` (only ``source.subdir`` when set) into ``dest``; return the commit it resolved to."""
    try:
        from huggingface_hub import HfApi, snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    except ImportError:  # pragma: no cover - datasets depends on it
        raise DatasetError("huggingface_hub is not installed: pip install huggingface_hub") from None
    endpoint = hf_endpoint(source)
    where = f"{endpoint}/datasets/{source.repo}"
    try:
        # Resolve a branch to its commit first, so every file comes from the same revision.
        sha = HfApi(endpoint=endpoint).dataset_info(source.repo, revision=source.revision).sha
        dest.mkdir(parents=True)
        snapshot_download(
            source.repo,
            repo_type="dataset",
            revision=sha,
            local_dir=dest,
            allow_patterns=[f"{source.subdir}/**"] if source.subdir else None,
            endpoint=endpoint,
        )
    except OfflineModeIsEnabled:
        raise DatasetError(
            f"{where}: HF_HUB_OFFLINE is set, so nothing can be downloaded; unset it or use --offline"
        ) from None
    except HfHubHTTPError as e:
        raise DatasetError(f"{where} (revision {source.revision or 'main'}): {e}") from None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{where}: download failed: {e}") from None
    shutil.rmtree(dest / ".cache", ignore_errors=True)  # huggingface_hub's download metadata
    if source.subdir and not (dest / source.subdir).is_dir():
        raise DatasetError(f"{where} at {sha}: no folder {source.subdir!r}")
    return str(sha)


def fetch(source: GitSource | HFSource, dest: Path) -> str:
    """Download ``source`` into ``dest`` (which must not exist); return the resolved revision."""
    if isinstance(source, GitSource):
        return fetch_git(source, dest)
    return fetch_hf(source, dest)
