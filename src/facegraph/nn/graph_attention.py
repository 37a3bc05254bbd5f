"""Dense multi-head graph attention over a small, fully connected graph (SPIGA's 68 landmark nodes).

Every node attends to every node, so the layer is scaled dot-product attention on (B, N, F) node
features; with N = 68 that is a few small matrix products, cheaper on a CPU than message passing over
N² edges (``benchmarks/spiga_attention.py`` measures both). Each layer propagates a message and updates
the node with an MLP of [node, message], added to the node (projected when the width changes), as in
attentional propagation (Sarlin et al. 2020), the layer SPIGA's cascade stacks.
"""

from __future__ import annotations

import torch
from torch import nn


class GraphAttention(nn.Module):
    """(B, N, dim) node features -> (B, N, out_dim), and the (B, heads, N, N) attention weights.

    ``dim`` must be divisible by ``heads``. The update MLP is 2 dim -> 2 dim -> out_dim with layer norm
    and ReLU in between (layer norm rather than batch norm: fine-tuning runs on small batches).
    """

    def __init__(self, dim: int, heads: int, out_dim: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.merge = nn.Linear(dim, dim)
        self.update = nn.Sequential(
            nn.Linear(2 * dim, 2 * dim),
            nn.LayerNorm(2 * dim),
            nn.ReLU(inplace=True),
            nn.Linear(2 * dim, out_dim),
        )
        self.skip = nn.Identity() if out_dim == dim else nn.Linear(dim, out_dim)

    def forward(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, count, dim = nodes.shape

        def split(x: torch.Tensor) -> torch.Tensor:  # (B, N, F) -> (B, heads, N, F / heads)
            return x.view(batch, count, self.heads, dim // self.heads).transpose(1, 2)

        query, key, value = split(self.query(nodes)), split(self.key(nodes)), split(self.value(nodes))
        weights = torch.softmax(query @ key.transpose(-1, -2) / (dim // self.heads) ** 0.5, dim=-1)
        message = self.merge((weights @ value).transpose(1, 2).reshape(batch, count, dim))
        return self.skip(nodes) + self.update(torch.cat([nodes, message], dim=-1)), weights
