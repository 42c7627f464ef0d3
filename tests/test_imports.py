"""Imports go one way: no cycles among the toolkit's modules, no imports hidden inside functions
(but for optional dependencies), the core without its front ends, envs without the toolkit."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("maml", "maml_sl", "maml_rl", "envs")
OPTIONAL = {"moviepy", "metaworld"}  # the [video] and [metaworld] extras


def modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return found


def imported(node: ast.AST) -> list[str]:
    """The toolkit modules (or names in them) an import statement names."""
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return []


def graph() -> dict[str, set[str]]:
    found = modules()
    edges = {}
    for name, tree in found.items():
        names = {n for node in ast.walk(tree) for n in imported(node)}
        edges[name] = {n for n in names if n in found and n != name}
    return edges


def test_the_toolkit_has_no_import_cycle():
    edges, state, path = graph(), {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for other in sorted(edges[module]):
            if state.get(other) == "open":
                cycle = path[path.index(other) :] + [other]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other)
        path.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_no_module_imports_inside_a_function_but_optional_dependencies():
    hidden = []
    for name, tree in modules().items():
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                for target in imported(node):
                    if target.split(".")[0] not in OPTIONAL:
                        hidden.append(f"{name}.{function.name}: {target}")
    assert not hidden, "imports inside functions: " + ", ".join(hidden)


def test_imports_go_one_way_between_the_packages():
    allowed = {
        "maml": {"maml"},
        "envs": {"envs"},
        "maml_sl": {"maml", "maml_sl"},
        "maml_rl": {"maml", "maml_rl", "envs"},
    }
    wrong = [
        f"{module} imports {other}"
        for module, others in graph().items()
        for other in others
        if other.split(".")[0] not in allowed[module.split(".")[0]]
    ]
    assert not wrong, "; ".join(wrong)
