"""DiffWave's weights rearranged for inference: every constant folded in ahead of time.

The training module (:class:`~wavediff.models.diffwave.DiffWave`) computes, per layer l,
``in = x + p``, ``y = conv(in) + b + cond``, ``g = sigmoid(y_gate) * tanh(y_filt)``,
``x <- (x + W_r g + b_r) / sqrt(2)`` and ``skip += W_s g + b_s``. The inference form keeps a
*time-major* residual stream ``R (rows, C)`` with

    R_l = a_l * x_l - c_l,    a_l = sqrt(2)^l,    c_0 = 0,    c_{l+1} = c_l + a_l * b_r,

so the 1/sqrt(2) rescaling and the residual biases disappear from the loop:

* the conv weights are divided by ``a_l``; its input ``R + k`` with ``k = c_l + a_l p``
  is zero-padded per utterance by filling the rows outside every utterance with ``-k``,
  and the conv of the constant ``k`` becomes a bias ``(sum of taps) k / a_l``;
* ``tanh(u) = 2 sigmoid(2u) - 1``: the filter half of the conv, its bias and the
  conditioner projection are doubled, one ``sigmoid`` covers all 2C channels, and
  ``g' = s_g - 2 s_g s_f = -g`` is one ``addcmul``; the sign goes into the output weights;
* ``R_{l+1} = R_l + g' (-a_l W_r)^T`` and ``K += g' (-W_s)^T`` are in-place GEMMs; the
  skip biases and 1/sqrt(layers) fold into the skip projection.

Step-dependent constants (the step embedding through every layer's projection) are
computed once per sampling chain (:meth:`FoldedDiffWave.step_constants`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from wavediff.errors import WavediffError
from wavediff.models.diffwave import DiffWave
from wavediff.precision import WEIGHT_FORMATS, check_precision

# int8: the dilated convs run in int8 (oneDNN, VNNI); everything else in bf16.


@dataclass
class FoldedLayer:
    """One residual layer in inference form (fp32 masters; cast by the engine).

    conv_weight: ``(2C, C, 1, 3)`` dilated taps divided by ``a_l``, filter half doubled.
    tap_sum: ``(2C, C)`` sum of ``conv_weight`` over taps (bias of a constant input).
    bias: ``(2C,)`` conv bias + conditioner bias (filter half doubled).
    cond_weight: ``(n_mels, 2C)`` conditioner 1x1 projection, time-major, filter half doubled.
    step_weight, step_bias: ``(C, 512)``, ``(C,)`` diffusion-step projection.
    residual_weight, skip_weight: ``(C, C)`` time-major, including ``-a_l`` and ``-1``.
    scale: ``a_l``; offset: ``c_l`` ``(C,)``.
    """

    dilation: int
    conv_weight: torch.Tensor
    tap_sum: torch.Tensor
    bias: torch.Tensor
    cond_weight: torch.Tensor | None
    step_weight: torch.Tensor
    step_bias: torch.Tensor
    residual_weight: torch.Tensor
    skip_weight: torch.Tensor
    scale: float
    offset: torch.Tensor


def quantize_int8(weight: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-channel int8: ``weight ~ q * scale`` with ``q`` in [-127, 127].

    Args:
        weight: any shape; ``dim`` indexes the channels that get their own scale.
    Returns:
        ``(q int8 of weight's shape, scale float32 broadcastable to weight)``.
    """
    w = weight.to(torch.float32)
    reduce = [d for d in range(w.dim()) if d != dim % w.dim()]
    amax = w.abs().amax(dim=reduce, keepdim=True) if reduce else w.abs()
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8)
    return q, scale


def _int8_roundtrip(weight: torch.Tensor, dim: int = 0) -> torch.Tensor:
    q, scale = quantize_int8(weight, dim)
    return q.to(torch.float32) * scale


