"""The discrete architecture: 3 nodes × 2 ``(op, input)`` pairs for the normal and the reduction cell.

Parses the official string form (``Genotype(normal=[[('sep_conv_3x3', 0), ...]], normal_concat=[2, 3, 4], ...)``)
and MetaNAS's form (double quotes, ``range(2, 5)``, pool names without ``BN``) without ``eval``:
the text is split into its keyword arguments and each value is read with :func:`ast.literal_eval`.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from metantk_nas.space.primitives import CONCAT, PRIMITIVES, STEPS, canonical_op

Pair = tuple[str, int]
Cell = tuple[tuple[Pair, Pair], ...]

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_RANGE = re.compile(r"^range\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)$")


def _check_cell(kind: str, nodes: Any) -> Cell:
    """Validate one cell description and return it as nested tuples with canonical op names."""
    if not isinstance(nodes, (list, tuple)) or len(nodes) != STEPS:
        raise ValueError(f"genotype {kind}: expected {STEPS} nodes, got {nodes!r}")
    cell = []
    for offset, pairs in enumerate(nodes):
        node = offset + 2
        where = f"genotype {kind} node {node}"
        if not isinstance(pairs, (list, tuple)) or len(pairs) != 2:
            raise ValueError(f"{where}: expected 2 (op, input) pairs, got {pairs!r}")
        checked = []
        for index, pair in enumerate(pairs):
            entry = f"{where} pair {index} {pair!r}"
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"{entry}: expected an (op, input) pair")
            op, source = pair
            if not isinstance(op, str) or canonical_op(op) not in PRIMITIVES:
                raise ValueError(f"{entry}: unknown operation {op!r}; expected one of {', '.join(PRIMITIVES)}")
            if isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < node:
                raise ValueError(f"{entry}: input must be an integer in [0, {node - 1}], got {source!r}")
            checked.append((canonical_op(op), source))
        if checked[0][1] == checked[1][1]:
            raise ValueError(f"{where}: the two inputs must differ, got {pairs!r}")
        cell.append((checked[0], checked[1]))
    return tuple(cell)


def _check_concat(key: str, value: Any) -> None:
    if not isinstance(value, (list, tuple, range)) or list(value) != list(CONCAT):
        raise ValueError(f"genotype {key}: expected {list(CONCAT)}, got {value!r}")


def _split_arguments(body: str) -> list[str]:
    """Split ``a=..., b=...`` at the commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for position, char in enumerate(body):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"genotype string: unbalanced {char!r} at position {position}")
        elif char == "," and depth == 0:
            parts.append(body[start:position])
            start = position + 1
    if depth or quote:
        raise ValueError("genotype string: unbalanced brackets or quotes")
    parts.append(body[start:])
    return [part.strip() for part in parts if part.strip()]


def _literal(key: str, text: str) -> Any:
    match = _RANGE.match(text)
    if match:
        return list(range(int(match.group(1)), int(match.group(2))))
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise ValueError(f"genotype {key}: not a literal value: {text!r} ({error})") from None


@dataclass(frozen=True)
class Genotype:
    """An immutable, validated cell pair; ``str()`` gives the official string form."""

    normal: Cell
    reduce: Cell

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", _check_cell("normal", self.normal))
        object.__setattr__(self, "reduce", _check_cell("reduce", self.reduce))

    @classmethod
    def parse(cls, text: str) -> Genotype:
        """Read the official or the MetaNAS string form (never evaluated as code)."""
        stripped = text.strip()
        if not (stripped.startswith("Genotype(") and stripped.endswith(")")):
            raise ValueError(f"genotype string must look like 'Genotype(normal=..., ...)', got {text[:60]!r}")
        values: dict[str, Any] = {}
        for argument in _split_arguments(stripped[len("Genotype("):-1]):
            key, sep, value = argument.partition("=")
            key = key.strip()
            if not sep or key not in _FIELDS:
                raise ValueError(f"genotype string: unexpected argument {argument[:40]!r}; "
                                 f"expected {', '.join(_FIELDS)}")
            if key in values:
                raise ValueError(f"genotype string: {key} given twice")
            values[key] = _literal(key, value.strip())
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genotype:
        """Build from ``{"normal", "normal_concat", "reduce", "reduce_concat"}`` (the JSON form)."""
        if not isinstance(data, dict):
            raise ValueError(f"genotype: expected a mapping with keys {', '.join(_FIELDS)}, got {type(data).__name__}")
        missing = [key for key in _FIELDS if key not in data]
        if missing:
            raise ValueError(f"genotype: missing {', '.join(missing)}")
        extra = sorted(set(data) - set(_FIELDS))
        if extra:
            raise ValueError(f"genotype: unexpected keys {', '.join(extra)}")
        _check_concat("normal_concat", data["normal_concat"])
        _check_concat("reduce_concat", data["reduce_concat"])
        return cls(normal=data["normal"], reduce=data["reduce"])

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"genotype JSON: {error}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: pairs as ``[op, input]`` lists."""
        return {
            "normal": [[list(pair) for pair in node] for node in self.normal],
            "normal_concat": list(CONCAT),
            "reduce": [[list(pair) for pair in node] for node in self.reduce],
            "reduce_concat": list(CONCAT),
        }

    def to_json(self) -> str:
        """Compact one-line JSON text."""
        return json.dumps(self.to_dict())

    def cell(self, reduction: bool) -> Cell:
        """The reduction cell when ``reduction`` else the normal cell."""
        return self.reduce if reduction else self.normal

    def __str__(self) -> str:
        def fmt(cell: Cell) -> str:
            return "[" + ", ".join("[" + ", ".join(f"('{op}', {j})" for op, j in node) + "]" for node in cell) + "]"

        concat = list(CONCAT)
        return (f"Genotype(normal={fmt(self.normal)}, normal_concat={concat}, "
                f"reduce={fmt(self.reduce)}, reduce_concat={concat})")
