"""Flags declared on config fields: one definition gives the field, its flag and its help.

A config is a dataclass whose user-facing fields are made with `flag(...)`:

    @dataclass
    class OptimizerConfig(Flags):
        lr: float = flag(2e-7, "peak learning rate")
        clip_grad: float = flag(1.0, "max global gradient norm, 0 = no clipping")

        def __post_init__(self):
            require(self.lr > 0, f"--lr must be > 0, got {self.lr}")

A switch with two spellings (`--enable-thinking` / `--no-thinking`) is one flag: the `--no-`
spelling is an alias and `action=OnOffSwitch` sets the field False for it, True otherwise.

`OptimizerConfig.add_arguments(parser)` adds `--lr` and `--clip-grad` (names from the field:
underscores become dashes, or `name=` on the flag); `OptimizerConfig.from_args(args)` builds the
config from the parsed namespace, so validation (`__post_init__`) runs when the config is made,
before any process group or file exists. Nested configs compose: a field whose type is another
`Flags` dataclass (made with `field(default_factory=...)` or required) contributes its own flags,
and `from_args` builds it too. A command that needs only some of a config's flags passes
`only=`; one that needs another default calls `parser.set_defaults(...)` after adding.

The module imports neither torch nor megatron: `o1p <cmd> --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from megatron_o1p.errors import ConfigError

_META = "o1p_flag"
# argparse's own keyword arguments a flag may pass through.
_ARGPARSE_KEYS = ("type", "choices", "action", "nargs", "metavar", "required", "dest")


class OnOffSwitch(argparse.Action):
    """A bool flag spelled two ways: `--no-...` option strings set False, the others True."""

    def __init__(self, option_strings, dest, default=None, help=None, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, not str(option_string).startswith("--no-"))


def flag(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    name: str | None = None,
    aliases: tuple[str, ...] = (),
    default_factory: Any = dataclasses.MISSING,
    **argparse_kwargs,
):
    """A dataclass field that is also a command-line flag.

    Args:
        default: the field's default; MISSING (omit it) makes the flag required.
        help: the flag's help text (required: every flag documents itself); the default is
            appended. argparse formats it with %-codes: write a literal percent as `%%`.
        name: the flag, e.g. "--lambda"; default `--<field-name-with-dashes>`.
        aliases: more option strings for the same flag (kept for compatibility).
        default_factory: as `dataclasses.field`.
        **argparse_kwargs: type, choices, action, nargs, metavar passed to `add_argument`.
            `type` defaults to the annotation's (Path, int, float, str, optionally `| None`);
            a bool default makes a `store_true` (for a True default, `store_false`) switch.
    """
    if not help:
        raise ValueError("every flag needs help text")
    unknown = set(argparse_kwargs) - set(_ARGPARSE_KEYS)
    if unknown:
        raise TypeError(f"flag() got unknown argparse keywords {sorted(unknown)}")
    meta = {_META: {"help": help, "name": name, "aliases": tuple(aliases), **argparse_kwargs}}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def shared(
    name: str,
    help: str | None = None,
    *,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    **argparse_kwargs,
):
    """A field whose flag is one of `config/common.SHARED_FLAGS` (`--out`, `--seed`, ...).

    Args:
        name: the key in SHARED_FLAGS; the field may have another name.
        help: this command's help for it; None = the shared help.
        default, default_factory: as `flag`; MISSING makes the flag required.
        **argparse_kwargs: overrides of the shared definition (rarely needed).
    """
    from megatron_o1p.config.common import SHARED_FLAGS

    if name not in SHARED_FLAGS:
        raise KeyError(f"{name!r} is not in config/common.SHARED_FLAGS")
    spec = {**SHARED_FLAGS[name], **argparse_kwargs}
    spec["help"] = help or spec["help"]
    spec.setdefault("name", "--" + name.replace("_", "-"))
    field = flag(default, default_factory=default_factory, **spec)
    field.metadata[_META]["defined_in"] = "megatron_o1p.config.common"
    return field


def require(ok: bool, message: str) -> None:
    """Raise ConfigError(message) unless `ok` (validation in `__post_init__`)."""
    if not ok:
        raise ConfigError(message)


def option_name(field: dataclasses.Field) -> str:
    spec = field.metadata.get(_META) or {}
    return spec.get("name") or "--" + field.name.replace("_", "-")


def _nested_type(cls, field: dataclasses.Field):
    """The Flags dataclass a field holds, or None."""
    hint = field.type
    if isinstance(hint, str):
        hint = _resolve_hint(cls, hint)
    return hint if isinstance(hint, type) and issubclass(hint, Flags) else None


def _resolve_hint(cls, hint: str):
    import sys

    module = sys.modules.get(cls.__module__)
    return getattr(module, hint, None) if module is not None else None


class Flags:
    """Mixin for dataclass configs whose fields are declared with `flag(...)`."""

    @classmethod
    def flag_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if _META in f.metadata]

    @classmethod
    def nested_fields(cls) -> list[tuple[dataclasses.Field, type]]:
        out = []
        for f in dataclasses.fields(cls):
            nested = _nested_type(cls, f)
            if nested is not None:
                out.append((f, nested))
        return out

    @classmethod
    def add_arguments(
        cls,
        parser: argparse.ArgumentParser,
        *,
        only: tuple[str, ...] | None = None,
        skip: tuple[str, ...] = (),
    ) -> None:
        """Add this config's flags (and its nested configs') to `parser`.

        Args:
            only: field names to add (nested configs' fields included); None = all.
            skip: field names not to add.
        """
        for f in cls.flag_fields():
            if (only is not None and f.name not in only) or f.name in skip:
                continue
            action = parser.add_argument(option_name(f), *_aliases(f), **_argparse_kwargs(f))
            # read by the flag-uniqueness test (tests/unit/test_cli.py)
            action.o1p_defined_in = f.metadata[_META].get("defined_in", cls.__module__)
        for _, nested in cls.nested_fields():
            nested.add_arguments(parser, only=only, skip=skip)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides):
        """Build the config from parsed flags; `overrides` set fields the flags do not."""
        values = dict(overrides)
        for f in cls.flag_fields():
            if f.name not in values and hasattr(args, f.name):
                values[f.name] = getattr(args, f.name)
        for f, nested in cls.nested_fields():
            if f.name not in values:
                values[f.name] = nested.from_args(args)
        return cls(**values)


def _aliases(f: dataclasses.Field) -> tuple[str, ...]:
    return f.metadata[_META]["aliases"]


_SIMPLE_TYPES = {"Path": Path, "int": int, "float": float, "str": str}
_METAVARS = {int: "N", float: "X", Path: "PATH"}


def _annotation_type(hint) -> type | None:
    """`int`, `float`, `str` or `Path` from an annotation like "Path | None"; else None."""
    if isinstance(hint, type):
        return hint if hint in _SIMPLE_TYPES.values() else None
    parts = [p.strip() for p in str(hint).split("|") if p.strip() != "None"]
    return _SIMPLE_TYPES.get(parts[0]) if len(parts) == 1 else None


def _argparse_kwargs(f: dataclasses.Field) -> dict:
    spec = dict(f.metadata[_META])
    kwargs = {k: spec[k] for k in _ARGPARSE_KEYS if k in spec}
    kwargs.setdefault("dest", f.name)
    default = f.default
    if f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    required = default is dataclasses.MISSING
    if isinstance(default, bool) and "action" not in kwargs:
        kwargs["action"] = "store_false" if default else "store_true"
    elif "action" not in kwargs and "type" not in kwargs:
        value_type = _annotation_type(f.type)
        if value_type is not None:
            kwargs["type"] = value_type
    if required:
        kwargs.setdefault("required", True)
    else:
        kwargs["default"] = default
    if "metavar" not in kwargs and kwargs.get("type") in _METAVARS and "choices" not in kwargs:
        kwargs["metavar"] = _METAVARS[kwargs["type"]]
    help_text = spec["help"]
    switch = kwargs.get("action") in ("store_true", "store_false", OnOffSwitch)
    if not required and not switch and default is not None:
        help_text += " (default: %(default)s)"
    kwargs["help"] = help_text
    return kwargs
