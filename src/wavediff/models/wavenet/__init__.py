"""WaveNet (van den Oord et al. 2016): the autoregressive baseline, mu-law softmax or mixture of
logistics, with incremental generation (Fast WaveNet)."""
from wavediff.models.wavenet.network import IncrementalState, WaveNet

__all__ = ["IncrementalState", "WaveNet"]
