"""HiFi-GAN (Kong, Kim and Bae 2020): the generator, the discriminators and their losses."""
from wavediff.models.hifigan.discriminators import (HiFiGANDiscriminators, PeriodDiscriminator, ScaleDiscriminator,
                                                    fold_periods, pool_scale)
from wavediff.models.hifigan.network import (HiFiGANGenerator, ResidualBlock, count_parameters, fold_weight_norm,
                                             folded_copy)
from wavediff.models.hifigan.reference import read_reference_generator

__all__ = ["HiFiGANDiscriminators", "HiFiGANGenerator", "PeriodDiscriminator", "ResidualBlock", "ScaleDiscriminator",
           "count_parameters", "fold_periods", "fold_weight_norm", "folded_copy", "pool_scale",
           "read_reference_generator"]
