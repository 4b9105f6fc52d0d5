"""DiffWave's ε-network as one autograd function in time-major layout, for training.

:class:`wavediff.models.diffwave.DiffWave` with ``implementation="fused"`` computes the same
function as the reference modules (Figure 2 of the paper), with the whole network (input
projection, residual layers, skip and output projections) run by
:class:`FusedDenoiserFunction` instead of about nine autograd nodes a layer:

- **Time-major rows.** Activations are ``(B * L, channels)`` matrices, so every 1x1
  projection is one GEMM, and the dilated convolution is one GEMM over an im2col buffer
  ``[x(t - d), x(t), x(t + d)]`` of ``K * C`` columns (the conditioner projection a second
  GEMM into the same output).
- **Compute precision.** Autocast's dtype (bf16 on CPUs that have it, see
  :mod:`wavediff.training.setup`) is the precision of every GEMM operand, of the saved
  activations, of the residual stream and of the gradients between layers, as with the
  reference modules under autocast; GEMMs accumulate in fp32, and the parameters' gradients
  are returned in fp32. Without autocast everything is fp32 and equals the reference to
  float rounding.
- **Saved activations.** Per layer: the layer input plus its step bias ``(B*L, C)`` (the
  im2col buffer is rebuilt from it in the backward pass), the gate's sigmoid and tanh
  halves ``(B*L, 2C)`` and its output ``(B*L, C)``.
- **No fresh memory per step.** Every buffer, saved activations included, comes from a
  :class:`StackWorkspace` held by the model and reused by the next step, so a training
  step does not fault in gigabytes of new pages (measured in ``benchmarks/train_speed.py``).
  A backward pass that finds its saved activations overwritten by a later forward pass
  (two forward passes before one backward) raises instead of returning wrong gradients.
- **bf16 gate kernels** from :mod:`wavediff.inference.native` on CPUs with AVX-512 (torch
  operations elsewhere, or with ``WAVEDIFF_NATIVE=0``).

See docs/training-speed.md for the measurements behind each choice.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from wavediff.errors import WavediffError

INV_SQRT2 = 1.0 / math.sqrt(2.0)


class StackWorkspace:
    """The engine's grow-only named buffers (:class:`wavediff.inference.workspace.Workspace`:
    huge pages, populated in one call), one per device, plus a count of the forward passes
    that saved activations here: a backward pass checks it to know that its activations are
    still in place."""

    def __init__(self) -> None:
        self._spaces: dict[torch.device, Any] = {}
        self.generation = 0

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A tensor of ``shape`` backed by the buffer ``name`` (uninitialised contents)."""
        from wavediff.inference.workspace import Workspace

        space = self._spaces.get(device)
        if space is None:
            space = self._spaces[device] = Workspace(device)
        return space.get(name, shape, dtype)

    def nbytes(self) -> int:
        return sum(space.nbytes for space in self._spaces.values())

    def clear(self) -> None:
        self._spaces.clear()


def _shift_taps(kernel_size: int, dilation: int) -> list[int]:
    """Time offset of each kernel tap: tap k reads ``x[t + (k - (K - 1) / 2) * d]``."""
    half = (kernel_size - 1) // 2
    return [(k - half) * dilation for k in range(kernel_size)]


def _fill_im2col(cols: torch.Tensor, xs: torch.Tensor, kernel_size: int, dilation: int) -> None:
    """``cols (B, L, K*C)[..., k*C:(k+1)*C] = xs (B, L, C)`` shifted by tap k's offset, zeros outside."""
    C = xs.shape[-1]
    L = xs.shape[1]
    for k, off in enumerate(_shift_taps(kernel_size, dilation)):
        dst = cols[:, :, k * C:(k + 1) * C]
        if off == 0:
            dst.copy_(xs)
        elif abs(off) >= L:
            dst.zero_()
        elif off > 0:      # dst[t] = xs[t + off]
            dst[:, :L - off].copy_(xs[:, off:])
            dst[:, L - off:].zero_()
        else:              # dst[t] = xs[t - |off|]
            dst[:, -off:].copy_(xs[:, :L + off])
            dst[:, :-off].zero_()


