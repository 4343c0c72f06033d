"""Pushing a packaged OIE model to the Hugging Face Hub; ``OIEPipeline.from_pretrained("user/repo")`` loads it back.

The repo is exactly the package directory (manifest, config, safetensors files, model card), pushed as one commit
that also removes files of an earlier push (``.gitattributes`` is kept). The files are checked against the manifest
first, so a damaged package is never published.
"""

from __future__ import annotations

import os
from pathlib import Path

from .format import read_manifest, verify_files

__all__ = ["push_packaged_model_to_hub"]


def push_packaged_model_to_hub(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
):
    """Upload a packaged model (a ``molora package-model`` directory) to ``repo_id`` in one commit.

    Args:
        directory (`str` or `os.PathLike`): the package directory.
        repo_id (`str`): ``"user/name"``; created if missing.
        token (`str`, *optional*): Hub token (default: the stored login).
        private (`bool`, *optional*): visibility of a newly created repo.
        revision (`str`, *optional*): branch to push to (created from ``main`` if missing).
        commit_message (`str`, *optional*): defaults to ``"Upload packaged OIE model (<dtype>)"``.

    Returns:
        `huggingface_hub.CommitInfo`: the commit.

    Raises:
        PackageIntegrityError: the package is damaged (nothing is uploaded).
    """
    from huggingface_hub import HfApi

    directory = Path(directory)
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(directory),
        commit_message=commit_message or f"Upload packaged OIE model ({manifest.get('dtype')})",
        revision=revision,
        delete_patterns="*",
    )
