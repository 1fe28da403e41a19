"""One command-line convention for every experiment: argparse options built from a config dataclass.

A script declares a frozen config dataclass, a ``main(cfg)`` that runs it, and::

    def cli(argv: list[str] | None = None) -> int:
        return rec_jax.cli.main(Config, main, argv, __doc__)

    if __name__ == "__main__":
        sys.exit(cli())

Every field becomes one option, spelt ``--field-name``; the field's trailing
``# comment`` in the class source (or ``field(metadata={"help": ...})``) is its help,
shown with its default by ``--help``. By type:

* ``bool``: ``--x`` / ``--no-x``;
* ``int``, ``float``, ``str``, ``Path`` (any one-argument constructor): ``--x VALUE``;
* ``X | None``: as ``X``, and the word ``None`` gives None;
* ``Literal[a, b]``: ``--x {a,b}`` (anything else is a usage error);
* ``tuple[X, ...]`` / ``list[X]``: ``--x V1 V2 ...`` (``tuple[X, Y]``: exactly two);
* a field without a default: a positional argument.

Scripts that start from a named preset pass ``overrides=TrainConfig``: every field of
that dataclass (but those in ``skip`` and those the script's own config declares)
becomes a flag too, whose absence keeps the preset's value; ``main`` then calls
``run(cfg, changes)`` with the dict of the overrides given (see :func:`apply_overrides`).
A mapping ``{name: ConfigClass}`` instead of one class makes subcommands.

Errors: a ``ValueError`` or ``FileNotFoundError`` from building the config or from the
run prints ONE line ``error: ...`` on stderr and returns exit code 2 (``error_code``);
a usage error (unknown option, bad value, bad choice) is one ``error: ...`` line and
exit code 2 too; Ctrl-C prints ``interrupted`` and returns 130. The run itself must
not leave half-written output behind (``rec_jax.runs.staged_run_dir``).

Standard library only (no tyro), and nothing here imports JAX: a script may still set
``XLA_FLAGS`` after importing this module.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

_COMMAND = "_command"  # namespace attribute of the chosen subcommand


def _field_comments(cls) -> dict[str, str]:
    """``name: type = default  # comment`` -> {name: comment}, read from the class source (and its bases')."""
    comments: dict[str, str] = {}
    for klass in reversed(getattr(cls, "__mro__", (cls,))):
        if klass is object:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        comments.update(re.findall(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+)$", source, flags=re.M))
    return comments


def _hints(cls) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: fall back to the raw ones
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _split_optional(tp) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True
    return tp, False


def _converter(kind, optional: bool):
    """``str -> value`` for argparse; named like the kind so that its errors read 'invalid int value'."""
    if isinstance(kind, str) or kind in (Any, inspect.Parameter.empty):  # an unresolved annotation
        kind = str

    def convert(text: str):
        if optional and text == "None":
            return None
        return kind(text)

    convert.__name__ = getattr(kind, "__name__", "value")
    return convert


def _metavar(kind) -> str:
    if kind is Path:
        return "PATH"
    return getattr(kind, "__name__", "VALUE").upper()


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _show(value) -> str:
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, (tuple, list)):
        return " ".join(map(_show, value)) if value else "()"
    return str(value)


def _option(field: dataclasses.Field, tp) -> dict[str, Any]:
    """argparse keywords (type, nargs, choices, metavar, action) of one field's type."""
    kind, optional = _split_optional(tp)
    origin = typing.get_origin(kind)
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        choices = list(typing.get_args(kind))
        convert = _converter(type(choices[0]), optional)
        return {"type": convert, "choices": choices + ([None] if optional else []),
                "metavar": "{" + ",".join(map(str, choices)) + "}"}
    if origin in (tuple, list):
        args = typing.get_args(kind)
        if origin is tuple and args and args[-1] is not Ellipsis:
            nargs: Any = len(args)
            elem = args[0]
        else:
            nargs, elem = "*", (args[0] if args else str)
        elem, _ = _split_optional(elem)
        return {"type": _converter(elem, False), "nargs": nargs, "metavar": _metavar(elem)}
    return {"type": _converter(kind, optional), "metavar": _metavar(kind)}


def add_dataclass_options(parser, cls, skip: tuple[str, ...] = (), *, as_overrides: bool = False,
                          title: str | None = None) -> None:
    """Add one option per field of ``cls`` to ``parser`` (the convention in the module docstring).

    Options a command line does not give are absent from the parsed namespace (never
    defaulted there), so a dataclass default (or, with ``as_overrides``, a preset's value)
    applies. A field without a default becomes a positional argument.
    """
    comments = _field_comments(cls)
    hints = _hints(cls)
    if as_overrides:
        parser = parser.add_argument_group(
            title or f"{cls.__name__} overrides",
            f"every {cls.__name__} field; one not given keeps the preset's value")
    elif title:
        parser = parser.add_argument_group(title)
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.init:
            continue
        help_text = field.metadata.get("help") or comments.get(field.name, "")
        default = _default(field)
        if default is not dataclasses.MISSING and not as_overrides and not (
                default is None and re.search(r"\bdefault\b", help_text)):  # the comment says what None means
            help_text = f"{help_text} (default: {_show(default)})".strip()
        keywords = _option(field, hints.get(field.name, field.type))
        keywords["help"] = help_text.replace("%", "%%")
        if default is dataclasses.MISSING and not as_overrides:
            keywords["metavar"] = field.name.upper()
            parser.add_argument(field.name, **keywords)
        else:
            parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, default=argparse.SUPPRESS,
                                **keywords)