def _gate_forward(pre: torch.Tensor, bias: torch.Tensor, gates: torch.Tensor, h: torch.Tensor,
                  native: Any) -> None:
    """``gates = [sigmoid(u_a) | tanh(u_b)]``, ``h = sigmoid(u_a) tanh(u_b)`` for ``u = pre + bias``
    (``pre (N, 2C)``; ``bias (items, 2C)`` fp32, row i taking item ``i // (N / items)``)."""
    C = h.shape[1]
    if native is not None:
        native.train_gate_forward(pre, bias, gates, h)
        return
    items = bias.shape[0]
    pre.view(items, -1, 2 * C).add_(bias.to(pre.dtype).unsqueeze(1))
    torch.sigmoid(pre[:, :C], out=gates[:, :C])
    torch.tanh(pre[:, C:], out=gates[:, C:])
    torch.mul(gates[:, :C], gates[:, C:], out=h)


def _gate_backward(g_h: torch.Tensor, gates: torch.Tensor, g_pre: torch.Tensor, bias_grad: torch.Tensor,
                   tmp: torch.Tensor, native: Any) -> None:
    """``g_pre = [g_h t s (1 - s) | g_h s (1 - t^2)]`` for ``gates = [s | t]``; ``bias_grad (items, 2C)``
    fp32 = each item's column sums of ``g_pre``."""
    if native is not None:
        native.train_gate_backward(g_h, gates, g_pre, bias_grad)
        return
    C = g_h.shape[1]
    sig, tnh = gates[:, :C], gates[:, C:]
    torch.mul(g_h, sig, out=tmp)                                   # g_h s
    v = torch.mul(tmp, tnh, out=g_pre[:, :C])                      # g_h s t
    torch.addcmul(tmp, v, tnh, value=-1.0, out=g_pre[:, C:])       # g_h s (1 - t^2)
    v.addcmul_(v, sig, value=-1.0)                                 # g_h s t (1 - s)
    items = bias_grad.shape[0]
    bias_grad.copy_(g_pre.view(items, -1, 2 * C).sum(1, dtype=torch.float32))


WEIGHT_GRAD_CHUNK = 1024   # rows per product in bf16 weight gradients: fastest inside a 2-core Zen 4 step


def _weight_grad(grad: torch.Tensor, inputs: torch.Tensor, out: torch.Tensor) -> None:
    """``out (n, k) fp32 = grad (N, n)^T @ inputs (N, k)``.

    In bf16, as a batch of products over chunks of rows, then summed: on the development
    machine a long reduction as one GEMM ran at 180-280 GFLOP/s, chunked at 290-305 for
    ``n, k = 128, 272`` (4,096-row chunks were 5% faster alone, slower inside a step). The narrower
    operand goes first (``(inputs^T grad)^T`` where ``k < n``: 230-280 against 180-255 for
    ``128 x 64``). The result is rounded to bf16 once, as autocast's weight gradients are."""
    rows = grad.shape[0]
    if inputs.shape[1] < grad.shape[1]:
        grad, inputs, out = inputs, grad, out.t()
    chunk = WEIGHT_GRAD_CHUNK
    full = rows // chunk * chunk
    if full == 0 or grad.dtype == torch.float32:
        out.copy_(torch.mm(grad.t(), inputs))
        return
    parts = torch.bmm(grad[:full].view(-1, chunk, grad.shape[1]).transpose(1, 2),
                      inputs[:full].view(-1, chunk, inputs.shape[1]))
    out.copy_(parts.sum(0))   # bf16 sums accumulate in fp32 and round once (a cast to fp32 first was slower)
    if full < rows:
        out.add_(torch.mm(grad[full:].t(), inputs[full:]))


