"""Channel names and message kinds are constants of ``shared.messages``, one per spec, and
the code of the servers, the worker, the layer and the front door names them by those
constants."""

import ast
from pathlib import Path

from switchroom.shared import messages

ROOT = Path(__file__).resolve().parents[2]
CONSTANTS = {
    name: value
    for name, value in vars(messages).items()
    if name.isupper() and isinstance(value, str) and "." in value
}


def test_every_spec_has_its_constant():
    kinds = {value for name, value in CONSTANTS.items() if name != "SLACK_PREFIX"}
    assert kinds == set(messages.SPECS)


def _asgi_event_types(tree: ast.AST) -> set[int]:
    """Ids of the string nodes that are ASGI 3 event types (``{"type": "http.request"}``,
    ``kind == "websocket.send"``), which share their spelling with channel names."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "type":
                    found.add(id(value))
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            about_type = any(
                (isinstance(o, ast.Name) and o.id == "kind")
                or (isinstance(o, ast.Subscript) and ast.unparse(o.slice) == "'type'")
                for o in operands
            )
            if about_type:
                found.update(id(o) for o in operands)
    return found


def literal_channel_names(folders: tuple[str, ...]) -> list[str]:
    names = set(CONSTANTS.values())
    hits = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            exempt = _asgi_event_types(tree)
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and node.value.rstrip("?!") in names
                    and id(node) not in exempt
                    and path.name != "messages.py"
                ):
                    hits.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    return hits


def test_the_code_names_channels_by_constants():
    assert literal_channel_names(("worker", "servers", "switchroom", "shared", "layers")) == []
