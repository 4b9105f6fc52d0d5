"""A small ResNeXt-style CNN on log-mel spectrograms: the generative metrics' classifier.

DiffWave's SC09 metrics (its appendix) come from a ResNeXt trained on spectrograms of the
real training set; its softmax is ``p(y|x)`` and its penultimate layer the features of
FID. This one is sized for CPU training: a stride-2 stem, then three stages of aggregated-residual blocks
(Xie et al. 2017: 1x1 reduce, grouped 3x3, 1x1 expand, summed with the shortcut).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wavediff.errors import WavediffError


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of :class:`SpectrogramClassifier`; ``width`` channels after the stem, doubled per stage."""

    num_classes: int
    n_mels: int = 64
    width: int = 32
    cardinality: int = 8
    blocks_per_stage: int = 2
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise WavediffError(f"classifier num_classes={self.num_classes} must be >= 2")
        if self.width % self.cardinality:
            raise WavediffError(f"classifier width={self.width} must be a multiple of cardinality={self.cardinality}")

    def to_dict(self) -> dict:
        return asdict(self)


class ResNeXtBlock(nn.Module):
    """Bottleneck block with grouped 3x3 conv. ``(B, c_in, H, W) -> (B, c_out, H/s, W/s)``."""

    def __init__(self, c_in: int, c_out: int, cardinality: int, stride: int) -> None:
        super().__init__()
        mid = c_out // 2
        self.reduce = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.grouped = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.expand = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.reduce(x)))
        y = F.relu(self.bn2(self.grouped(y)))
        y = self.bn3(self.expand(y))
        return F.relu(y + self.shortcut(x))


class SpectrogramClassifier(nn.Module):
    """Log-mel ``(B, n_mels, F)`` -> logits ``(B, num_classes)``; :meth:`features` gives the
    penultimate ``(B, 8 * width)`` vector (global average of the last stage)."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.input_norm = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        stages: list[nn.Module] = []
        c = w
        for stage in range(3):
            c_out = w * 2 ** (stage + 1)
            for b in range(config.blocks_per_stage):
                stages.append(ResNeXtBlock(c, c_out, config.cardinality, stride=2 if b == 0 else 1))
                c = c_out
        self.stages = nn.Sequential(*stages)
        self.feature_dim = c
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c, config.num_classes)

    def features(self, logmel: torch.Tensor) -> torch.Tensor:
        if logmel.dim() != 3 or logmel.shape[1] != self.config.n_mels:
            raise WavediffError(f"classifier input must be (B, {self.config.n_mels}, frames), got {tuple(logmel.shape)}")
        x = self.input_norm(logmel.unsqueeze(1))
        x = self.stages(self.stem(x))
        return x.mean(dim=(2, 3))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(logmel)))
