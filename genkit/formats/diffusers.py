"""`genkit export format=diffusers`: a diffusion run as a folder that diffusers' own
`DDIMPipeline.from_pretrained(folder)` opens and samples from, with no genkit code.

The folder holds the EMA denoiser (the weights genkit samples with) as a `UNet2DModel` in
safetensors, and a `DDIMScheduler` whose config reproduces genkit's process
(genkit.models.diffusion.GaussianDiffusion):
- betas: genkit's own, written out as `trained_betas`, so the linear and cosine schedules (and
  their clamp at 0.999) need no re-derivation;
- prediction_type: genkit's eps -> "epsilon", v -> "v_prediction";
- clip_sample: x_0 is clipped to [-1, 1] as genkit's sampler does, and the pipeline's
  `use_clipped_model_output=True` recomputes eps from the clipped x_0 as genkit does;
- set_alpha_to_one: the last step lands on alpha_bar = 1, as genkit's does;
- timestep_spacing "trailing": steps T-1, T-1-T/n, ..., which diffusers' DDIM steps between
  consistently (it steps from t to t - T//n whatever the spacing). genkit's DDIM spaces its n
  steps as round(linspace(T-1, 0, n)); the two grids are identical when n = T and differ by
  rounding otherwise (docs/use-elsewhere.md has the measured effect on fid_clf).

Only runs whose denoiser is diffusers' UNet2DModel (`model/denoiser=diffusers_unet`) export:
genkit's own U-Net differs from UNet2DModel in one activation (see
genkit/models/nets/diffusers_unet.py), so it cannot be written as one faithfully.
"""

import copy
import logging
from pathlib import Path

from diffusers import DDIMPipeline, DDIMScheduler

from genkit.formats.base import Exported, FormatUnsupported, write_folder
from genkit.models.diffusion import Diffusion, GaussianDiffusion
from genkit.models.nets.diffusers_unet import DiffusersUNet

log = logging.getLogger("genkit")

PREDICTION_TYPES = {"eps": "epsilon", "v": "v_prediction"}


def scheduler_for(process: GaussianDiffusion) -> DDIMScheduler:
    """diffusers' DDIM scheduler over genkit's noise schedule and objective."""
    return DDIMScheduler(
        num_train_timesteps=process.timesteps,
        trained_betas=process.betas.double().cpu().tolist(),
        prediction_type=PREDICTION_TYPES[process.objective],
        clip_sample=True,
        clip_sample_range=1.0,
        set_alpha_to_one=True,
        steps_offset=0,
        timestep_spacing="trailing",
    )


def write_diffusers(run: Exported, out: Path) -> Path:
    """The pipeline folder at `out` (put in place whole, see write_folder)."""
    model = run.model
    if not isinstance(model, Diffusion):
        raise FormatUnsupported(
            f"format=diffusers writes diffusion models, and this checkpoint holds a {type(model).__name__}; "
            "export it with format=ckpt, format=safetensors or format=onnx instead."
        )
    if not isinstance(model.ema_net, DiffusersUNet):
        raise FormatUnsupported(
            f"format=diffusers needs a run trained with diffusers' UNet2DModel as its denoiser, and this one has "
            f"{type(model.ema_net).__name__}: genkit's U-Net applies no SiLU to the time embedding before each "
            "block, diffusers' always does, so no UNet2DModel computes what it computes. Train with "
            "`model/denoiser@model.net=diffusers_unet` (same arguments as genkit's U-Net), or export this run "
            "with format=onnx (its denoiser step), format=safetensors or format=ckpt."
        )
    # the EMA weights are the ones genkit samples with; fp32 whatever the training precision
    unet = copy.deepcopy(model.ema_net.unet).float().eval()
    pipeline = DDIMPipeline(unet=unet, scheduler=scheduler_for(model.process))
    write_folder(out, lambda folder: pipeline.save_pretrained(folder, safe_serialization=True))
    log.info(
        "diffusers: DDIMPipeline.from_pretrained(%r) (%s-prediction, %d timesteps, the EMA weights)",
        str(out), model.process.objective, model.process.timesteps,
    )  # fmt: skip
    if model.conditional:
        log.info(
            "Class-conditional: diffusers' pipelines pass no class, so call its unet with class_labels "
            "(0..%d; %d = no class) in your own loop over its scheduler (docs/use-elsewhere.md).",
            model.num_classes - 1, model.num_classes,
        )  # fmt: skip
    return out
