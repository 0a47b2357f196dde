"""Settings classes written once: a dataclass field is the key, its type, default, range and help text.

Every stage's settings (``SearchConfig``, ``TrainConfig``, ``EvalConfig``, ``TheoryConfig``) and the
workflow config's own entries are frozen dataclasses deriving from :class:`Options`, their fields made
with :func:`option`. From that one definition come the validation (:meth:`Options.from_dict`: unknown
keys, types, choices and ranges, each error naming the key), the command-line flags
(:meth:`Options.add_arguments`), the workflow's JSON schema (:meth:`Options.json_schema`) and the
tables of ``config/README.md`` (:meth:`Options.markdown_rows`). Adding a setting is one line.

Infinity is written ``inf`` wherever text carries a number (JSON settings files, command lines);
YAML's own ``.inf`` is read too.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

#: How infinity is spelled in JSON files and on the command line.
INF = "inf"


def option(default: Any, help: str, *, choices: Sequence[Any] | None = None, minimum: float | None = None,
           exclusive_minimum: float | None = None, maximum: float | None = None,
           exclusive_maximum: float | None = None, workflow: bool = True, flag: str | None = None,
           doc: str | None = None) -> Any:
    """A settings field.

    Args:
        default: the default (the paper's / official code's value); tuples for lists.
        help: one line for ``--help``, the schema ``description`` and the documentation.
        choices: allowed values (also of each item of a tuple field).
        minimum, exclusive_minimum, maximum, exclusive_maximum: the range of a number (or of each item).
        workflow: whether the workflow config sets it (False: run identity such as seed or cells,
            or a machine setting such as the device, which the workflow fills in itself).
        flag: the command-line flag when not ``--key-name``.
        doc: the documentation's "default" cell when the default needs words (e.g. per setting).
    """
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "minimum": minimum,
                "exclusive_minimum": exclusive_minimum, "maximum": maximum, "exclusive_maximum": exclusive_maximum,
                "workflow": workflow, "flag": flag, "doc": doc}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class _Kind:
    """What a field holds: ``base`` (int, float, str, bool) alone or as a tuple, maybe None."""

    base: type
    is_tuple: bool
    optional: bool


def _kind(annotation: Any) -> _Kind:
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional, (annotation,) = True, members
        origin = typing.get_origin(annotation)
    if origin is tuple:
        return _Kind(typing.get_args(annotation)[0], True, optional)
    return _Kind(annotation, False, optional)


class Options:
    """Base of every settings class (a frozen dataclass whose fields are made with :func:`option`)."""

    #: Name used in messages and documentation (e.g. "search").
    section: ClassVar[str] = "settings"

    # ------------------------------------------------------------------ reading

    def __post_init__(self) -> None:
        """Every field converted to its type and checked against its choices and range, then :meth:`check`."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _checked(f.name, getattr(self, f.name), _kind(hints[f.name]), f.metadata)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Rules between fields (raise ``ValueError`` naming the key); none by default."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str | None = None) -> Any:
        """Build from a mapping (a config section, a settings file, a checkpoint); every error names the key.

        Args:
            values: key -> value; missing keys take their defaults.
            source: where the values came from (a file name), named in errors.
        """
        where = source or f"{cls.section} settings"
        if not isinstance(values, Mapping):
            raise ValueError(f"{where}: expected a mapping of {cls.section} keys, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys: {sorted(names)}")
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (tuples as lists, infinity as ``"inf"``)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Any:
        """A copy with some settings changed (checked again)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    # ------------------------------------------------------------------ command line

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
        """One flag per field (default ``None`` = not given, so a config file's value stays)."""
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            kind, meta = _kind(hints[f.name]), f.metadata
            flag = meta["flag"] or "--" + f.name.replace("_", "-")
            text = f"{meta['help']} (default: {_text(f.default)})"
            if kind.base is bool:
                parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
                continue
            if kind.is_tuple:  # space- or comma-separated items, converted and checked by from_dict
                parser.add_argument(flag, dest=f.name, nargs="+", default=None, help=text, metavar="ITEM",
                                    action=_ListAction, item_type=kind.base)
                continue
            parser.add_argument(flag, dest=f.name, type=kind.base, default=None, help=text,
                                choices=meta["choices"], metavar=None if meta["choices"] else f.name.upper())

    @classmethod
    def values_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The fields given on the command line."""
        return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                if getattr(args, f.name, None) is not None}

    @classmethod
    def from_args(cls, args: argparse.Namespace, preset: Mapping[str, Any] | None = None) -> Any:
        """What a command line resolves to: defaults < ``--config FILE`` < ``preset`` < the flags given."""
        from metantk_nas.io import read_settings_section

        values = dict(read_settings_section(args.config, cls.section)) if args.config else {}
        values.update(preset or {})
        values.update(cls.values_from_args(args))
        return cls.from_dict(values, source=str(args.config) if args.config else "command line")

    # ------------------------------------------------------------------ schema and documentation

    @classmethod
    def workflow_keys(cls) -> list[str]:
        """Fields the workflow config sets."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata["workflow"]]

    @classmethod
    def json_schema(cls, keys: Sequence[str] | None = None, defaults: bool = True) -> dict[str, Any]:
        """A JSON-schema object for ``keys`` (default: the workflow keys)."""
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        properties = {}
        for name in keys if keys is not None else cls.workflow_keys():
            field = fields[name]
            kind, meta = _kind(hints[name]), field.metadata
            item = _item_schema(kind.base, meta)
            node = {"type": "array", "items": item} if kind.is_tuple else dict(item)
            if kind.optional:
                node = {"anyOf": [node, {"type": "null"}]}
            node = {"description": meta["help"], **node}
            if defaults:
                node["default"] = _schema_value(field.default)
            properties[name] = node
        return {"type": "object", "additionalProperties": False, "properties": properties}

    @classmethod
    def markdown_rows(cls, keys: Sequence[str] | None = None) -> list[str]:
        """``| key | default | meaning |`` rows of ``keys`` (default: the workflow keys)."""
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        rows = []
        for name in keys if keys is not None else cls.workflow_keys():
            field, kind = fields[name], _kind(hints[name])
            meta = field.metadata
            default = meta["doc"] or f"`{_text(field.default)}`"
            text = f"{meta['help']}{_range_text(kind, meta)}".replace("|", "\\|")
            rows.append(f"| `{name}` | {default} | {text} |")
        return rows


# ---------------------------------------------------------------------- helpers


class _ListAction(argparse.Action):
    """``--ops a,b c`` -> ``("a", "b", "c")``, each item converted to the field's type."""

    def __init__(self, *args: Any, item_type: type = str, **kwargs: Any) -> None:
        self.item_type = item_type
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        items = [item for value in values for item in str(value).split(",") if item]
        try:
            setattr(namespace, self.dest, tuple(self.item_type(item) for item in items))
        except ValueError:
            parser.error(f"argument {option_string}: expected {self.item_type.__name__} values, got {values}")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return INF if value > 0 else "-" + INF
    return value


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(_text(v) for v in value) if value else "none"
    if isinstance(value, float) and math.isinf(value):
        return INF
    return str(value)


def _schema_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_schema_value(v) for v in value]
    return value


