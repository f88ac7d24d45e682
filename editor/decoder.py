"""Token-to-audio decoder: both token streams plus a reference clip's voice -> log-mel -> waveform.

Tokens are embedded, repeated to the 10 ms frame rate and summed; the reference clip is summarised
as speaker statistics (log-mel mean/spread over speech, log-F0 mean/spread) and added to every
frame; a bidirectional transformer with a convolutional position embedding then regresses the
frames (log-mel, plus log F0 and a voicing logit as auxiliary outputs that keep pitch explicit).
Griffin-Lim (editor/vocoder.py) is the weight-free vocoder.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from editor import features
from editor.features import Frames
from editor.tokenizer import speech_mask


class DecoderConfig(PretrainedConfig):
    model_type = "lms_token_decoder"

    def __init__(self, version="decoder-v1", tokenizer_version="tokenizer-v1", ling_codebook=1024,
                 sem_codebook=4096, ling_hop=6, sem_hop=4, n_mels=80, hidden=384, layers=6,
                 heads=6, ff_mult=4, dropout=0.1, pos_kernel=15, **kwargs):
        self.version, self.tokenizer_version = version, tokenizer_version
        self.ling_codebook, self.sem_codebook = ling_codebook, sem_codebook
        self.ling_hop, self.sem_hop = ling_hop, sem_hop
        self.n_mels = n_mels
        self.hidden, self.layers, self.heads, self.ff_mult = hidden, layers, heads, ff_mult
        self.dropout, self.pos_kernel = dropout, pos_kernel
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


class TokenDecoder(PreTrainedModel):
    config_class = DecoderConfig
    base_model_prefix = "decoder"
    main_input_name = "ling"

    def __init__(self, config: DecoderConfig):
        super().__init__(config)
        h = config.hidden
        # the last id of each table is padding
        self.ling_emb = nn.Embedding(config.ling_codebook + 1, h)
        self.sem_emb = nn.Embedding(config.sem_codebook + 1, h)
        self.ref_proj = nn.Sequential(nn.Linear(config.ref_dim, h), nn.GELU(), nn.Linear(h, h))
        self.pos_conv = nn.Conv1d(h, h, config.pos_kernel, padding=config.pos_kernel // 2, groups=h // 8 or 1)
        layer = nn.TransformerEncoderLayer(h, config.heads, config.ff_mult * h, config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(h)
        self.head = nn.Linear(h, config.out_dim)
        # normalization of targets and reference statistics, fitted on the training corpus
        self.register_buffer("target_mean", torch.zeros(config.out_dim))
        self.register_buffer("target_std", torch.ones(config.out_dim))
        self.register_buffer("ref_mean", torch.zeros(config.ref_dim))
        self.register_buffer("ref_std", torch.ones(config.ref_dim))
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, ling: torch.Tensor, sem: torch.Tensor, ref: torch.Tensor, frame_mask: torch.Tensor | None = None):
        """ling (B, T/ling_hop), sem (B, T/sem_hop) ids; ref (B, ref_dim) raw stats -> (B, T, out_dim),
        normalized; frame_mask (B, T) True where frames are real."""
        c = self.config
        x = (self.ling_emb(ling).repeat_interleave(c.ling_hop, 1)
             + self.sem_emb(sem).repeat_interleave(c.sem_hop, 1))
        x = x + self.ref_proj((ref - self.ref_mean) / self.ref_std)[:, None, :]
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        pad = None if frame_mask is None else ~frame_mask
        x = self.encoder(x, src_key_padding_mask=pad)
        return self.head(self.norm(x))

    def loss(self, pred: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Terms on normalized targets: L1 log-mel, L1 log F0 on voiced frames, BCE voicing."""
        d = self.config.n_mels
        t = (target - self.target_mean) / self.target_std
        m = frame_mask.float()
        voiced = target[..., d + 1] * m
        per = lambda e, w: (e * w).sum() / w.sum().clamp(min=1)
        terms = {"mel": per((pred[..., :d] - t[..., :d]).abs().mean(-1), m),
                 "lf0": per((pred[..., d] - t[..., d]).abs(), voiced),
                 "vuv": per(F.binary_cross_entropy_with_logits(pred[..., d + 1].float(), target[..., d + 1], reduction="none"), m)}
        terms["total"] = terms["mel"] + 0.5 * terms["lf0"] + 0.2 * terms["vuv"]
        return terms

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
