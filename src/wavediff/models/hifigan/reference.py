"""Generators saved by the HiFi-GAN authors' code (jik876/hifi-gan): a file holding
``{'generator': state_dict}``, read with ``torch.load(weights_only=True)`` (nothing unpickled
but tensors) and mapped onto :class:`~wavediff.models.hifigan.network.HiFiGANGenerator`.

Their names: ``conv_pre``, ``ups.<i>``, ``resblocks.<i * len(kernels) + j>.convs1.<k>`` and
``.convs2.<k>`` (residual block 1) or ``.convs.<k>`` (block 2), ``conv_post``; each
convolution as ``weight_g`` / ``weight_v`` / ``bias`` (weight norm), or ``weight`` / ``bias``
once the norm was removed.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from wavediff.config import HiFiGANConfig
from wavediff.errors import WavediffError
from wavediff.models.hifigan.network import HiFiGANGenerator, fold_weight_norm, weight_normed

_TENSOR = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1",
           "weight": "weight", "bias": "bias"}


def _module_name(name: str, kernels: int) -> str:
    """The authors' module path -> this generator's."""
    if name in ("conv_pre", "conv_post"):
        return {"conv_pre": "input_conv", "conv_post": "output_conv"}[name]
    m = re.fullmatch(r"ups\.(\d+)", name)
    if m:
        return f"upsamplers.{m[1]}"
    m = re.fullmatch(r"resblocks\.(\d+)\.(convs1|convs2|convs)\.(\d+)", name)
    if m:
        stage, block = divmod(int(m[1]), kernels)
        return f"fusions.{stage}.{block}.{'plain' if m[2] == 'convs2' else 'dilated'}.{m[3]}"
    raise WavediffError(f"unexpected tensor {name!r} in a HiFi-GAN generator")


def convert_reference_state(state: dict[str, torch.Tensor], config: HiFiGANConfig) -> dict[str, torch.Tensor]:
    """The authors' generator state dict with this generator's names (weight norm kept or removed
    as it was saved)."""
    out = {}
    for key, tensor in state.items():
        module, _, kind = key.rpartition(".")
        if kind not in _TENSOR:
            raise WavediffError(f"unexpected tensor {key!r} in a HiFi-GAN generator")
        out[f"{_module_name(module, len(config.resblock_kernels))}.{_TENSOR[kind]}"] = tensor
    return out


def read_reference_generator(path: str | Path, n_mels: int, config: HiFiGANConfig) -> HiFiGANGenerator:
    """A generator of ``config`` holding the weights of an authors' generator file (``g_<step>``)."""
    try:
        saved = torch.load(Path(path), map_location="cpu", weights_only=True)
    except OSError:   # missing or unreadable: the caller's one-line error names the path
        raise
    except Exception as exc:   # not a torch file, or one that would need unpickling
        raise WavediffError(f"cannot read {str(path)!r} as a HiFi-GAN generator file: {exc}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("generator"), dict):
        raise WavediffError(f"{str(path)!r} holds no 'generator' state dict (the authors' layout is "
                            "{'generator': state_dict})")
    state = convert_reference_state(saved["generator"], config)
    generator = HiFiGANGenerator(n_mels, config)
    if not any(k.endswith("original0") for k in state):
        fold_weight_norm(generator)   # saved after remove_weight_norm: plain weights
    expected = generator.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or extra or wrong:
        raise WavediffError(f"{str(path)!r} does not fit the hifigan settings {config}: missing {missing[:3]}, "
                            f"unexpected {extra[:3]}, other shapes {sorted(wrong)[:3]}")
    generator.load_state_dict(state)
    return generator.eval()


def checkpoint_weights(generator: HiFiGANGenerator) -> dict[str, torch.Tensor]:
    """``generator``'s weights under the names a wavediff HiFi-GAN checkpoint holds
    (``generator.`` + the weight-normalised generator's state): a generator read without its
    weight norm gets it back (gain = the norm of each output channel, so ``g v / ||v||`` equals
    the plain weight)."""
    return {f"generator.{k}": v.detach().clone() for k, v in weight_normed(generator).state_dict().items()}