def _item_schema(base: type, meta: Mapping[str, Any]) -> dict[str, Any]:
    if meta["choices"] is not None:
        return {"enum": list(meta["choices"])}
    node: dict[str, Any] = {"type": {int: "integer", float: "number", str: "string", bool: "boolean"}[base]}
    for key, schema_key in (("minimum", "minimum"), ("exclusive_minimum", "exclusiveMinimum"),
                            ("maximum", "maximum"), ("exclusive_maximum", "exclusiveMaximum")):
        if meta[key] is not None:
            node[schema_key] = meta[key]
    return node


def _range_text(kind: _Kind, meta: Mapping[str, Any]) -> str:
    if meta["choices"] is not None:
        return f"; one of {', '.join(f'`{c}`' for c in meta['choices'])}"
    bounds = [f"≥ {meta['minimum']}" if meta["minimum"] is not None else None,
              f"> {meta['exclusive_minimum']}" if meta["exclusive_minimum"] is not None else None,
              f"≤ {meta['maximum']}" if meta["maximum"] is not None else None,
              f"< {meta['exclusive_maximum']}" if meta["exclusive_maximum"] is not None else None]
    bounds = [b for b in bounds if b]
    return f" ({'each ' if kind.is_tuple else ''}{', '.join(bounds)})" if bounds else ""


def _describe(kind: _Kind, meta: Mapping[str, Any]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    what = f"one of {list(meta['choices'])}" if meta["choices"] is not None else names[kind.base]
    bounds = _range_text(_Kind(kind.base, False, False), {**meta, "choices": None}).strip(" ()")
    what = f"{what} {bounds}" if bounds else what
    if kind.is_tuple:
        what = what.replace("one of", "values from").replace("an integer", "integers").replace("a number", "numbers")
        what = f"a list of {what}"
    return what + (" or null" if kind.optional else "")


def _checked(name: str, value: Any, kind: _Kind, meta: Mapping[str, Any]) -> Any:
    """``value`` converted to the field's type and checked against its choices and range."""
    def fail() -> ValueError:
        return ValueError(f"key {name!r} must be {_describe(kind, meta)}, got {value!r}")

    if value is None:
        if kind.optional:
            return None
        raise fail()
    if kind.is_tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise fail()
        items = [_scalar(v, kind.base) for v in value]
        if any(item is _BAD or not _in_range(item, meta) for item in items):
            raise fail()
        return tuple(items)
    item = _scalar(value, kind.base)
    if item is _BAD or not _in_range(item, meta):
        raise fail()
    return item


_BAD = object()


def _scalar(value: Any, base: type) -> Any:
    if base is bool:
        return value if isinstance(value, bool) else _BAD
    if isinstance(value, bool):
        return _BAD
    if base is int:
        return value if isinstance(value, int) else _BAD
    if base is float:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and value.strip().lower().lstrip("+").replace(".inf", INF) in (INF, "-" + INF):
            return float(value.strip().lower().replace(".inf", INF))
        return _BAD
    return value if isinstance(value, base) else _BAD


def _in_range(value: Any, meta: Mapping[str, Any]) -> bool:
    if meta["choices"] is not None and value not in meta["choices"]:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isnan(value):
            return False
        checks = ((meta["minimum"], lambda b: value >= b), (meta["exclusive_minimum"], lambda b: value > b),
                  (meta["maximum"], lambda b: value <= b), (meta["exclusive_maximum"], lambda b: value < b))
        return all(bound is None or test(bound) for bound, test in checks)
    return True
