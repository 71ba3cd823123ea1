"""YAML documents with their source positions, so every problem can be reported as FILE:LINE:COL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from failover.errors import Problem, RunbookError

PathPart = str | int
Path = tuple[PathPart, ...]


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~20x faster


def format_path(path: Sequence[PathPart]) -> str:
    """``("services", "db", "steps", 0, "with")`` -> ``services.db.steps[0].with``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Source:
    """A parsed YAML document and where each key and value stands in its file (1-based)."""

    file: str
    text: str
    data: object
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Sequence[PathPart], *, key: bool = False) -> tuple[int, int]:
        """Position of ``path``'s key (``key=True``) or value, else of its nearest located parent."""
        parts: Path = tuple(p if isinstance(p, int) else str(p) for p in path)
        if key and parts in self.keys:
            return self.keys[parts]
        while parts:
            if parts in self.values:
                return self.values[parts]
            parts = parts[:-1]
        return self.values.get((), (1, 1))

    def problem(self, path: Sequence[PathPart], message: str, *, key: bool = False) -> Problem:
        line, column = self.locate(path, key=key)
        return Problem(self.file, line, column, format_path(path), message)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _index(node: yaml.Node, path: Path, source: Source, problems: list[Problem], seen: set[int]) -> None:
    source.values[path] = _mark(node)
    if id(node) in seen:  # an alias that points back into itself
        return
    seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        names: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            name = str(key_node.value)
            if name == "<<":  # merge key: the merged mapping's own positions are good enough
                continue
            child = (*path, name)
            if name in names:
                line, column = _mark(key_node)
                problems.append(
                    Problem(
                        source.file,
                        line,
                        column,
                        format_path(child),
                        "duplicate key: each key may appear once in a mapping",
                    )
                )
            names.add(name)
            source.keys[child] = _mark(key_node)
            _index(value_node, child, source, problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), source, problems, seen)


ALIAS_EXPANSION_LIMIT = 1_000_000
"""How many nodes aliases may add to a document, expanded: far beyond any runbook's reuse."""


def _sizes(root: yaml.Node) -> tuple[int, int]:
    """(nodes in the document, nodes once every alias is expanded), counted once per node and
    without recursion: a document of aliases of aliases is measured, never walked."""
    expanded: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack: list[yaml.Node] = [root]
    while stack:  # every distinct node, parents before children
        node = stack.pop()
        if id(node) in expanded:
            continue
        expanded[id(node)] = 1  # a node inside itself (a recursive alias) counts once
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):  # children before parents
        expanded[id(node)] = 1 + sum(expanded[id(child)] for child in _children(node))
    return len(order), expanded[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _yaml_problem(file: str, text: str, exc: yaml.YAMLError) -> Problem:
    line, column = 1, 1
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        line, column = exc.problem_mark.line + 1, exc.problem_mark.column + 1
        what = " ".join(p for p in (exc.context, exc.problem) if p)
    elif isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        what = f"unacceptable character {char!r}: control characters are not allowed"
    else:
        what = str(exc)
    return Problem(file, line, column, "", f"invalid YAML: {what}")


def _compose(text: str, loader_class: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, object]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _explained(text: str, exc: yaml.YAMLError) -> yaml.YAMLError:
    """The pure-Python parser's account of a syntax error: clearer than libyaml's, and the same
    whichever parser is installed."""
    try:
        _compose(text, yaml.SafeLoader)
    except yaml.YAMLError as better:
        return better
    except (RecursionError, ValueError, OverflowError):
        pass
    return exc


def parse_yaml(text: str, file: str) -> Source:
    """Parse one YAML document safely (no tags that construct objects) and index its positions."""
    try:
        node, data = _compose(text, _Loader)
    except yaml.YAMLError as exc:
        raise RunbookError([_yaml_problem(file, text, _explained(text, exc))]) from None
    except (RecursionError, ValueError, OverflowError) as exc:
        raise RunbookError([Problem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    source = Source(file=file, text=text, data=data)
    problems: list[Problem] = []
    if node is not None:
        own, expanded = _sizes(node)
        if expanded - own > ALIAS_EXPANSION_LIMIT:
            raise RunbookError(
                [
                    Problem(
                        file,
                        1,
                        1,
                        "",
                        f"invalid YAML: its aliases expand {own:,} nodes to {expanded:,}, more than "
                        f"{ALIAS_EXPANSION_LIMIT:,} beyond the document's own: a document that "
                        "references itself over and over (a 'billion laughs') is refused",
                    )
                ]
            )
        try:
            _index(node, (), source, problems, set())
        except RecursionError:
            problems.append(Problem(file, 1, 1, "", "invalid YAML: nested too deeply"))
    if problems:
        raise RunbookError(problems)
    return source
