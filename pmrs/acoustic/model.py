"""The latent-factor CNN of van den Oord, Dieleman & Schrauwen (2013): log-mel -> WMF factors.

Input is a window of a log-mel spectrogram, ``(batch, n_mels, window_frames)`` float32 (about 3 s:
130 frames at 22,050 Hz, hop 512). The mel bands are the input channels of 1-D convolutions over
time, as in the paper: each filter spans every band and a few frames, so the network learns
spectro-temporal patterns that may sit anywhere in time but are tied to their frequency. (The
convolutions are written as ``(1, k)`` ``Conv2d`` on ``(batch, bands, 1, frames)`` in channels_last
layout, the same operation, because torch's CPU ``Conv1d`` is about 1.5x slower.) Each block is
convolution -> (batch norm, off by default: it made CPU training about 2.5x slower) -> ReLU ->
max-pool over time. Global pooling over the remaining time steps (mean and max, concatenated)
makes the output independent of where in the window a pattern occurs. Then FC1 -> ReLU -> dropout
-> FC2 -> ReLU: the output of FC2 is the song's acoustic *embedding*. Linear heads on the
embedding (after dropout while training) give the predicted WMF factors and, when genre labels
exist, genre logits (softmax at inference).

The model carries its own input and target normalisation as buffers, so a saved ``state_dict`` is
all that is needed to predict: per-band ``input_mean``/``input_std`` (from the training set) are
applied to the input, and the factor head's output is mapped back to WMF units with
``factor_mean``/``factor_scale`` (see ``CNNConfig.target_scaling``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

TARGET_SCALINGS = ("global", "per_dim", "none")
EMBEDDING_ACTIVATIONS = ("relu", "none")


@dataclass(frozen=True)
class CNNConfig:
    """Settings for ``pmrs train-cnn`` (``[cnn]`` in a TOML config).

    Architecture: ``channels[i]`` filters of ``kernel_frames[i]`` frames, then max-pooling by
    ``pool_frames[i]`` over time, for each block i. ``n_factors`` 0 means "take it from the WMF
    targets"; ``n_genres`` 0 means "take it from the genre labels when there are any" (no genre
    head when training gets no labels or ``genre_loss_weight`` is 0).

    Targets (``target_scaling``): "global" centres each WMF dimension and divides all of them by
    one scale, ``sqrt(sum_j var_j)``, so the loss is the paper's sum of squared errors up to a
    constant and predicting the mean scores 1.0; "per_dim" standardises each dimension (then
    divides by ``sqrt(n_factors)``, mean predictor again 1.0), which weights weak dimensions as much
    as strong ones; "none" trains on raw factors. Predictions are always returned in WMF units.

    ``device``: "auto" (CUDA when available, else CPU), "cpu", or "cuda"/"cuda:N".
    ``threads``: ``torch.set_num_threads`` while training (0: leave torch's setting alone).
    """

    n_mels: int = 128
    window_frames: int = 130  # about 3 s at 22,050 Hz, hop 512
    channels: tuple[int, ...] = (32, 64, 128, 128)
    kernel_frames: tuple[int, ...] = (5, 5, 3, 3)
    pool_frames: tuple[int, ...] = (2, 2, 2, 2)
    batch_norm: bool = False
    hidden: int = 256  # FC1 width
    embedding_dim: int = 128  # FC2 width: the acoustic embedding
    embedding_activation: str = "relu"  # after FC2: "relu" or "none"
    dropout: float = 0.25
    n_factors: int = 0  # 0: from the WMF factors
    n_genres: int = 0  # 0: from the genre labels (none: no genre head)
    genre_loss_weight: float = 0.2
    target_scaling: str = "global"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4  # AdamW (decoupled)
    batch_size: int = 64
    max_epochs: int = 40
    windows_per_song_per_epoch: int = 8
    patience: int = 5  # epochs without a better validation loss before stopping
    validation_share: float = 0.1
    seed: int = 0
    device: str = "auto"
    threads: int = 2

    def __post_init__(self) -> None:
        for name in ("channels", "kernel_frames", "pool_frames"):  # TOML and JSON give lists
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not (len(self.channels) == len(self.kernel_frames) == len(self.pool_frames) >= 1):
            raise ValueError("channels, kernel_frames and pool_frames need the same length (>= 1)")
        if min(self.channels) < 1 or min(self.kernel_frames) < 1 or min(self.pool_frames) < 1:
            raise ValueError("channels, kernel_frames and pool_frames must be positive")
        if self.n_mels < 1 or self.hidden < 1 or self.embedding_dim < 1:
            raise ValueError("n_mels, hidden and embedding_dim must be at least 1")
        if self.pooled_frames < 1:
            raise ValueError(f"window_frames={self.window_frames} is too short for pooling by "
                             f"{self.pool_frames}; lengthen the window or pool less")
        if self.n_factors < 0 or self.n_genres < 0:
            raise ValueError("n_factors and n_genres must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if self.target_scaling not in TARGET_SCALINGS:
            raise ValueError(f"target_scaling must be one of {TARGET_SCALINGS}")
        if self.embedding_activation not in EMBEDDING_ACTIVATIONS:
            raise ValueError(f"embedding_activation must be one of {EMBEDDING_ACTIVATIONS}")
        if self.genre_loss_weight < 0 or self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("need genre_loss_weight >= 0, learning_rate > 0, weight_decay >= 0")
        if self.batch_size < 1 or self.max_epochs < 1 or self.windows_per_song_per_epoch < 1:
            raise ValueError("batch_size, max_epochs and windows_per_song_per_epoch must be >= 1")
        if self.patience < 1 or not 0 <= self.validation_share < 1 or self.threads < 0:
            raise ValueError("need patience >= 1, 0 <= validation_share < 1 and threads >= 0")

    @property
    def pooled_frames(self) -> int:
        """Time steps left after the last max-pool (the global pooling's input length)."""
        n = self.window_frames
        for p in self.pool_frames:
            n //= p
        return n

    @classmethod
    def from_dict(cls, values: dict) -> "CNNConfig":
        """From ``asdict`` output read back from JSON; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown CNN setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; "cpu"; "cuda" or "cuda:N" (must be available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA device; "
                           "use device='cpu' or 'auto'")
    return device


class LatentFactorCNN(nn.Module):
    """Conv blocks over time, global mean+max pooling, FC1, FC2 (embedding), factor/genre heads.

    ``forward(x)`` with ``x`` ``(batch, n_mels, window_frames)`` float32 (log-mel, unnormalised)
    returns a dict: ``factors`` ``(batch, n_factors)`` in WMF units, ``embedding``
    ``(batch, embedding_dim)`` (FC2's output after its activation) and, when the model has a genre
    head, ``genre_logits`` ``(batch, n_genres)``. ``factors_scaled`` is the factor head's raw output
    (the scaled space the loss is computed in).
    """

    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        if cfg.n_factors < 1:
            raise ValueError("the model needs n_factors >= 1 (train_cnn sets it from the targets)")
        self.config = cfg
        blocks: list[nn.Module] = []
        in_ch = cfg.n_mels
        for out_ch, k, p in zip(cfg.channels, cfg.kernel_frames, cfg.pool_frames):
            # A (1, k) Conv2d over (batch, bands, 1, frames) is exactly a 1-D convolution over
            # time with the bands as channels; in channels_last layout it trained about 1.5x
            # faster than nn.Conv1d on this project's 2-core CPU (torch 2.13, oneDNN).
            blocks.append(nn.Conv2d(in_ch, out_ch, kernel_size=(1, k), padding="same",
                                    bias=not cfg.batch_norm))
            if cfg.batch_norm:
                blocks.append(nn.BatchNorm2d(out_ch))
            blocks.append(nn.ReLU())
            blocks.append(nn.MaxPool2d((1, p)))
            in_ch = out_ch
        self.conv = nn.Sequential(*blocks)
        self.fc1 = nn.Linear(2 * in_ch, cfg.hidden)  # mean and max pooled features
        self.fc2 = nn.Linear(cfg.hidden, cfg.embedding_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.factor_head = nn.Linear(cfg.embedding_dim, cfg.n_factors)
        self.genre_head = nn.Linear(cfg.embedding_dim, cfg.n_genres) if cfg.n_genres > 0 else None
        self.register_buffer("input_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("input_std", torch.ones(cfg.n_mels))
        self.register_buffer("factor_mean", torch.zeros(cfg.n_factors))
        self.register_buffer("factor_scale", torch.ones(cfg.n_factors))
        self.conv.to(memory_format=torch.channels_last)

    @property
    def device(self) -> torch.device:
        return self.input_mean.device

    def set_input_normalization(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Per-band mean and standard deviation ``(n_mels,)`` of the training log-mels."""
        std = np.where(np.asarray(std) > 1e-6, std, 1.0)
        self.input_mean.copy_(torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.input_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def set_target_scaling(self, mean: np.ndarray, scale: np.ndarray) -> None:
        """``factors = factors_scaled * scale + mean``, each ``(n_factors,)``."""
        self.factor_mean.copy_(torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.factor_scale.copy_(torch.as_tensor(np.asarray(scale), dtype=torch.float32))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The acoustic embedding ``(batch, embedding_dim)`` of windows ``x``."""
        cfg = self.config
        if x.dim() != 3 or x.shape[1] != cfg.n_mels:
            raise ValueError(f"expected input (batch, {cfg.n_mels}, frames), got {tuple(x.shape)}")
        x = (x - self.input_mean[:, None]) / self.input_std[:, None]
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # (batch, bands, 1, T)
        h = self.conv(x).squeeze(2)  # (batch, channels, pooled_frames)
        h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        h = self.dropout(torch.relu(self.fc1(h)))
        e = self.fc2(h)
        return torch.relu(e) if cfg.embedding_activation == "relu" else e

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e = self.embed(x)
        h = self.dropout(e)
        z = self.factor_head(h)
        out = {"factors": z * self.factor_scale + self.factor_mean, "factors_scaled": z,
               "embedding": e}
        if self.genre_head is not None:
            out["genre_logits"] = self.genre_head(h)
        return out