def _given(cls, namespace: argparse.Namespace, exclude=()) -> dict[str, Any]:
    """{field: value} of the fields of ``cls`` present in ``namespace`` (sequences as the field's type)."""
    hints = _hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in exclude or not hasattr(namespace, field.name):
            continue
        value = getattr(namespace, field.name)
        kind, _ = _split_optional(hints.get(field.name, field.type))
        if typing.get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(value)
        values[field.name] = value
    return values


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``error: ...`` line on stderr, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """The description (a module docstring) as written; options wrapped as usual."""


def _description(cls) -> str | None:
    doc = inspect.getdoc(cls) or ""
    return None if doc.startswith(f"{cls.__name__}(") else doc  # dataclasses make up a signature otherwise


def build_parser(config_cls, doc: str | None = None, *, prog: str | None = None, overrides=None,
                 skip: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """The parser of ``config_cls`` (or of ``{subcommand: config class}``), ``overrides``' fields added."""
    parser = _Parser(prog=prog, description=doc, formatter_class=_Formatter, allow_abbrev=False)
    if isinstance(config_cls, Mapping):
        sub = parser.add_subparsers(dest=_COMMAND, required=True, metavar="COMMAND")
        for name, cls in config_cls.items():
            about = _description(cls)
            child = sub.add_parser(name, help=(about or "").split("\n")[0], description=about,
                                   formatter_class=_Formatter, allow_abbrev=False)
            add_dataclass_options(child, cls)
        return parser
    if doc is None:
        parser.description = _description(config_cls)
    add_dataclass_options(parser, config_cls)
    if overrides is not None:
        own = tuple(f.name for f in dataclasses.fields(config_cls))
        add_dataclass_options(parser, overrides, tuple(skip) + own, as_overrides=True)
    return parser


def parse(config_cls, argv: list[str] | None = None, doc: str | None = None, *, prog: str | None = None):
    """The config instance that ``argv`` (default ``sys.argv[1:]``) asks for; SystemExit on --help or a usage error."""
    namespace = build_parser(config_cls, doc, prog=prog).parse_args(argv)
    if isinstance(config_cls, Mapping):
        config_cls = config_cls[getattr(namespace, _COMMAND)]
    return config_cls(**_given(config_cls, namespace))


def parse_with_overrides(config_cls, override_cls, argv: list[str] | None = None, doc: str | None = None, *,
                         skip: tuple[str, ...] = (), prog: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(config instance, {override field: value given}) of ``argv``; see :func:`apply_overrides`."""
    namespace = build_parser(config_cls, doc, prog=prog, overrides=override_cls, skip=skip).parse_args(argv)
    own = {f.name for f in dataclasses.fields(config_cls)}
    changes = _given(override_cls, namespace, exclude=own | set(skip))
    return config_cls(**_given(config_cls, namespace)), changes


def apply_overrides(config, changes: Mapping[str, Any]):
    """``dataclasses.replace(config, **changes)``: a preset with the options the user actually gave."""
    return dataclasses.replace(config, **changes)


def error_line(err: BaseException) -> str:
    """``error: <message>`` on one line, however many lines the message has."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return f"error: {text or type(err).__name__}"


def main(config_cls, run: Callable[..., Any], argv: list[str] | None = None, doc: str | None = None, *,
         prog: str | None = None, overrides=None, skip: tuple[str, ...] = (), error_code: int = 2) -> int:
    """Parse ``argv`` into ``config_cls`` and call ``run(cfg)`` (``run(cfg, changes)`` with ``overrides``).

    Returns the exit code: ``run``'s own when it returns an int, else 0; 0 after
    ``--help``; 2 after a usage error; ``error_code`` after a ValueError or
    FileNotFoundError (printed as one ``error: ...`` line on stderr); 130 on Ctrl-C.
    """
    try:
        try:
            if overrides is None:
                args: tuple = (parse(config_cls, argv, doc, prog=prog),)
            else:
                args = parse_with_overrides(config_cls, overrides, argv, doc, skip=skip, prog=prog)
        except SystemExit as exit_:  # --help, or a usage error already printed
            return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
        result = run(*args)
    except (ValueError, FileNotFoundError) as err:
        sys.stdout.flush()
        print(error_line(err), file=sys.stderr)
        return error_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
