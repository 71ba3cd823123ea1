"""YAML documents with their source positions, so every problem can be reported as FILE:LINE:COL.

libyaml composes a document; one walk over what it composed builds the data and the index of
positions together, and links an alias to its anchor rather than walking it again.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import yaml

from failover.errors import Problem, RunbookError

T = TypeVar("T")
PathPart = str | int
Path = tuple[PathPart, ...]


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster


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
    links: dict[Path, Path] = field(default_factory=dict)
    """Where an alias stands -> where its anchored node was first met: what lies under an alias
    is located under its anchor."""

    def locate(self, path: Sequence[PathPart], *, key: bool = False) -> tuple[int, int]:
        """Position of ``path``'s key (``key=True``) or value, else of its nearest located parent."""
        parts = self._unaliased(tuple(p if isinstance(p, int) else str(p) for p in path))
        if key and parts in self.keys:
            return self.keys[parts]
        while parts:
            if parts in self.values:
                return self.values[parts]
            parts = parts[:-1]
        return self.values.get((), (1, 1))

    def _unaliased(self, parts: Path) -> Path:
        """``parts`` with each alias among its parents replaced by where its node was first met."""
        for _ in range(len(parts) + len(self.links)):  # each step moves to text read earlier
            through = next((i for i in range(1, len(parts)) if parts[:i] in self.links), None)
            if through is None:
                break
            parts = self.links[parts[:through]] + parts[through:]
        return parts

    def problem(self, path: Sequence[PathPart], message: str, *, key: bool = False) -> Problem:
        line, column = self.locate(path, key=key)
        return Problem(self.file, line, column, format_path(path), message)


_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"  # the key of ``<<: *defaults``
_VALUE = "tag:yaml.org,2002:value"  # the key ``=``, a string once PyYAML merged


class _Walk:
    """One pass over a composed document, in document order: its data, where each key and value
    stands, and its duplicate keys. A node met again (an alias) is not walked again: its path is
    linked to the path where it was first met, so a document of aliases of aliases costs what
    its text does. Strings, lists and plain mappings are built here; other scalars by PyYAML's
    safe constructor; a document with anything else (merge keys, tagged collections, keys that
    are not scalars) is built by that constructor as a whole after the walk (``exact`` false),
    and what a mapping merges is located where it is written.
    """

    def __init__(self, file: str, loader: yaml.SafeLoader, anchored: bool) -> None:
        self.file, self.loader = file, loader
        self.values: dict[Path, tuple[int, int]] = {}
        self.keys: dict[Path, tuple[int, int]] = {}
        self.links: dict[Path, Path] = {}
        self.problems: list[Problem] = []
        # id(node) -> its data, where first met: only a text with an anchor (&) has aliases, and
        # only one with << merges
        self.met: dict[int, tuple[object, Path]] | None = {} if anchored else None
        self.merging: list[tuple[Path, yaml.Node, set[str]]] = []  # what merges, and its own keys
        self.aliased = False
        self.exact = True

    def value(self, node: yaml.Node, path: Path) -> object:
        mark = node.start_mark
        self.values[path] = (mark.line + 1, mark.column + 1)
        met = self.met.get(id(node)) if self.met is not None else None
        if met is not None:
            self.aliased = True
            self.links[path] = met[1]
            return met[0]
        if isinstance(node, yaml.ScalarNode):
            data = node.value if node.tag == _STR else self.loader.construct_object(node, deep=True)
            return self._met(node, data, path)
        if isinstance(node, yaml.SequenceNode):
            items = self._met(node, [], path)  # before its items: a node may be inside itself
            self.exact &= node.tag == _SEQ
            items.extend([self.value(item, (*path, i)) for i, item in enumerate(node.value)])
            return items
        mapping: dict[object, object] = self._met(node, {}, path)
        self.exact &= node.tag == _MAP
        names: set[str] = set()
        merged = 0
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # unhashable: PyYAML says so
                self.exact = False
                continue
            if key_node.tag == _MERGE:
                self.exact = False
                self.value(value_node, (*path, "<<", merged))
                merged += 1
                continue
            name = str(key_node.value)
            child = (*path, name)
            mark = key_node.start_mark
            if name in names:
                self.problems.append(
                    Problem(
                        self.file,
                        mark.line + 1,
                        mark.column + 1,
                        format_path(child),
                        "duplicate key: each key may appear once in a mapping",
                    )
                )
            names.add(name)
            self.keys[child] = (mark.line + 1, mark.column + 1)
            if key_node.tag in (_STR, _VALUE):
                self.exact &= key_node.tag == _STR
                key: object = name
            else:
                key = self.loader.construct_object(key_node, deep=True)
            mapping[key] = self.value(value_node, child)
        if merged:
            self.merging.append((path, node, names))
        return mapping

    def _met(self, node: yaml.Node, data: T, path: Path) -> T:
        if self.met is not None:
            self.met[id(node)] = (data, path)
        return data

    def merged(self) -> None:
        """Locate the keys each mapping merged (``<<: *defaults``) where they are written, once
        PyYAML built the document: it leaves a mapping's pairs as it merged them (which of two
        merged keys wins depends on its version), merged pairs first, a key's last pair winning."""
        for path, node, written in self.merging:
            for key_node, value_node in node.value:
                name = str(key_node.value)
                met = self.met.get(id(value_node)) if self.met is not None else None
                if not isinstance(key_node, yaml.ScalarNode) or name in written or met is None:
                    continue
                key_mark, value_mark = key_node.start_mark, value_node.start_mark
                self.keys[(*path, name)] = (key_mark.line + 1, key_mark.column + 1)
                self.values[(*path, name)] = (value_mark.line + 1, value_mark.column + 1)
                self.links[(*path, name)] = met[1]


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


def _load(text: str, file: str) -> Source:
    """Compose ``text`` with libyaml, then walk it once (see :class:`_Walk`)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Source(file=file, text=text, data=None)
        walk = _Walk(file, loader, anchored="&" in text or "<<" in text)
        try:
            data = walk.value(node, ())
        except RecursionError:
            problem = Problem(file, 1, 1, "", "invalid YAML: nested too deeply")
            raise RunbookError([*walk.problems, problem]) from None
        if walk.aliased or not walk.exact:
            _refuse_alias_bombs(node, file)
        if not walk.exact:
            data = loader.construct_document(node)
            walk.merged()
        if walk.problems:
            raise RunbookError(walk.problems)
        return Source(file, text, data, walk.values, walk.keys, walk.links)
    finally:
        loader.dispose()


def _refuse_alias_bombs(root: yaml.Node, file: str) -> None:
    own, expanded = _sizes(root)
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


_pause_lock = threading.Lock()
_pauses = 0
_collecting = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: loading builds a few objects per line of YAML and
    keeps them all, and the collector would traverse them again and again as they pile up (two
    thirds of the time of loading 10,000 services). Objects freed by their reference counts are
    freed as usual. Pauses nest, in one thread or several: the collector runs again when the last
    one ends, if it ran when the first began."""
    global _pauses, _collecting
    with _pause_lock:
        if not _pauses:
            _collecting = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if not _pauses and _collecting:
                gc.enable()


def parse_yaml(text: str, file: str) -> Source:
    """Parse one YAML document safely (no tags that construct objects) and index its positions."""
    try:
        with paused_gc():
            return _load(text, file)
    except yaml.YAMLError as exc:
        raise RunbookError([_yaml_problem(file, text, _explained(text, exc))]) from None
    except (RecursionError, ValueError, OverflowError) as exc:
        raise RunbookError([Problem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
