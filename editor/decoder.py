"""Token-to-audio decoder: both token streams plus a reference clip's voice -> log-mel -> waveform.

Tokens are taken as their FSQ vectors (editor/fsq.py; ids are turned into them here, so the same
model trains jointly with the tokenizer's encoders and later on frozen ids), projected, repeated to
the 10 ms frame rate and summed; the reference clip is summarised
as speaker statistics (log-mel mean/spread over speech, log-F0 mean/spread) and added to every
frame; a bidirectional transformer with a convolutional position embedding then regresses the
frames (log-mel, plus log F0 and a voicing logit as auxiliary outputs that keep pitch explicit).
With n_phones, a training-only head also names each frame's phone (editor/phones.py). By default
(phone_head=local) it reads the token embeddings within about two tokens, so the tokens themselves
must say which phone is spoken; phone_head=context reads the transformer's output instead, which
sees whole sentences (on the held-out round trip: lower WER, but F0 correlation falls, docs/editor.md).
The weight-free vocoders are in editor/vocoder.py.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from editor import features
from editor.features import Frames
from editor.fsq import FSQ
from editor.tokenizer import speech_mask


class DecoderConfig(PretrainedConfig):
    model_type = "lms_token_decoder"

    def __init__(self, version="decoder-v10", tokenizer_version="tokenizer-v10", ling_levels=(8, 8, 4, 4),
                 sem_levels=(8, 8, 8, 8), ling_hop=6, sem_hop=4, n_mels=80, hidden=384, layers=6,
                 heads=6, ff_mult=4, dropout=0.1, pos_kernel=15, kind="regression", flow_steps=16,
                 flow_temperature=0.667, n_phones=0, phone_head="local", **kwargs):
        self.version, self.tokenizer_version = version, tokenizer_version
        self.ling_levels, self.sem_levels = list(ling_levels), list(sem_levels)
        self.ling_hop, self.sem_hop = ling_hop, sem_hop
        self.n_mels = n_mels
        self.hidden, self.layers, self.heads, self.ff_mult = hidden, layers, heads, ff_mult
        self.dropout, self.pos_kernel = dropout, pos_kernel
        if kind not in ("regression", "flow"):
            raise ValueError(f"editor.decoder.kind={kind}: choose regression or flow")
        self.kind, self.flow_steps, self.flow_temperature = kind, flow_steps, flow_temperature
        if phone_head not in ("local", "context"):
            raise ValueError(f"editor.decoder.phone_head={phone_head}: choose local or context")
        if n_phones and kind == "flow" and phone_head == "context":
            raise ValueError("editor.decoder.phone_head=context with kind=flow: the transformer sees the noisy "
                             "target mel there, so the phones would not have to come from the tokens; use local")
        self.n_phones, self.phone_head = n_phones, phone_head   # n_phones 0: no phone head
        super().__init__(**kwargs)

    @property
    def out_dim(self) -> int:   # log-mel, log F0, voicing logit
        return self.n_mels + 2

    @property
    def ref_dim(self) -> int:
        return 2 * self.n_mels + 2


def reference_stats(fr: Frames) -> np.ndarray:
    """The voice of a reference clip as one vector (what the decoder takes timbre and pitch range from)."""
    env = fr.mel[speech_mask(fr.mel)]
    voiced = fr.f0[fr.f0 > 0]
    lf0 = np.log(voiced) if len(voiced) > 2 else np.array([np.log(100.0), np.log(100.0)])
    return np.concatenate([env.mean(0), env.std(0), [lf0.mean(), lf0.std()]]).astype(np.float32)


def frame_targets(fr: Frames) -> np.ndarray:
    """(T, out_dim) regression targets: log-mel, continuous log F0, voicing."""
    vuv = (fr.f0 > 0).astype(np.float32)[:, None]
    return np.concatenate([fr.mel, features.continuous_lf0(fr.f0)[:, None], vuv], 1).astype(np.float32)


SIGMA_MIN = 1e-4
PHONE_SPAN = 13   # frames the phone head reads: 130 ms, a linguistic token and its neighbours' edges
TIME_DIM = 64


def _frame_noise(n: int, dims: int, seed: int, chunk: int = 1000) -> torch.Tensor:
    """(n, dims) standard normal noise whose first k rows do not depend on n: a clip's flow sample is
    then the same whatever it is batched and padded with."""
    return features.seeded_chunks(n, chunk, seed, lambda g: torch.randn(chunk, dims, generator=g))


def _time_embedding(t: torch.Tensor) -> torch.Tensor:
    """Sinusoidal features of flow times t in [0, 1] (B,) -> (B, TIME_DIM)."""
    freqs = torch.exp(-math.log(10000.0) * torch.arange(TIME_DIM // 2, device=t.device) / (TIME_DIM // 2))
    arg = 1000.0 * t[:, None].float() * freqs[None, :]
    return torch.cat([arg.sin(), arg.cos()], -1)


class TokenDecoder(PreTrainedModel):
    config_class = DecoderConfig
    base_model_prefix = "decoder"
    main_input_name = "ling"

    def __init__(self, config: DecoderConfig):
        super().__init__(config)
        h = config.hidden
        self.ling_fsq, self.sem_fsq = FSQ(config.ling_levels), FSQ(config.sem_levels)
        self.ling_emb = nn.Linear(len(config.ling_levels), h)
        self.sem_emb = nn.Linear(len(config.sem_levels), h)
        self.ref_proj = nn.Sequential(nn.Linear(config.ref_dim, h), nn.GELU(), nn.Linear(h, h))
        self.pos_conv = nn.Conv1d(h, h, config.pos_kernel, padding=config.pos_kernel // 2, groups=h // 8 or 1)
        layer = nn.TransformerEncoderLayer(h, config.heads, config.ff_mult * h, config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(h)
        self.head = nn.Linear(h, config.out_dim)
        self.phone_head = None
        if config.n_phones and config.phone_head == "local":
            self.phone_head = nn.Sequential(nn.Conv1d(h, h, PHONE_SPAN, padding=PHONE_SPAN // 2), nn.GELU(),
                                            nn.Conv1d(h, config.n_phones, 1))
        elif config.n_phones:
            self.phone_head = nn.Linear(h, config.n_phones)
        if config.kind == "flow":   # the noisy mel and the flow time enter every frame
            self.mel_in = nn.Linear(config.n_mels, h)
            self.time_mlp = nn.Sequential(nn.Linear(TIME_DIM, h), nn.GELU(), nn.Linear(h, h))
        # normalization of targets and reference statistics, fitted on the training corpus
        self.register_buffer("target_mean", torch.zeros(config.out_dim))
        self.register_buffer("target_std", torch.ones(config.out_dim))
        self.register_buffer("ref_mean", torch.zeros(config.ref_dim))
        self.register_buffer("ref_std", torch.ones(config.ref_dim))
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, ling: torch.Tensor, sem: torch.Tensor, ref: torch.Tensor, frame_mask: torch.Tensor | None = None,
                x_t: torch.Tensor | None = None, t: torch.Tensor | None = None, with_phones: bool = False):
        """ling (B, T/ling_hop), sem (B, T/sem_hop) ids, or their FSQ vectors (B, N, levels);
        ref (B, ref_dim) raw stats -> (B, T, out_dim), normalized; frame_mask (B, T) True where frames are real.
        A flow decoder also takes the noisy normalized mel x_t (B, T, n_mels) at flow times t (B,), and its
        first n_mels outputs are then the velocity. with_phones: also (B, T, n_phones) phone logits."""
        c = self.config
        if not ling.is_floating_point():
            ling, sem = self.ling_fsq.vectors(ling), self.sem_fsq.vectors(sem)
        tokens = (self.ling_emb(ling).repeat_interleave(c.ling_hop, 1)
                  + self.sem_emb(sem).repeat_interleave(c.sem_hop, 1))
        x = tokens + self.ref_proj((ref - self.ref_mean) / self.ref_std)[:, None, :]
        if c.kind == "flow":
            x = x + self.mel_in(x_t) + self.time_mlp(_time_embedding(t))[:, None, :]
        if frame_mask is not None:  # padding reads as the zeros past a clip's end: batch mates do not leak in
            x = x * frame_mask[..., None]
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        pad = None if frame_mask is None else ~frame_mask
        x = self.norm(self.encoder(x, src_key_padding_mask=pad))
        if not with_phones:
            return self.head(x)
        if c.phone_head == "local":
            return self.head(x), self.phone_head(tokens.transpose(1, 2)).transpose(1, 2)
        return self.head(x), self.phone_head(x)

    @staticmethod
    def _outputs(out) -> tuple[torch.Tensor, torch.Tensor | None]:
        return out if isinstance(out, tuple) else (out, None)

    def training_terms(self, ling, sem, ref, frame_mask, target, phones=None,
                       phone_weight: float = 0.0) -> dict[str, torch.Tensor]:
        """Loss terms on raw targets (B, T, out_dim): regression, or conditional flow matching
        (optimal-transport path from noise to the normalized mel; Lipman et al. 2023). phones (B, T):
        frame labels (editor/phones.py, negative where unknown), cross-entropy weighted by phone_weight."""
        d = self.config.n_mels
        use_phones = self.phone_head is not None and phones is not None and phone_weight > 0
        tn = (target - self.target_mean) / self.target_std
        m = frame_mask.float()
        per = lambda e, w: (e * w).sum() / w.sum().clamp(min=1)
        if self.config.kind == "regression":
            pred, phone_logits = self._outputs(self(ling, sem, ref, frame_mask, with_phones=use_phones))
            mel_err = (pred[..., :d] - tn[..., :d]).abs().mean(-1)
        else:
            x1 = tn[..., :d]
            x0 = torch.randn_like(x1)
            t = torch.rand(len(x1), device=x1.device)
            s = t[:, None, None]
            pred, phone_logits = self._outputs(
                self(ling, sem, ref, frame_mask, (1 - (1 - SIGMA_MIN) * s) * x0 + s * x1, t, with_phones=use_phones))
            mel_err = ((pred[..., :d] - (x1 - (1 - SIGMA_MIN) * x0)) ** 2).mean(-1)
        voiced = target[..., d + 1] * m
        terms = {"mel": per(mel_err, m),
                 "lf0": per((pred[..., d] - tn[..., d]).abs(), voiced),
                 "vuv": per(F.binary_cross_entropy_with_logits(pred[..., d + 1].float(), target[..., d + 1], reduction="none"), m)}
        terms["total"] = terms["mel"] + 0.5 * terms["lf0"] + 0.2 * terms["vuv"]
        if use_phones:
            known = (phones >= 0) & frame_mask
            ce = F.cross_entropy(phone_logits.float().transpose(1, 2), phones.clamp(min=0), reduction="none")
            terms["phone"] = per(ce, known.float())
            terms["total"] = terms["total"] + phone_weight * terms["phone"]
        return terms

    @torch.no_grad()
    def predict(self, ling, sem, ref, frame_mask, seed: int = 0) -> torch.Tensor:
        """Normalized predictions (B, T, out_dim): one pass, or flow_steps Euler steps from seeded noise
        (scaled by flow_temperature) for a flow decoder, whose F0 and voicing come from the last step."""
        c = self.config
        if c.kind == "regression":
            return self(ling, sem, ref, frame_mask)
        noise = _frame_noise(frame_mask.shape[1], c.n_mels, seed).to(ref.device)
        x = (c.flow_temperature * noise).expand(len(ref), -1, -1)
        for i in range(c.flow_steps):
            t = torch.full((len(ref),), i / c.flow_steps, device=ref.device)
            out = self(ling, sem, ref, frame_mask, x, t)
            x = x + out[..., :c.n_mels].float() / c.flow_steps
        return torch.cat([x, out[..., c.n_mels:].float()], -1)

    def to_frames(self, pred: torch.Tensor) -> list[Frames]:
        """Normalized predictions (B, T, out_dim) -> frames per item."""
        d = self.config.n_mels
        y = pred.float() * self.target_std + self.target_mean
        y[..., d + 1] = pred[..., d + 1].float()  # the voicing logit is not normalized
        y = y.detach().cpu().numpy()
        out = []
        for item in y:
            f0 = np.where(item[:, d + 1] > 0, np.exp(item[:, d]), 0.0).astype(np.float32)
            out.append(Frames(f0, item[:, :d].copy()))
        return out
