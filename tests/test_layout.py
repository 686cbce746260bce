"""The shape of the code: one door to a model, imports that point one way, a README
layout that matches the tree. Read from the source with `ast`; nothing is imported."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "genlab"
BACKEND_INTERNALS = {"genlab.models.local", "genlab.models.hf", "genlab.models.openai_compat"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "specs" in path.relative_to(PACKAGE).parts:
            continue  # FunSearch specs are data run in the sandbox, not genlab modules
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """genlab modules that ``name`` imports, anywhere in the file (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_no_module_outside_models_reaches_a_backends_internals():
    offenders = {name: sorted(deps & BACKEND_INTERNALS) for name, deps in graph().items()
                 if not name.startswith("genlab.models") and deps & BACKEND_INTERNALS}
    assert offenders == {}, "go through genlab.models (get_model, the registry) instead"


def test_no_import_cycle():
    edges = graph()
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
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
                    cycles.append(sorted(component))
    assert cycles == []


def test_the_readme_layout_names_every_package_and_top_level_module():
    readme = (ROOT / "README.md").read_text()
    layout = re.search(r"## Layout\n\n```\n(.*?)```", readme, re.S).group(1)
    named = set(re.findall(r"genlab/[\w/]+(?:\.py)?", layout))
    present = {f"genlab/{p.name}/" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    present |= {f"genlab/{p.name}" for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    missing = sorted(p for p in present if p not in named and p.rstrip("/") not in named)
    assert missing == [], f"add these to the README's layout: {missing}"
    stale = sorted(n for n in named if not (ROOT / n).exists())
    assert stale == [], f"the README's layout names what is gone: {stale}"
