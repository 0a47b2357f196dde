"""Published architectures, stored as JSON data files under ``space/zoo/<family>/<name>.json``.

Each file holds ``name``, ``source`` (where the string was read), ``setting`` (what it was searched
for) and ``genotype`` (the string exactly as published, parsed on load).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metantk_nas.io import read_json
from metantk_nas.space.genotype import Genotype

ZOO_DIR = Path(__file__).with_name("zoo")


def list_zoo() -> list[str]:
    """Names of all zoo architectures (``family/name``), sorted."""
    return sorted(path.relative_to(ZOO_DIR).with_suffix("").as_posix() for path in ZOO_DIR.rglob("*.json"))


def zoo_entry(name: str) -> dict[str, Any]:
    """The raw data of zoo architecture ``name``."""
    path = ZOO_DIR / f"{name}.json"
    if name not in list_zoo():
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(list_zoo())}")
    return read_json(path)


def _genotype_from_value(value: Any, where: str) -> Genotype:
    try:
        if isinstance(value, str):
            return Genotype.parse(value)
        if isinstance(value, dict) and "genotype" in value:
            return _genotype_from_value(value["genotype"], where)
        if isinstance(value, dict):
            return Genotype.from_dict(value)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    raise ValueError(f"{where}: expected a genotype string, a genotype mapping or an object with key 'genotype'")


def load_genotype(name_or_path: str | Path) -> Genotype:
    """Load a zoo architecture by name, or a file holding a genotype.

    A file may be JSON (the :meth:`Genotype.to_dict` form, or an object whose ``genotype`` key holds
    that form or a genotype string, such as a zoo entry or the search's ``genotype.json``) or plain
    text with the official ``Genotype(...)`` string.
    """
    text = str(name_or_path)
    if text in list_zoo():
        return _genotype_from_value(zoo_entry(text), f"zoo architecture {text}")
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"{text}: neither a zoo architecture ({', '.join(list_zoo())}) nor a file")
    try:
        content = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file; expected a genotype JSON or 'Genotype(...)' text") from None
    if content.startswith("Genotype("):
        return _genotype_from_value(content, str(path))
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: neither a 'Genotype(...)' string nor valid JSON ({error})") from None
    return _genotype_from_value(data, str(path))
