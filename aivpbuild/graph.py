"""The target graph: one networkx DiGraph, edges from an input to what consumes it.

::

    clip:shot-01 ──► frame:shot-01@last ──► clip:shot-02 ──► edit:final
         └─────────────────────────────────────────────────────┘

Selection by id (``shot-01``), glob (``shot-0*``) and a trailing ``+`` for everything
downstream (``shot-03+``); the dependencies of a selected target are always built too.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from aivpbuild.errors import GraphError

if TYPE_CHECKING:
    import networkx as nx

    from aivpbuild.targets import Target


def build_graph(targets: Mapping[str, Target]) -> nx.DiGraph:
    """The DAG of targets; a cycle is a GraphError that prints it."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(targets)
    for target in targets.values():
        for dep in target.deps:
            graph.add_edge(dep, target.id)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return graph
    nodes = [edge[0] for edge in cycle] + [cycle[0][0]]
    shown = " --> ".join(_short(n) for n in nodes if not n.startswith("frame:"))
    raise GraphError(
        f"the clips depend on each other in a cycle: {shown}",
        hint="a clip cannot use a frame of a clip that (directly or not) uses its own frames",
    )


def build_order(graph: nx.DiGraph, targets: Mapping[str, Target]) -> list[str]:
    """Dependency order that keeps manifest order wherever the graph allows it."""
    import networkx as nx

    position = {tid: i for i, tid in enumerate(targets)}
    return list(nx.lexicographical_topological_sort(graph, key=position.__getitem__))


def _short(target_id: str) -> str:
    return target_id.split(":", 1)[-1]


def select(graph: nx.DiGraph, targets: Mapping[str, Target], patterns: Iterable[str]) -> set[str]:
    """Target ids named by ``patterns`` plus everything they need (and ``+``: what needs them)."""
    import networkx as nx

    chosen: set[str] = set()
    names = {tid: _short(tid) for tid in targets}
    for raw in patterns:
        downstream = raw.endswith("+")
        pattern = raw[:-1] if downstream else raw
        matched = {tid for tid, name in names.items()
                   if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(tid, pattern)}
        if pattern in ("edit", "final"):
            matched |= {tid for tid in targets if tid.startswith("edit:")}
        if not matched:
            clips = [n for tid, n in names.items() if tid.startswith("clip:")]
            close = difflib.get_close_matches(pattern, clips, n=1)
            raise GraphError(
                f"no target matches {raw!r}",
                hint=f"did you mean {close[0]!r}?" if close else "run `aivpbuild status` to list targets",
            )
        for tid in matched:
            chosen.add(tid)
            if downstream:
                chosen |= nx.descendants(graph, tid)
    needed = set(chosen)
    for tid in chosen:
        needed |= nx.ancestors(graph, tid)
    return needed


def to_mermaid(graph: nx.DiGraph, order: list[str]) -> str:
    ids = {tid: f"n{i}" for i, tid in enumerate(order)}
    lines = ["graph LR"]
    lines += [f'  {ids[t]}["{t}"]' for t in order]
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in sorted(graph.edges, key=lambda e: (ids[e[0]], ids[e[1]]))]
    return "\n".join(lines) + "\n"


def to_dot(graph: nx.DiGraph, order: list[str]) -> str:
    lines = ["digraph aivpbuild {", "  rankdir=LR;"]
    lines += [f'  "{t}";' for t in order]
    lines += [f'  "{a}" -> "{b}";' for a, b in sorted(graph.edges)]
    return "\n".join(lines) + "\n}\n"
