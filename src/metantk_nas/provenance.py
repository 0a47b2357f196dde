"""What every result file records: config, code version, package versions, device, seed."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from metantk_nas import __version__

_PACKAGE_ROOT = Path(__file__).resolve().parent
_TRACKED_PACKAGES = ("torch", "opacus", "numpy", "scipy", "scikit-learn", "snakemake")


def source_digest() -> str:
    """sha256 over the package's Python sources and data files: changes whenever the code does."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_ROOT.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".json", ".yaml"} and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(_PACKAGE_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def git_revision() -> str | None:
    """The git commit of the checkout holding the package (``-dirty`` if modified), if any."""
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=_PACKAGE_ROOT, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev or None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that can change a result."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info() -> dict[str, Any]:
    """The compute device: GPU name and count when torch sees CUDA, else the CPU."""
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    if "torch" in sys.modules or _torch_importable():
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
        if torch.cuda.is_available():
            info["device"] = "cuda"
            info["gpu_name"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
            info["cuda"] = torch.version.cuda
        else:
            info["device"] = "cpu"
    return info


def _torch_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def collect(config: Any = None, seed: int | None = None) -> dict[str, Any]:
    """A provenance record to embed in a result file."""
    from metantk_nas.io import to_jsonable

    return {
        "metantk_nas_version": __version__,
        "git_revision": git_revision(),
        "source_sha256": source_digest(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "seed": seed,
        "config": to_jsonable(config),
        "packages": package_versions(),
        "device": device_info(),
    }
