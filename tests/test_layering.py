"""The layers point one way (platform ← recordings ← callactions) and no module imports
itself back through another. Read from the source, so it needs no services."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("biztel", "recordings", "callactions")
# The one place the platform may name a feature: the project URLconf.
ALLOWED = {("biztel.urls", "recordings")}


def _modules():
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _imports(path):
    """Every module named by an import in the file, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph():
    modules = _modules()
    return {name: {dep for dep in _imports(path) if dep in modules and dep != name} for name, path in modules.items()}


def _layer(module):
    return PACKAGES.index(module.split(".")[0])


def test_the_platform_imports_no_feature_but_in_the_url_conf():
    wrong = []
    for path in [*ROOT.joinpath("biztel").rglob("*.py")]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ("recordings", "callactions") and (module, top) not in ALLOWED:
                wrong.append(f"{module} imports {name}")
    assert wrong == []


def test_the_platforms_migrations_name_no_feature():
    named = []
    for path in ROOT.joinpath("biztel", "migrations").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            # app labels in dependencies, "app.model" in foreign keys and get_model()
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value.lower().split(".")[0] in ("recordings", "callactions"):
                    named.append(f"{path.name}: {node.value}")
    assert named == []


def test_recordings_do_not_import_the_call_actions():
    graph = _graph()
    assert [(a, b) for a, deps in graph.items() for b in deps if a.startswith("recordings") and b.startswith("callactions")] == []


def test_no_module_imports_one_of_a_higher_layer_but_the_url_conf():
    graph = _graph()
    upward = [(a, b) for a, deps in graph.items() for b in deps if _layer(b) > _layer(a) and a != "biztel.urls"]
    assert upward == []


def test_no_import_circle_between_modules():
    graph = _graph()
    circles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == []
