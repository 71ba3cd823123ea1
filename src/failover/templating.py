"""``${...}`` references in runbooks: found, checked and filled in, never evaluated as code.

A reference is a dotted name (``to``, ``from.gcp.project``, ``to.vars.asg``). What names mean is
up to the caller's ``lookup``; this module only finds references in strings, mapping keys and
nested values, and substitutes them. ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

_REF = re.compile(r"\$(\$?)\{([^{}]*)\}")


class TemplateError(ValueError):
    """A reference does not resolve; the message says which and why."""


Lookup = Callable[[str], object]


def references(value: object) -> Iterator[str]:
    """Every reference expression in ``value`` (strings, mapping keys and values, list items)."""
    if isinstance(value, str):
        if "${" in value:
            for match in _REF.finditer(value):
                if not match.group(1):
                    yield match.group(2).strip()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from references(key)
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def _render_str(text: str, lookup: Lookup) -> object:
    if "${" not in text:
        return text
    whole = _REF.fullmatch(text)
    if whole and not whole.group(1):
        return lookup(whole.group(2).strip())

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        return str(lookup(match.group(2).strip()))

    return _REF.sub(substitute, text)


def render(value: object, lookup: Lookup) -> object:
    """Return ``value`` with every reference replaced by ``lookup(expr)``.

    A string that is exactly one reference takes the referenced value as it is (a number stays a
    number); a reference inside a longer string is substituted as text.
    """
    if isinstance(value, str):
        return _render_str(value, lookup)
    if isinstance(value, dict):
        return {str(render(k, lookup)): render(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [render(item, lookup) for item in value]
    return value


def unresolved(
    value: object, lookup: Lookup, path: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every reference in ``value`` that does not resolve, as (path to it, why)."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(value, str):
        try:
            _render_str(value, lookup)
        except TemplateError as exc:
            found.append((path, str(exc)))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += unresolved(key, lookup, (*path, str(key)))
            found += unresolved(item, lookup, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += unresolved(item, lookup, (*path, i))
    return found