def _step_bias_grad(g_pre: torch.Tensor, row_sums: torch.Tensor, conv_weight: torch.Tensor, C: int,
                    kernel_size: int, dilation: int) -> torch.Tensor:
    """The gradient ``(B, C)`` fp32 of a bias added to every row of the layer's input, without
    the input's gradient: ``sum_t grad xs[b, t] = sum_k (sum of the rows of g_pre tap k reads) W_k``.

    ``g_pre (B, L, 2C)``, its per-item column sums ``row_sums (B, 2C)`` fp32 (the conv bias
    gradient), ``conv_weight (2C, K*C)``. Tap k at offset ``off`` reads every row of g_pre but
    the ``|off|`` at one end, so each tap's sum is ``row_sums`` less a short boundary sum."""
    L = g_pre.shape[1]
    total = torch.zeros(g_pre.shape[0], C, dtype=torch.float32, device=g_pre.device)
    for k, off in enumerate(_shift_taps(kernel_size, dilation)):
        if abs(off) >= L:
            continue
        sums = row_sums
        if off > 0:       # grad xs[u] += g_pre[u - off] for u >= off: rows L - off .. L - 1 unread
            sums = row_sums - g_pre[:, L - off:].sum(1, dtype=torch.float32)
        elif off < 0:     # rows 0 .. |off| - 1 unread
            sums = row_sums - g_pre[:, :-off].sum(1, dtype=torch.float32)
        total.addmm_(sums, conv_weight[:, k * C:(k + 1) * C].float())
    return total


