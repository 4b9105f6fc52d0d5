"""WaveGrad (Chen et al., ICLR 2021): a diffusion vocoder conditioned on the continuous noise level."""
from wavediff.models.wavegrad.network import DBlock, FiLM, UBlock, WaveGrad, build_wavegrad, count_parameters

__all__ = ["DBlock", "FiLM", "UBlock", "WaveGrad", "build_wavegrad", "count_parameters"]
