"""Reading cluster.yaml's YAML within bounds, so a hostile file fails fast with a clear error.

YAML aliases (`*name`) reuse a node: a few hundred bytes of nested aliases ("billion
laughs") stand for billions of values, which validating would build one by one. Deep
nesting (`[[[[...`) would exhaust Python's stack. The node graph is therefore composed with a
depth limit and walked with a budget, aliases counted every time they are used, before any
value is built.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError

from ugro.errors import ConfigError

# Far more than any cluster.yaml nests (workers[i].timeouts.gpu is 4 levels).
MAX_DEPTH = 64
# Values (scalars, lists, mappings) the document may stand for once aliases are expanded: a
# cluster of thousands of nodes needs a few dozen thousand.
MAX_VALUES = 200_000


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing to compose nodes nested deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Compose one node, counting how deep it lies."""
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # PyYAML's stubs
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read(text: str, origin: str) -> tuple[yaml.Node | None, Any]:
    """The document's node graph and its value (None, None when empty); ConfigError if not YAML.

    `origin` names the text in messages.
    """
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _within_budget(node, origin)
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{origin}:{mark.line + 1}:{mark.column + 1}" if mark else origin
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: YAML syntax error: {exc}") from exc
    except RecursionError as exc:
        # The limits above keep well inside the stack; this is the last line of defence.
        raise ConfigError(f"{origin}: nested too deeply to read") from exc
    finally:
        loader.dispose()


def _within_budget(root: yaml.Node, origin: str) -> None:
    """Raise ConfigError when the graph, aliases expanded, is too deep or too large.

    Iterative, so a cycle (`&a [*a]`) or a long chain costs no stack: the budget ends it.
    """
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        line = node.start_mark.line + 1
        if count > MAX_VALUES:
            raise ConfigError(
                f"{origin}:{line}: the document stands for more than {MAX_VALUES} values "
                "(aliases, `*name`, count each time they are used)"
            )
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{origin}:{line}: nested deeper than {MAX_DEPTH} levels once aliases are expanded"
            )
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
