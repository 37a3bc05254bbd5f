"""SPIGA's graph attention over 68 fully connected landmark nodes: the package's dense layer
(``facegraph.nn.graph_attention.GraphAttention``, batched matrix products) against PyTorch Geometric's
``GATConv`` on the same graph (every node linked to every node, self-loops included; the batch as one
disjoint graph), at the widths of the fast and the paper's configuration. Forward time, median of
repeated runs, on this CPU. Writes RESULTS.md's "spiga-attention" section.
"""

from __future__ import annotations

import datetime
import time

import numpy as np
import torch
from torch_geometric.nn import GATConv

from common import machine, write_section
from facegraph.nn.graph_attention import GraphAttention
from facegraph.nn.spiga import CONFIGS, N_LANDMARKS

BATCHES = (1, 32)
REPEATS = 50


def complete_graph(nodes: int, batch: int) -> torch.Tensor:
    """(2, E) edges of ``batch`` disjoint complete graphs of ``nodes`` nodes with self-loops."""
    source, target = torch.meshgrid(torch.arange(nodes), torch.arange(nodes), indexing="ij")
    one = torch.stack([source.reshape(-1), target.reshape(-1)])
    return torch.cat([one + k * nodes for k in range(batch)], dim=1)


def median_ms(run) -> float:
    with torch.inference_mode():
        for _ in range(5):
            run()
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    rows = []
    for name, config in CONFIGS.items():
        dim, heads, out = config.node_dim, config.heads, config.hidden_dim
        dense = GraphAttention(dim, heads, out).eval()
        # GATConv's heads concatenate: out // heads channels each gives the same output width
        sparse = GATConv(dim, out // heads, heads=heads, add_self_loops=False).eval()
        for batch in BATCHES:
            nodes = torch.randn(batch, N_LANDMARKS, dim)
            flat, edges = nodes.reshape(-1, dim), complete_graph(N_LANDMARKS, batch)
            cells = [median_ms(lambda: dense(nodes)), median_ms(lambda: sparse(flat, edges))]  # noqa: B023
            rows.append(
                f"| `{name}` ({dim} -> {out}, {heads} heads) | {batch} | {cells[0]:.2f} | {cells[1]:.2f} |"
            )
    lines = [
        "## SPIGA's graph attention: dense layer against PyTorch Geometric's GATConv",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}, {torch.get_num_threads()} threads.",
        "",
        f"One attention layer's forward pass over {N_LANDMARKS} fully connected nodes (median of {REPEATS},",
        "milliseconds). The dense layer also runs its update MLP; GATConv is attention and aggregation",
        "only, so the comparison favours it.",
        "",
        "| configuration (node width) | batch | dense layer (ms) | GATConv (ms) |",
        "|---|---|---|---|",
        *rows,
        "",
        "Command: `python benchmarks/spiga_attention.py`",
    ]
    write_section("spiga-attention", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
