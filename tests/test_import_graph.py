"""The import graph between the package's modules: no circle, and imports only point down a layer.

Every ``import`` / ``from ... import`` in the package counts, including the ones inside functions (a lazy import
is still a dependency). Two kinds of edge are exempt: a package ``__init__`` re-exporting its direct sub-modules, and
an import of the registration seam (:mod:`molora_adapters._integration`), the one place allowed to be reached
from below. The registration trigger (:mod:`molora_adapters._plugin`, layer 0) runs the seam when ``adapters`` is
imported; the seam's own modules tell it when they finish importing, and those edges into it are no circle.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "molora_adapters"
SEAM = "molora_adapters._integration"
TRIGGER = "molora_adapters._plugin"

# (module prefix, layer): a module belongs to the longest prefix that matches it. Lower layers never import higher
# ones. Every command-line module (`cli`, `*.cli`) is in the top layer: it wires the layers below together.
LAYERS: list[tuple[str, int]] = [
    # 0: leaf utilities and the seam's patch mechanism
    ("molora_adapters.version", 0),
    ("molora_adapters.registry", 0),
    ("molora_adapters.utils", 0),
    ("molora_adapters._patching", 0),
    ("molora_adapters._plugin", 0),
    # 1: data types and corpora, the embedded encoder, the mixture block
    ("molora_adapters.data", 1),
    ("molora_adapters.models", 1),
    ("molora_adapters.mixture", 1),
    # 2: data preparation (LLM annotation, projection) and the X-STA core (layers, head, model methods)
    ("molora_adapters.data.llm", 2),
    ("molora_adapters.data.projection", 2),
    ("molora_adapters.xsta", 2),
    # 3: the registration seam and the package root that runs it
    ("molora_adapters._integration", 3),
    ("molora_adapters", 3),
    # 4: reloading a saved staged run (below both inference and training)
    ("molora_adapters.loading", 4),
    # 5: the OIE core: labels, extraction records, formats, heads, decoding, features
    ("molora_adapters.oie", 5),
    # 5: loading a packaged model (the shipped one); 6: building it (its card reads the published anchors)
    ("molora_adapters.oie.shipping", 5),
    ("molora_adapters.oie.shipping.build", 6),
    ("molora_adapters.oie.shipping.card", 6),
    # 6: inference and scoring
    ("molora_adapters.oie.pipeline", 6),
    ("molora_adapters.oie.benchmarks", 6),
    ("molora_adapters.oie.evaluation", 6),
    ("molora_adapters.xsta.data", 6),
    ("molora_adapters.xsta.pipeline", 6),
    # 6: the same pipelines as `transformers` pipelines
    ("molora_adapters.oie.hf_pipeline", 6),
    ("molora_adapters.xsta.hf_pipeline", 6),
    # 7: training
    ("molora_adapters.training", 7),
    # 8: task recipes: training plans, what projection is handed
    ("molora_adapters.oie.recipes", 8),
    ("molora_adapters.oie.training_run", 8),
    ("molora_adapters.oie.train_cli", 9),  # `molora train`
    ("molora_adapters.oie.projection", 8),
    ("molora_adapters.xsta.training", 8),
]
TOP = 9  # command lines


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _targets(module: str, is_package: bool, node: ast.AST, modules: dict) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".")[: len(module.split(".")) - (node.level - (1 if is_package else 0))]
            base_name = ".".join(base + ([node.module] if node.module else []))
        else:
            base_name = node.module or ""
        names = [
            f"{base_name}.{a.name}" if f"{base_name}.{a.name}" in modules else base_name for a in node.names
        ]
    out = []
    for name in names:
        if not name.startswith("molora_adapters"):
            continue
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        if name != module:
            out.append(name)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in the file)."""
    modules = _modules()
    graph = {}
    for module, (path, is_package) in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(_targets(module, is_package, node, modules))
        graph[module] = edges
    return graph


def layer(module: str) -> int:
    if module.rsplit(".", 1)[-1] == "cli":
        return TOP
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"module `{module}` is in no layer of LAYERS; add it")
    return dict(LAYERS)[best]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_reexport(module: str, target: str, modules: dict) -> bool:
    """A package ``__init__`` importing one of its direct children (re-exporting it)."""
    return modules[module][1] and target.rsplit(".", 1)[0] == module


def test_every_module_has_a_layer_and_the_graph_is_real():
    graph = import_graph()
    for module in graph:
        layer(module)
    # the graph sees relative, absolute and function-level imports
    assert "molora_adapters.oie.formats.readers" in graph["molora_adapters.oie.formats.writers"]
    assert "molora_adapters.loading" in graph["molora_adapters.oie.pipeline"]


def test_no_import_circle():
    graph = import_graph()
    modules = _modules()
    # a package __init__ re-exporting its sub-modules is not a dependency of theirs on it; the trigger is called
    # back by the modules it imports
    deps = {m: {t for t in ts if not _is_reexport(m, t, modules) and t != TRIGGER} for m, ts in graph.items()}
    assert _cycles(deps) == []


def test_imports_point_down_except_into_the_seam():
    graph = import_graph()
    modules = _modules()
    upward = sorted(
        f"{m} ({layer(m)}) -> {t} ({layer(t)})"
        for m, targets in graph.items()
        for t in targets
        if layer(t) > layer(m) and not _is_reexport(m, t, modules) and t != SEAM
    )
    assert upward == []


def test_the_seam_is_the_only_upward_target():
    """At most one module is reached from a layer below: the seam (its own patch helper sits in layer 0)."""
    graph = import_graph()
    modules = _modules()
    reached_from_below = {
        t for m, ts in graph.items() for t in ts if layer(t) > layer(m) and not _is_reexport(m, t, modules)
    }
    assert reached_from_below <= {SEAM}


@pytest.mark.slow
def test_imports_do_not_load_the_layer_above():
    """One fresh interpreter: data preparation loads no OIE module, OIE inference loads no training module."""
    script = textwrap.dedent(
        """
        import json, sys
        import molora_adapters.data.projection
        after_projection = sorted(sys.modules)
        import molora_adapters.oie.pipeline
        print(json.dumps([after_projection, sorted(sys.modules)]))
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    after_projection, after_pipeline = json.loads(proc.stdout.strip().splitlines()[-1])

    def under(modules: list[str], package: str) -> list[str]:
        return [m for m in modules if m == package or m.startswith(package + ".")]

    assert "molora_adapters.data.projection" in after_projection
    assert under(after_projection, "molora_adapters.oie") == []
    assert "molora_adapters.oie.pipeline" in after_pipeline
    assert under(after_pipeline, "molora_adapters.training") == []
