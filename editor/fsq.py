"""Finite scalar quantization (Mentzer et al., 2023): each of a few dimensions is squashed into a
bounded range and rounded to one of L levels; the token id is the mixed-radix number of the levels.

Why FSQ and not a learned VQ codebook: every id is reachable by construction (no dead entries, no
commitment loss, no restarts), the codebook size is exactly the product of the levels (1024 = 8*8*4*4,
4096 = 8*8*8*8), and the gradient passes straight through the rounding.
"""
import math

import torch


class FSQ(torch.nn.Module):
    def __init__(self, levels: list[int]):
        super().__init__()
        if not levels or any(int(l) < 2 for l in levels):
            raise ValueError(f"levels={levels}: need at least one dimension with 2 or more levels each")
        # plain lists, not buffers: nothing to save, and nothing left unset when transformers
        # builds the module on the meta device before loading weights
        self.levels_list = [int(l) for l in levels]
        self.basis_list = [math.prod(self.levels_list[:i]) for i in range(len(self.levels_list))]

    def _levels(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.levels_list, dtype=torch.float32, device=like.device)

    @property
    def dim(self) -> int:
        return len(self.levels_list)

    @property
    def size(self) -> int:
        return math.prod(self.levels_list)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """(..., dim) unbounded -> the values that round to the levels (in level steps)."""
        levels = self._levels(z)
        half = (levels - 1) * (1 - 1e-3) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        return torch.tanh(z.float() + torch.tan(offset / half)) * half - offset   # tan: as the paper's code

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(..., dim) unbounded -> (..., dim) quantized values in [-1, 1], straight-through gradient."""
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded / (self._levels(z) // 2)

    def ids(self, q: torch.Tensor) -> torch.Tensor:
        """Quantized values (..., dim) -> ids (...) in [0, size)."""
        half = self._levels(q) // 2
        digits = torch.round(q * half + half).long()
        return (digits * torch.tensor(self.basis_list, device=q.device)).sum(-1)

    def vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (...) -> quantized values (..., dim); the inverse of ids()."""
        levels = self._levels(ids).long()
        digits = (ids[..., None] // torch.tensor(self.basis_list, device=ids.device)) % levels
        return (digits - levels // 2).float() / (levels // 2)
