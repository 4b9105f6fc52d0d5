"""lmnt-com/diffwave's model and train step for a wall-clock budget, written as a wavediff
checkpoint so that ``wavediff evaluate`` scores it beside wavediff's own recipes.

Only ``diffwave.model`` is imported from lmnt-com/diffwave 0.1.7 (``pip install --no-deps
diffwave==0.1.7``). Its train step as its ``learner.py`` does it: t uniform, ``x_t = sqrt(abar)
x0 + sqrt(1 - abar) eps``, L1 loss on eps, Adam, fp32, no EMA. The data are wavediff's loader
over the same files, crops and seed as the other setups; the learning rate and batch are the
preset's. Its weights map one to one onto wavediff's DiffWave (same layers, other names); the
mapping is checked by running both networks on the same input before the checkpoint is written.

    python benchmarks/lmnt_train.py --data speech22k/train.tsv --out runs/recipe/lmnt-seed0 --minutes 8
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from wavediff.config import load_config
from wavediff.models.diffwave import build_model
from wavediff.training.checkpoint import save_checkpoint
from wavediff.training.trainer import Trainer

log = logging.getLogger("lmnt_train")

RENAMES = (("diffusion_embedding.projection1.", "step_embedding.fc1."),
           ("diffusion_embedding.projection2.", "step_embedding.fc2."),
           ("spectrogram_upsampler.conv1.", "upsampler.stages.0."),
           ("spectrogram_upsampler.conv2.", "upsampler.stages.1."),
           ("residual_layers.", "layers."), (".diffusion_projection.", ".step_projection."),
           (".conditioner_projection.", ".cond_projection."))


def to_wavediff_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for old, new in RENAMES:
            key = key.replace(old, new)
        out[key] = value.detach().clone()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="run folder (checkpoints/, budget in lmnt.json)")
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    from diffwave.model import DiffWave as LmntDiffWave

    config = load_config(args.preset, [f"train.seed={args.seed}", "train.precision=fp32", "diffusion.loss=l1"])
    out = Path(args.out)
    trainer = Trainer(config, args.data, out, device="cpu", progress=False, workers=0)
    d = config.diffusion
    betas = torch.linspace(d.beta_start, d.beta_end, d.num_steps)
    params = SimpleNamespace(residual_channels=config.model.residual_channels,
                             residual_layers=config.model.residual_layers,
                             dilation_cycle_length=config.model.dilation_cycle, n_mels=config.mel.n_mels,
                             noise_schedule=betas.tolist(), unconditional=False)
    torch.manual_seed(args.seed)
    model = LmntDiffWave(params)
    opt = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate)
    abar = torch.cumprod(1 - betas, 0)
    loss_fn = torch.nn.L1Loss()
    loader, sampler = trainer._loader()
    step, epoch, t0 = 0, 0, time.time()
    losses = []
    while time.time() - t0 < args.minutes * 60:
        sampler.set_epoch(epoch)
        for batch in loader:
            audio, mel = batch["audio"], batch["mel"]
            model.train()
            opt.zero_grad(set_to_none=True)
            t = torch.randint(0, d.num_steps, (audio.shape[0],))
            scale = abar[t].unsqueeze(1)
            noise = torch.randn_like(audio)
            noisy = scale.sqrt() * audio + (1 - scale).sqrt() * noise
            loss = loss_fn(noise, model(noisy, mel, t).squeeze(1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9)
            opt.step()
            step += 1
            losses.append(loss.item())
            if step % 100 == 0:
                log.info("step %d, L1 loss %.4f (mean of the last 100)", step, sum(losses[-100:]) / 100)
            if time.time() - t0 >= args.minutes * 60:
                break
        epoch += 1
    wall = time.time() - t0
    weights = to_wavediff_names(model.state_dict())
    ours = build_model(config).eval()
    ours.load_state_dict(weights)
    model.eval()
    with torch.no_grad():   # the mapping is exact: both networks give the same prediction
        x = torch.randn(2, 16 * config.mel.hop_length)
        mel = torch.rand(2, config.mel.n_mels, 16)
        t = torch.tensor([3, 40])
        diff = float((model(x, mel, t).squeeze(1) - ours(x, t.float(), mel=mel)).abs().max())
    if diff > 1e-4:
        raise SystemExit(f"lmnt's and wavediff's networks differ by {diff:.2e} on the same weights")
    save_checkpoint(out / "checkpoints", step, config, weights, None, keep_last=1)
    (out / "lmnt.json").write_text(json.dumps({"steps": step, "wall_minutes": wall / 60, "final_loss_l1":
                                               sum(losses[-100:]) / max(1, len(losses[-100:])),
                                               "max_prediction_difference": diff}))
    log.info("lmnt-com/diffwave: %d steps in %.1f min; checkpoint in %s (networks agree to %.1e)", step,
             wall / 60, out, diff)


if __name__ == "__main__":
    main()
