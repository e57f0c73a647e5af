"""The one YAML loader for files users write (pipeline specs, model cards, LDAE configs).

PyYAML's `safe_load` keeps the last of two equal keys, so a spec that sets `seed:` twice runs with whichever came
last and nobody is told; this loader refuses the second one, naming the key and both lines. It also refuses a
document whose aliases expand to more than `MAX_EXPANDED_NODES` nodes (a "billion laughs" file is a few lines that
expand to millions of values once validation walks them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

#: Far above any real spec or card (a few hundred nodes), far below what makes validation hang.
MAX_EXPANDED_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses duplicate mapping keys and alias expansions beyond `MAX_EXPANDED_NODES`."""

    def construct_document(self, node: Node) -> Any:
        if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise ConstructorError(None, None, f"aliases expand to more than {MAX_EXPANDED_NODES} values; write "
                                   "the values out instead", node.start_mark)
        return super().construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        self._refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        """Keys written twice in one mapping; a `<<:` merge may still be overridden, as YAML intends."""
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                earlier = first_line.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error names it
                continue
            if earlier is not None:
                raise ConstructorError(None, None, f"key '{key}' is given twice (lines {earlier} and {line}); "
                                       "keep one", key_node.start_mark)
            first_line[key] = line


def load_yaml(text: str) -> Any:
    """Parse one YAML document with `StrictLoader`; errors are `yaml.YAMLError` with a line mark."""
    return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader: no arbitrary objects


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """Nodes in the document with every alias written out; a node reached again is counted again (that is the
    expansion), but computed once, so the count itself stays cheap."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_EXPANDED_NODES + 1  # a recursive alias expands without end
    children: list[Node] = []
    if isinstance(node, SequenceNode):
        children = list(node.value)
    elif isinstance(node, MappingNode):
        children = [part for pair in node.value for part in pair]
    total = 1
    for child in children:
        total += _expanded_size(child, sizes)
        if total > MAX_EXPANDED_NODES:
            break
    sizes[id(node)] = total
    return total


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a user: where in the file (when PyYAML knows) and what is wrong."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    return f"{where}{getattr(exc, 'problem', None) or exc}"


def read_mapping(path: Path, error: type[Exception], expected: str) -> dict[str, Any]:
    """The top-level mapping of a user's YAML file (`load_yaml`'s checks), or `error` naming the file: not valid
    YAML (with the line), not UTF-8, or not a mapping (`expected` says of what). An empty file is an empty mapping."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a UTF-8 text file") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping of {expected} at the top level")
    return raw
