"""Turning pydantic validation errors into located runbook problems (FILE:LINE:COL: path: message)."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from failover.errors import Problem
from failover.runbook import NAME_PATTERN
from failover.source import PathPart, Source


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else (args[0] if len(args) == 1 else tp)
            if len(args) != 1 and not models:
                return tp
        else:
            return tp


def _model_at(root: type[BaseModel], loc: tuple[PathPart, ...]) -> type[BaseModel] | None:
    """The model whose fields are valid at ``loc`` (for "did you mean" on unknown keys)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            if part not in fields:
                return None
            tp = fields[str(part)].annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _problems_from(
    exc: ValidationError,
    source: Source,
    prefix: tuple[PathPart, ...],
    model: type[BaseModel],
    model_prefix: tuple[PathPart, ...] = (),
    note: str = "",
) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        msg = err["msg"]
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            if kind == "string_pattern_mismatch":
                msg = "expected a name of letters, digits, '-' and '_'"
            problems.append(source.problem(prefix + loc, f"{msg}, found {err['input']!r}", key=True))
            continue
        path = prefix + loc
        if kind == "extra_forbidden":
            parent = _model_at(model, model_prefix + loc[:-1])
            names = _field_names(parent) if parent else []
            close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(names)}"
            message = f"unknown key {loc[-1]!r}; {hint}" if names else f"unknown key {loc[-1]!r}"
            problems.append(source.problem(path, message + note, key=True))
            continue
        if kind == "missing":
            message = "required key is missing"
        elif kind == "value_error":
            message = msg.removeprefix("Value error, ")
        elif kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NAME_PATTERN:
            message = f"expected a name of letters, digits, '-' and '_', found {err['input']!r}"
        elif kind == "literal_error" and path == ("version",):
            message = f"unsupported runbook version {err['input']!r}: this failover reads version 1"
        else:
            message = msg.replace("Input should be", "expected", 1)
            message = f"{message}, found {err['input']!r}"
        problems.append(source.problem(path, message + note))
    return problems
