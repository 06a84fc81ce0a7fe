"""Command-line flags generated from a typed dataclass config.

Each field of the dataclass is one flag: ``--field-name`` unless its metadata names another
(``flag="--no-switch"``, or a bare name for a positional argument), the help text from its
metadata, choices from a ``Literal`` annotation, values parsed by the metadata's ``parse``
function or by the annotated scalar type. Booleans are switches: a ``True`` default gives a
``--no-...`` flag that turns the option off. The config stays the single source of truth:
adding a field adds the flag, with its help.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

__all__ = ["add_dataclass_flags", "argparse_type", "config_from_args", "given_fields"]

T = TypeVar("T")


def _parts(annotation: Any) -> list[Any]:
    """The members of a union annotation without ``None`` (the annotation itself otherwise)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _choices(annotation: Any) -> tuple[Any, ...] | None:
    for part in _parts(annotation):
        if typing.get_origin(part) is Literal:
            return typing.get_args(part)
    return None


def _value_type(annotation: Any) -> Callable[[str], Any]:
    parts = _parts(annotation)
    if len(parts) == 1 and parts[0] in (int, float):
        return parts[0]
    return str


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` with its ``ValueError`` turned into argparse's one-line usage error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _help(text: str, default: Any) -> str:
    text = text.replace("%", "%%")  # argparse %-formats help strings
    if default not in (None, {}, ()) and "default" not in text:
        text += f" (default: {str(default).replace('%', '%%')})"
    return text


def add_dataclass_flags(parser: argparse.ArgumentParser, config: type) -> None:
    """Add one flag per field of the dataclass ``config`` to ``parser``.

    Args:
        parser: the (sub)parser.
        config: a dataclass whose fields carry ``metadata={"help": ..., "flag": ...,
            "parse": ..., "choices": ..., "metavar": ...}`` (built by
            :func:`lightning_pinn.run._config.option`).

    Raises:
        ValueError: a field without a help text.
    """
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
        meta = field.metadata
        if not meta.get("help"):
            raise ValueError(f"{config.__name__}.{field.name} has no help text")
        default = _default(field)
        flag = meta.get("flag") or "--" + field.name.replace("_", "-")
        if not flag.startswith("-"):
            parser.add_argument(field.name, help=_help(meta["help"], None))
            continue
        annotation = hints[field.name]
        if annotation is bool:
            action = "store_false" if default else "store_true"
            parser.add_argument(
                flag, dest=field.name, action=action, help=_help(meta["help"], None)
            )
            continue
        parse = meta.get("parse") or _value_type(annotation)
        parser.add_argument(
            flag,
            dest=field.name,
            action=_Given,
            type=argparse_type(parse),
            default=default,
            choices=meta.get("choices") or _choices(annotation),
            metavar=meta.get("metavar") or flag.lstrip("-").replace("-", "_").upper(),
            help=_help(meta["help"], default),
        )


GIVEN = "given_fields"
"""The namespace attribute listing the fields whose flag was on the command line."""


class _Given(argparse.Action):
    """Store the value (as argparse's default action does) and record the field as given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, GIVEN, {*getattr(namespace, GIVEN, ()), self.dest})


def given_fields(args: argparse.Namespace) -> frozenset[str]:
    """The fields whose value flag was on the command line (switches are not recorded: a
    switch that is on differs from its default), e.g. to let them override a recipe."""
    return frozenset(getattr(args, GIVEN, ()))


def config_from_args(config: type[T], args: argparse.Namespace) -> T:
    """Build the dataclass ``config`` from the parsed flags of :func:`add_dataclass_flags`."""
    return config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config)})
