"""Neural networks (nn.Modules only)."""
from wavediff.models.diffwave.conditioning import DiffusionStepEmbedding, LabelEmbedding, MelUpsampler, factorize_hop
from wavediff.models.diffwave import DiffWave, build_model

__all__ = ["DiffWave", "DiffusionStepEmbedding", "LabelEmbedding", "MelUpsampler", "build_model", "factorize_hop"]
