"""Command-line options generated from config dataclasses, and people-friendly errors.

Every field of a frozen config dataclass becomes ``--field`` (``--field/--no-field``
for booleans) whose default is ``None``, meaning "keep the preset's value"; the
field's one-line comment in the source becomes its help text.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from typing import Any, Callable


def _field_comments(cls) -> dict[str, str]:
    """``name: type = default  # comment`` -> {name: comment}, read from the class source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return dict(re.findall(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+)$", source, flags=re.M))


def add_dataclass_options(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--name`` option per field of ``cls`` (default None = unchanged)."""
    comments = _field_comments(cls)
    group = parser.add_argument_group(f"{cls.__name__} overrides")
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = comments.get(field.name, "")
        kind = type(field.default) if field.default is not dataclasses.MISSING else str
        if kind is bool:
            group.add_argument(flag, dest=field.name, default=None, action=argparse.BooleanOptionalAction,
                               help=help_text)
        else:
            group.add_argument(flag, dest=field.name, default=None, type=kind, help=help_text)


def apply_overrides(config, args: argparse.Namespace):
    """``dataclasses.replace`` with every option the user actually gave."""
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(config)
               if getattr(args, f.name, None) is not None}
    return dataclasses.replace(config, **changes)


def run_main(main: Callable[[], Any]) -> None:
    """Run ``main``; a ValueError or FileNotFoundError becomes one line on stderr and exit code 2."""
    try:
        main()
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def tyro_cli(config_cls, main: Callable[[Any], Any], argv: list[str] | None, doc: str | None) -> int:
    """Parse ``argv`` into ``config_cls`` with tyro and run ``main(config)``; a ValueError
    or FileNotFoundError becomes one ``error: ...`` line on stderr and exit code 2."""
    import tyro

    cfg = tyro.cli(config_cls, args=argv, description=(doc or "").split("\n")[0])
    try:
        main(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
