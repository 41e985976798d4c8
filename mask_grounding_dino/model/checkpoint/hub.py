"""Hugging Face hub ids of whole detectors (``IDEA-Research/grounding-dino-tiny``).

A hub id names a ``GroundingDinoForObjectDetection`` repository; it resolves to a folder of
huggingface_hub's cache (``snapshot_download``), which then reads like any local
``save_pretrained`` folder. Only ``config.json`` and the weights are fetched. With
``HF_HUB_OFFLINE=1`` only the cache is used (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``~/.cache/huggingface/hub``), both read when the call is made.

A string is taken for a hub id only when it cannot be a local path: ``owner/name`` (one
``/``), no checkpoint suffix (``.pth``...), nothing at that path, and no local folder called
``owner``. So ``runs/modle.pth`` or ``runs/exp1`` (with ``runs/`` present) stay local paths
and fail as missing files, without a network look-up.
"""

from __future__ import annotations

import os
import re

from ...errors import CheckpointError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
#: Suffixes of model files: a name ending so is a local file, never a repository.
MODEL_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin", ".onnx", ".engine", ".trt", ".plan")
#: What ``read_hf_folder`` reads: the config and the weights (safetensors, whole or sharded).
_SAFETENSORS = ["config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
_PICKLED = ["config.json", "pytorch_model.bin"]
_TRUE = {"1", "on", "yes", "true"}


def looks_like_hub_id(path: str | os.PathLike) -> bool:
    """True for ``owner/name`` that cannot be a local path (see the module docstring)."""
    text = os.fspath(path)
    if not _HUB_ID.match(text) or text.lower().endswith(MODEL_SUFFIXES) or os.path.exists(text):
        return False
    return not os.path.isdir(text.split("/", 1)[0])


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> str:
    """The cache folder huggingface_hub uses, from the environment as it is now."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return constants.HF_HUB_CACHE


def download_hub_model(repo_id: str, key: str | None = None) -> str:
    """The local snapshot folder of hub repository ``repo_id`` (downloaded when online and not cached).

    Raises :class:`CheckpointError` (naming ``key``, the spec key that gave the id): not cached
    while offline, no such repository, or the hub unreachable.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HFValidationError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    offline, cache = hub_offline(), hub_cache_dir()
    try:
        folder = snapshot_download(repo_id, allow_patterns=_SAFETENSORS, cache_dir=cache, local_files_only=offline)
        if not offline and not any(name.endswith(".safetensors") for name in os.listdir(folder)):
            folder = snapshot_download(repo_id, allow_patterns=_PICKLED, cache_dir=cache)
        return folder
    except LocalEntryNotFoundError as exc:
        if offline:
            problem = (f"'{repo_id}' is not a local file or folder, and as a Hugging Face hub id it is not in the hub "
                       f"cache ({cache}); HF_HUB_OFFLINE=1 allows the cache only: run once with HF_HUB_OFFLINE unset "
                       "to download it, or give a folder saved with save_pretrained")
        else:
            problem = (f"'{repo_id}' is not a local file or folder, and the Hugging Face hub cannot be reached to "
                       f"download it ({_first_line(exc)})")
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError, HFValidationError) as exc:
        problem = (f"'{repo_id}' is neither a local file or folder nor a model the Hugging Face hub gives access to "
                   f"({exc.__class__.__name__}); check the path")
    except OSError as exc:
        problem = f"cannot download '{repo_id}' from the Hugging Face hub ({_first_line(exc)})"
    raise CheckpointError(f"{key}: {problem}" if key else problem)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0]}" if text else exc.__class__.__name__
