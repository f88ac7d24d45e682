"""Int8 weight-only quantization of the audio LLM for serving.

Each linear layer of the transformer blocks keeps its weight as int8 with one scale per output row
(symmetric, absmax / 127) and dequantizes it in its forward, so the weights take a quarter of their
float32 memory (half of bf16) on any device, CPU or CUDA, without a kernel library. The tied
embedding / output matrix stays in its float type: quantizing the output head alone would untie it
and hold two copies. Activations are untouched (weight-only), the usual choice for decode-bound LLMs.
"""
import torch
from torch import nn
from torch.nn import functional as F


class Int8Linear(nn.Module):
    """A drop-in nn.Linear whose weight is int8 plus a per-row scale."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        self.register_buffer("qweight", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(linear.weight.dtype))
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # under autocast x may be float32 while F.linear runs in bf16: dequantize to x's type and
        # let autocast cast, as it would for a float weight
        w = self.qweight.to(x.dtype) * self.scale.to(x.dtype)[:, None]
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight-only"


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace every nn.Linear inside the decoder layers (attention and MLP projections) in place;
    returns the model. Its input/output embeddings are left as they are (see the module doc)."""
    layers = model.get_decoder().layers if hasattr(model, "get_decoder") else []
    n = 0
    for layer in layers:
        for name, child in list(layer.named_modules()):
            for attr, sub in list(child.named_children()):
                if isinstance(sub, nn.Linear):
                    setattr(child, attr, Int8Linear(sub))
                    n += 1
    if n == 0:
        raise ValueError("quantize_int8: no linear layers found in the model's decoder layers")
    return model


def weight_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers (shared tensors counted once): the model's resident size."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total