class FoldedDiffWave:
    """A mel-conditioned :class:`DiffWave` in inference form; see the module docstring.

    Args:
        model: a DiffWave with ``conditioning='mel'``.
        weights: ``"float"`` keeps the trained weights; ``"int8"`` rounds every matrix
            of the residual stack (dilated conv, conditioner, output projections) to
            symmetric per-output-channel int8 before folding, as a model stored in int8
            would be. The folded weights are then held in the compute dtype.
    """

    def __init__(self, model: DiffWave, weights: str = "float") -> None:
        if model.config.conditioning != "mel":
            raise WavediffError(
                f"the inference engine runs mel-conditioned vocoders; this model has "
                f"conditioning={model.config.conditioning!r} (allowed: ['mel'])"
            )
        check_precision(weights, WEIGHT_FORMATS, "weights")
        if model.config.kernel_size != 3:
            raise WavediffError(f"the inference engine needs kernel_size=3, got {model.config.kernel_size}")
        self.weights = weights
        self.model = model
        self.channels = model.config.residual_channels
        self.n_mels = model.n_mels
        self.hop_length = model.hop_length
        self.num_steps = model.num_steps
        rnd = _int8_roundtrip if weights == "int8" else (lambda w, dim=0: w.to(torch.float32))
        C = self.channels
        double = torch.ones(2 * C, dtype=torch.float64)
        double[C:] = 2.0
        layers = []
        offset = torch.zeros(C, dtype=torch.float64)
        skip_bias_sum = torch.zeros(C, dtype=torch.float64)
        with torch.no_grad():
            for index, layer in enumerate(model.layers):
                a = math.sqrt(2.0) ** index
                conv_w = rnd(layer.dilated_conv.weight.detach()).to(torch.float64)      # (2C, C, 3)
                conv_w = conv_w * double.view(-1, 1, 1) / a
                bias = layer.dilated_conv.bias.detach().to(torch.float64)
                cond_w = None
                if layer.cond_projection is not None:
                    cw = rnd(layer.cond_projection.weight.detach()).to(torch.float64)[:, :, 0]  # (2C, M)
                    bias = bias + layer.cond_projection.bias.detach().to(torch.float64)
                    cond_w = (cw * double.view(-1, 1)).t().contiguous()
                bias = bias * double
                out_w = rnd(layer.output_projection.weight.detach()).to(torch.float64)[:, :, 0]  # (2C, C)
                out_b = layer.output_projection.bias.detach().to(torch.float64)
                layers.append(FoldedLayer(
                    dilation=int(layer.dilated_conv.dilation[0]),
                    conv_weight=conv_w.unsqueeze(2).to(torch.float32),
                    tap_sum=conv_w.sum(dim=2).to(torch.float32),
                    bias=bias.to(torch.float32),
                    cond_weight=None if cond_w is None else cond_w.to(torch.float32),
                    step_weight=layer.step_projection.weight.detach().to(torch.float32),
                    step_bias=layer.step_projection.bias.detach().to(torch.float32),
                    residual_weight=(-a * out_w[:C]).t().contiguous().to(torch.float32),
                    skip_weight=(-out_w[C:]).t().contiguous().to(torch.float32),
                    scale=a,
                    offset=offset.to(torch.float32),
                ))
                offset = offset + a * out_b[:C]
                skip_bias_sum = skip_bias_sum + out_b[C:]
            self.layers = layers
            n = len(layers)
            sp_w = model.skip_projection.weight.detach().to(torch.float64)[:, :, 0] / math.sqrt(n)
            self.skip_weight = sp_w.t().contiguous().to(torch.float32)                     # (C, C)
            self.skip_bias = (model.skip_projection.bias.detach().to(torch.float64)
                              + sp_w @ skip_bias_sum).to(torch.float32)
            self.out_weight = model.output_projection.weight.detach()[:, :, 0].t().contiguous().to(torch.float32)
            self.out_bias = model.output_projection.bias.detach().to(torch.float32)          # (1,)
            self.in_weight = model.input_projection.weight.detach()[:, 0, 0].view(1, C).to(torch.float32)
            self.in_bias = model.input_projection.bias.detach().to(torch.float32)

    @property
    def halo(self) -> int:
        """Samples each way that one network pass reaches: (kernel-1)/2 * sum(dilations)."""
        return sum(layer.dilation for layer in self.layers)

    @property
    def max_dilation(self) -> int:
        return max(layer.dilation for layer in self.layers)

    @torch.no_grad()
    def step_constants(self, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step, per-layer constants for a chain's (fractional) training steps.

        Args:
            steps: ``(S,)`` steps the denoiser is called with.
        Returns:
            ``bias (S, layers, 2C)``: the full conv bias of each layer at each step;
            ``fill (S, layers, C)``: ``-k``, the value of padding rows of ``R``.
        """
        emb = self.model.step_embedding(steps.to(torch.float32))                  # (S, 512)
        biases, fills = [], []
        for layer in self.layers:
            p = emb @ layer.step_weight.t() + layer.step_bias                        # (S, C)
            k = layer.offset.unsqueeze(0) + layer.scale * p
            biases.append(layer.bias.unsqueeze(0) + k @ layer.tap_sum.t())
            fills.append(-k)
        return torch.stack(biases, dim=1), torch.stack(fills, dim=1)
