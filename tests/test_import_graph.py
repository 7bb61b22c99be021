"""The package's import graph, read from the source: no circles, no arrows back up, few lazy imports.

Function-level imports hide circles (the module imports fine, the cycle only bites at call time), so
the graph here counts them as edges too. It is read with `ast` and nothing is imported.

A function-level import of a fewtune module is the exception, kept where importing at the top would cost
something real: torch (or transformers, scikit-learn) for a module that light code imports (the command
line's `--help`, `import fewtune`, predicting with an ONNX export), an optional extra (FastAPI), or a
layer that must not import the one above it at load time. Each says which, in a comment on its line or
the line above that contains "why" (the convention: `# why: torch; the CLI imports this module`).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "fewtune"

# (importer prefix, imported prefix): an import from a lower layer up to a higher one.
FORBIDDEN = [
    ("fewtune.storage", "fewtune.classifier"),
    ("fewtune.storage", "fewtune.methods"),
    ("fewtune.storage", "fewtune.export"),
    ("fewtune.storage", "fewtune.backbones"),
    ("fewtune.storage", "fewtune.saved_models"),
    ("fewtune.methods.base", "fewtune.data.builtin"),
    ("fewtune.labels", "fewtune.data"),
    ("fewtune.label_sets", "fewtune.data"),
    ("fewtune.numeric", "fewtune."),
    ("fewtune.data", "fewtune.classifier"),
    ("fewtune.data", "fewtune.methods"),
    ("fewtune.bayes", "fewtune.classifier"),
    ("fewtune.selection", "fewtune.classifier"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _target(module: str, node: ast.ImportFrom, is_package: bool) -> str | None:
    if not node.level:
        return node.module
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports() -> list[tuple[str, str, int, bool]]:
    """(importer, imported, line, inside a function) for every import of one fewtune module by another."""
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_function = {id(inner) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for inner in ast.walk(node) if isinstance(inner, (ast.Import, ast.ImportFrom))}
        type_only = {id(inner) for node in ast.walk(tree)
                     if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                     for inner in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom):
                base = _target(module, node, path.name == "__init__.py")
                if not base or not base.startswith("fewtune"):
                    continue
                names = [_known(f"{base}.{alias.name}") for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [_known(alias.name) for alias in node.names if alias.name.startswith("fewtune")]
            else:
                continue
            for name in dict.fromkeys(names):
                if name != module and name in MODULES:
                    found.append((module, name, node.lineno, id(node) in in_function))
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(MODULES):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_reader_sees_a_known_edge():
    # A check on the reader itself: the classifier imports its method registry.
    assert any(a == "fewtune.classifier" and b.startswith("fewtune.methods") for a, b, _, _ in imports())


def import_edges() -> dict[str, set[str]]:
    """Who imports whom, as Python runs it: importing fewtune.a.b first runs the package fewtune.a's
    __init__, unless the importer is inside fewtune.a (then the package is already being imported)."""
    edges: dict[str, set[str]] = {}
    for importer, imported, _, _ in imports():
        targets = {imported}
        parts = imported.split(".")
        for depth in range(2, len(parts)):
            package = ".".join(parts[:depth])
            if package in MODULES and not (importer == package or importer.startswith(package + ".")):
                targets.add(package)
        edges.setdefault(importer, set()).update(targets)
    # A module that calls registry.import_all(package) imports every module of that package (plug-ins found
    # at run time, invisible to the parse above): methods, recommenders, posterior strategies.
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if "import_all(" not in text or module == "fewtune.registry":
            continue
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        skip = _skipped(ast.parse(text))
        edges.setdefault(module, set()).update(
            m for m in MODULES if m.startswith(package + ".") and m.count(".") == package.count(".") + 1
            and m != module and m.rsplit(".", 1)[1] not in skip)
    return edges


def _skipped(tree: ast.Module) -> set[str]:
    """The module names an import_all(..., skip=X) call leaves out: a tuple literal or a module-level name."""
    constants = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_all":
            for keyword in node.keywords:
                if keyword.arg == "skip":
                    value = constants.get(getattr(keyword.value, "id", None), keyword.value)
                    return set(ast.literal_eval(value))
    return set()


def test_no_import_cycle_in_the_package():
    assert cycles(import_edges()) == []


def test_no_import_runs_back_up_a_layer():
    bad = [(a, b, line) for a, b, line, _ in imports() for low_, high in FORBIDDEN
           if (a == low_ or a.startswith(low_ + ".")) and (b == high.rstrip(".") or b.startswith(high))]
    assert bad == []


# Outside fewtune.cli, which imports its commands' modules on first use: laziness belongs at that door.
LAZY_IMPORT_BUDGET = 30


def lazy_imports() -> list[tuple[str, Path, int, int]]:
    """(importer, file, first line, last line) of every import statement inside a function that imports
    a fewtune module, outside fewtune.cli. Counted per statement: one may name several modules."""
    found = {(module, line) for module, _, line, inside in imports()
             if inside and module != "fewtune.cli" and not module.startswith("fewtune.cli.")}
    spans = []
    for module, line in sorted(found):
        path = MODULES[module]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        node = next(n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and n.lineno == line)
        spans.append((module, path, line, node.end_lineno))
    return spans


def _says_why(lines: list[str], first: int, last: int) -> bool:
    """A comment with "why" on the statement's lines (1-based, inclusive) or alone on the line above."""
    own = any("#" in text and "why" in text.split("#", 1)[1] for text in lines[first - 1:last])
    above = lines[first - 2].strip() if first >= 2 else ""
    return own or (above.startswith("#") and "why" in above)


def test_few_function_level_imports_into_the_package_each_with_its_reason():
    found = lazy_imports()
    listed = "\n".join(f"{path.relative_to(SRC)}:{line}" for _, path, line, _ in found)
    assert len(found) < LAZY_IMPORT_BUDGET, f"{len(found)} function-level imports of fewtune modules:\n{listed}"
    unexplained = [f"{path.relative_to(SRC)}:{first}" for _, path, first, last in found
                   if not _says_why(path.read_text(encoding="utf-8").splitlines(), first, last)]
    assert unexplained == [], "a function-level import without a '# why: ...' comment"