class FusedDenoiserFunction(torch.autograd.Function):
    """DiffWave's epsilon prediction ``(B, L)`` fp32 from noisy audio ``(B, L)``, time-major.

    The network of Figure 2 with every projection a GEMM over ``N = B * L`` rows. The
    residual projections' biases are not applied inside the stack: the residual half's bias
    enters the next layers as an offset of their input, folded into ``step_bias``, and the
    skip half's biases, with the ``1/sqrt(layers)`` of the skip sum, are folded into
    ``head_weight`` and ``head_bias`` (see :func:`fused_forward`).

    Inputs (``nl`` layers, ``C`` residual channels, ``K`` kernel size, ``M`` mel bands):
        audio ``(B, L)``; cond ``(B, L, M)`` (any strides and float dtype) or None: the upsampled mel, time-major.
        in_weight, in_bias ``(C,)``: the input projection (1 -> C, then ReLU).
        step_bias ``(nl, B, C)`` fp32: added to each layer's input before its dilated conv.
        conv_bias ``(nl, 1 or B, 2C)`` fp32: the conv output's bias (conv, conditioner and label biases).
        conv_weight ``(nl, 2C, K*C)``: dilated conv weights, column ``k*C + c`` = tap k, channel c.
        cond_weight ``(nl, 2C, M)`` or None.
        out_weight ``(nl, 2C, C)``: the residual (first C rows) and skip projections.
        head_weight ``(C, C)``, head_bias ``(C,)``: the skip projection (then ReLU).
        final_weight ``(C,)``, final_bias ``(1,)``: the output projection.
        dilations: one per layer; kernel_size; dtype: compute precision; workspace;
        native: :mod:`wavediff.inference.native` kernels for the bf16 gate, or None for torch ops;
        saving: keep every layer's activations for a backward pass (False under ``torch.no_grad``).
    """

    @staticmethod
    def forward(ctx: Any, audio: torch.Tensor, cond: torch.Tensor | None, in_weight: torch.Tensor,
                in_bias: torch.Tensor, step_bias: torch.Tensor, conv_bias: torch.Tensor,
                conv_weight: torch.Tensor, cond_weight: torch.Tensor | None, out_weight: torch.Tensor,
                head_weight: torch.Tensor, head_bias: torch.Tensor, final_weight: torch.Tensor,
                final_bias: torch.Tensor, dilations: tuple[int, ...], kernel_size: int, dtype: torch.dtype,
                workspace: StackWorkspace, native: Any, saving: bool) -> torch.Tensor:
        B, L = audio.shape
        C = in_weight.shape[0]
        N, nl, dev = B * L, len(dilations), audio.device
        ws = workspace
        Wo = out_weight.to(dtype)
        has_cond = cond is not None and cond_weight is not None
        # the conditioner's columns follow the taps' in the im2col buffer: one GEMM for both
        W = torch.cat([conv_weight, cond_weight], dim=2).to(dtype) if has_cond else conv_weight.to(dtype)
        sb = step_bias.to(dtype)
        cb = conv_bias.float().contiguous()
        slots = nl if saving else 1
        xs_all = ws.get("xs", (slots, B, L, C), dtype, dev)
        gates_all = ws.get("gates", (slots, N, 2 * C), dtype, dev)
        h_all = ws.get("h", (slots, N, C), dtype, dev)
        width = W.shape[2]
        cols = ws.get("cols", (B, L, width), dtype, dev)
        if has_cond:
            cols[:, :, kernel_size * C:].copy_(cond)   # written once; the taps' columns are refilled per layer
        ws.generation += 1    # any forward pass overwrites what an earlier one saved
        pre = ws.get("pre", (N, 2 * C), dtype, dev)
        x = ws.get("x", (N, C), dtype, dev)
        skip = ws.get("skip", (N, C), dtype, dev)
        head = ws.get("head", (N, C), dtype, dev)
        samples = audio.reshape(N, 1).to(dtype)
        torch.mul(samples, in_weight.to(dtype), out=x)
        x.add_(in_bias.to(dtype)).relu_()
        skip.zero_()
        for layer, d in enumerate(dilations):
            slot = layer if saving else 0
            xs, gates, h = xs_all[slot], gates_all[slot], h_all[slot]
            torch.add(x.view(B, L, C), sb[layer].unsqueeze(1), out=xs)
            _fill_im2col(cols, xs, kernel_size, d)
            torch.mm(cols.view(N, width), W[layer].t(), out=pre)
            _gate_forward(pre, cb[layer], gates, h, native)
            skip.addmm_(h, Wo[layer, C:].t())
            if layer < nl - 1:     # the last layer's residual half feeds nothing
                x.addmm_(h, Wo[layer, :C].t(), beta=INV_SQRT2, alpha=INV_SQRT2)
        torch.addmm(head_bias.to(dtype), skip, head_weight.to(dtype).t(), out=head)
        head.relu_()
        out = torch.mv(head, final_weight.to(dtype)).float().add_(final_bias.float()).view(B, L)
        if saving:
            ctx.generation = ws.generation
            ctx.workspace = ws
            ctx.native = native
            ctx.meta = (B, L, C, dilations, kernel_size, dtype, conv_bias.shape[1])
            ctx.has_cond = cond is not None
            ctx.has_cond_weight = cond_weight is not None
            ctx.save_for_backward(*(t for t in (audio, in_weight, in_bias, conv_weight, out_weight, head_weight,
                                                final_weight, cond, cond_weight) if t is not None))
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ws: StackWorkspace = ctx.workspace
        if ws.generation != ctx.generation:
            raise WavediffError(
                "the fused denoiser's saved activations were overwritten by a later forward pass; "
                "call backward() before the next forward pass, or use model.implementation='reference'")
        B, L, C, dilations, kernel_size, dtype, bias_items = ctx.meta
        N, nl, dev = B * L, len(dilations), grad_out.device
        saved = list(ctx.saved_tensors)
        audio, in_weight, in_bias, conv_weight, out_weight, head_weight, final_weight = saved[:7]
        cond = saved[7] if ctx.has_cond else None
        cond_weight = saved[-1] if ctx.has_cond_weight else None
        Wc, Wo = conv_weight.to(dtype), out_weight.to(dtype)
        has_cond = cond is not None and cond_weight is not None
        Wm = cond_weight.to(dtype) if has_cond else None
        KC = kernel_size * C
        width = KC + (cond_weight.shape[2] if has_cond else 0)
        xs_all = ws.get("xs", (nl, B, L, C), dtype, dev)
        gates_all = ws.get("gates", (nl, N, 2 * C), dtype, dev)
        h_all = ws.get("h", (nl, N, C), dtype, dev)
        cols = ws.get("cols", (B, L, width), dtype, dev)       # the conditioner's columns still hold cond
        skip = ws.get("skip", (N, C), dtype, dev)
        head = ws.get("head", (N, C), dtype, dev)
        g_pre = ws.get("pre", (N, 2 * C), dtype, dev)
        g_proj = ws.get("g_proj", (N, 2 * C), dtype, dev)
        g_h = ws.get("g_h", (N, C), dtype, dev)
        tmp = ws.get("g_tmp", (N, C), dtype, dev)
        g_x = ws.get("x", (N, C), dtype, dev)      # the forward's residual stream is no longer needed
        f32 = {"dtype": torch.float32, "device": dev}

        # head: out = relu(skip Wh^T + bh) wf + bf
        g_rows = grad_out.reshape(N, 1).to(dtype)
        g_final_w = torch.empty(1, C, **f32)
        _weight_grad(g_rows, head, g_final_w)
        g_final_b = grad_out.sum().reshape(1).float()
        torch.mul(g_rows, final_weight.to(dtype), out=tmp)
        tmp.masked_fill_(head <= 0, 0.0)                            # through the ReLU
        g_head_w = torch.empty(C, C, **f32)
        _weight_grad(tmp, skip, g_head_w)
        g_head_b = tmp.sum(0, dtype=torch.float32)
        torch.mm(tmp, head_weight.to(dtype), out=g_proj[:, C:])     # the skip sum's gradient, every layer's

        g_cond_rows = torch.zeros(N, cond.shape[-1], dtype=dtype, device=dev) if cond is not None else None
        g_cols_w = torch.empty(nl, 2 * C, width, **f32)    # [conv taps | conditioner] weight gradients
        g_item_bias = torch.empty(nl, B, 2 * C, **f32)
        g_out_w = torch.empty(nl, 2 * C, C, **f32)
        g_step = torch.empty(nl, B, C, **f32)
        half = (kernel_size - 1) // 2
        g_x.zero_()
        for layer in reversed(range(nl)):
            d = dilations[layer]
            xs, gates, h = xs_all[layer], gates_all[layer], h_all[layer]
            # [res, skip] = h Wo^T; x_next = (x + res) / sqrt 2
            torch.mul(g_x, INV_SQRT2, out=g_proj[:, :C])
            _weight_grad(g_proj, h, g_out_w[layer])
            torch.mm(g_proj, Wo[layer], out=g_h)
            _gate_backward(g_h, gates, g_pre, g_item_bias[layer], tmp, native=ctx.native)
            if Wm is not None and g_cond_rows is not None:
                g_cond_rows.addmm_(g_pre, Wm[layer])
            _fill_im2col(cols, xs, kernel_size, d)
            _weight_grad(g_pre, cols.view(N, width), g_cols_w[layer])
            # the gradient into this layer's input: the residual path (g_x / sqrt 2) plus the conv
            # path, accumulated into g_x: the centre tap as one product, the shifted taps per item
            g_x.addmm_(g_pre, Wc[layer, :, half * C:(half + 1) * C], beta=INV_SQRT2)
            g_pre_items = g_pre.view(B, L, 2 * C)
            g_x_items = g_x.view(B, L, C)
            for k, off in enumerate(_shift_taps(kernel_size, d)):
                if k == half or abs(off) >= L:
                    continue
                w_k = Wc[layer, :, k * C:(k + 1) * C]
                for b in range(B):   # cols[t] = xs[t + off]  ->  grad xs[u] += grad cols[u - off]
                    if off > 0:
                        g_x_items[b, off:].addmm_(g_pre_items[b, :L - off], w_k)
                    else:
                        g_x_items[b, :L + off].addmm_(g_pre_items[b, -off:], w_k)
            g_step[layer] = _step_bias_grad(g_pre_items, g_item_bias[layer], conv_weight[layer], C, kernel_size, d)
        # input projection: x0 = relu(audio w + b)
        samples = audio.reshape(N, 1).to(dtype)
        torch.mul(samples, in_weight.to(dtype), out=tmp)
        tmp.add_(in_bias.to(dtype))
        g_x.masked_fill_(tmp <= 0, 0.0)
        aux = torch.cat([samples, torch.ones_like(samples)], dim=1)      # (N, 2): [audio, 1]
        g_in = torch.empty(C, 2, **f32)
        _weight_grad(g_x, aux, g_in)
        g_conv_b = g_item_bias if bias_items == B else g_item_bias.sum(1, keepdim=True)
        g_cond = g_cond_rows.view(B, L, -1) if g_cond_rows is not None else None
        g_conv_w = g_cols_w[:, :, :KC]
        g_cond_w = g_cols_w[:, :, KC:] if has_cond else None
        return (None, g_cond, g_in[:, 0].clone(), g_in[:, 1].clone(), g_step, g_conv_b, g_conv_w, g_cond_w,
                g_out_w, g_head_w, g_head_b, g_final_w.view(C), g_final_b, None, None, None, None, None, None)


