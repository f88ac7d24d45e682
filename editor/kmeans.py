"""Lloyd k-means in torch: the same code fits a 4096-entry codebook on the GPU and a tiny one on the CPU."""
import torch


def nearest(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
    """Index of the nearest centroid for every row of x (chunked so the distance matrix stays small)."""
    c2 = (centroids * centroids).sum(1)
    out = []
    for i in range(0, len(x), chunk):
        xc = x[i:i + chunk]
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 does not change the argmin
        out.append((c2[None, :] - 2.0 * xc @ centroids.T).argmin(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def fit(x: torch.Tensor, k: int, iters: int, seed: int) -> torch.Tensor:
    """k centroids of x (N, D). Empty clusters are re-seeded with the points worst served so far."""
    if len(x) < k:
        raise ValueError(f"only {len(x)} training vectors for a {k}-entry codebook: use more data or a smaller codebook")
    g = torch.Generator(device="cpu").manual_seed(seed)
    centroids = x[torch.randperm(len(x), generator=g)[:k].to(x.device)].clone()
    for _ in range(iters):
        assign = nearest(x, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        n_empty = int((~filled).sum())
        if n_empty:
            err = ((x - centroids[assign]) ** 2).sum(1)
            centroids[~filled] = x[err.topk(n_empty).indices]
    return centroids