def stacked_layer_weights(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """The residual layers' parameters stacked as :class:`ResidualStackFunction` takes them
    (differentiable: gradients flow back to each layer's own parameters)."""
    layers = list(model.layers)
    conv_w = torch.stack([lay.dilated_conv.weight.permute(0, 2, 1).reshape(lay.dilated_conv.weight.shape[0], -1)
                          for lay in layers])
    conv_b = torch.stack([lay.dilated_conv.bias for lay in layers])
    cond_w = None
    if layers[0].cond_projection is not None and model.config.conditioning == "mel":
        cond_w = torch.stack([lay.cond_projection.weight.squeeze(-1) for lay in layers])
        conv_b = conv_b + torch.stack([lay.cond_projection.bias for lay in layers])
    out_w = torch.stack([lay.output_projection.weight.squeeze(-1) for lay in layers])
    out_b = torch.stack([lay.output_projection.bias for lay in layers])
    return {"conv_weight": conv_w, "conv_bias": conv_b, "cond_weight": cond_w, "out_weight": out_w, "out_bias": out_b}


def fused_forward(model: Any, audio: torch.Tensor, steps: torch.Tensor, cond: torch.Tensor | None,
                  workspace: StackWorkspace) -> torch.Tensor:
    """``model``'s epsilon prediction ``(B, L)`` for ``audio (B, L)``, computed time-major with
    the residual stack as one :class:`ResidualStackFunction`.

    ``cond`` is :meth:`DiffWave.condition`'s output: ``(B, M, L)``, ``(B, E, 1)`` or None. The
    compute precision is autocast's where autocast is on (bf16 on CPU), else fp32. The
    residual projections' biases ``b_l`` are applied as offsets: the input of layer l is
    ``x~_l + o_l`` with ``o_0 = 0``, ``o_{l+1} = (o_l + b_l) / sqrt 2``, so ``o_l`` joins the
    step bias and the stack itself runs bias-free GEMMs; the skip biases add up to one vector.
    """
    from wavediff.inference import native as native_kernels

    device_type = audio.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else torch.float32
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise WavediffError(f"the fused stack computes in float32, bfloat16 or float16, not {dtype}")
    native = native_kernels.load() if dtype == torch.bfloat16 and device_type == "cpu" else None
    layers = list(model.layers)
    nl = len(layers)
    C = model.config.residual_channels
    step = model.step_embedding(steps).float()                                               # (B, 512)
    weights = stacked_layer_weights(model)
    out_b = weights["out_bias"].float()                                                      # (nl, 2C)
    offsets = [torch.zeros(C, dtype=torch.float32, device=audio.device)]
    for layer in range(nl - 1):
        offsets.append((offsets[-1] + out_b[layer, :C]) * INV_SQRT2)
    step_bias = torch.stack([torch.nn.functional.linear(step, lay.step_projection.weight.float(),
                                                        lay.step_projection.bias.float()) + offsets[k]
                             for k, lay in enumerate(layers)])                               # (nl, B, C)
    conv_bias = weights["conv_bias"].float().unsqueeze(1)                                    # (nl, 1, 2C)
    # relu((skip + sum b_skip) / sqrt(nl) Ws^T + bs) = relu(skip (Ws / sqrt nl)^T + bs + Ws sum b_skip / sqrt nl)
    head_w = model.skip_projection.weight.view(C, C).float() * (1.0 / math.sqrt(nl))
    head_b = model.skip_projection.bias.float() + head_w @ out_b[:, C:].sum(0)
    cond_rows = None
    if cond is not None and model.config.conditioning == "mel":
        cond_rows = cond.transpose(1, 2)          # (B, L, M), a view: copied once into the im2col buffer
    elif cond is not None:
        label = cond.squeeze(-1).float()                                                      # (B, E)
        conv_bias = conv_bias + torch.stack([
            torch.nn.functional.linear(label, lay.cond_projection.weight.squeeze(-1).float(),
                                       lay.cond_projection.bias.float()) for lay in layers])   # (nl, B, 2C)
    with torch.autocast(device_type, enabled=False):
        return FusedDenoiserFunction.apply(
            audio.float(), cond_rows, model.input_projection.weight.view(C).float(),
            model.input_projection.bias.float(), step_bias, conv_bias, weights["conv_weight"],
            weights["cond_weight"], weights["out_weight"], head_w, head_b,
            model.output_projection.weight.view(C).float(), model.output_projection.bias.float(),
            tuple(model.config.dilations), model.config.kernel_size, dtype, workspace, native,
            torch.is_grad_enabled())   # without autograd, one layer's buffers are reused for all
