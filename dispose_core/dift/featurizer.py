"""DIFT features: SD 1.5 up-block outputs of the noised reference latent, averaged over an ensemble.

Official semantics (DisPose ``SDFeaturizer.forward``, MODELS.md §4): the reference image is
repeated E times; per pass, every member gets its own VAE posterior sample
z = (mu + sigma * eps) * scaling_factor and its own noise n, x_t = sqrt(abar_t) z + sqrt(1 - abar_t) n
(DDIM ``add_noise`` with the SD 1.5 betas), the UNet runs at t with a prompt embedding and the
requested up block's output is averaged over the members. The first pass uses the prompt
("photo of a human"), later passes the empty prompt. Differences by design, same numbers: the VAE
encoder runs once (its posterior is the same for every member), the UNet stops after the requested
up block, the ensemble runs in chunks, and the draws come from a caller's generator.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import InputError
from ..interrupt import ShouldStop, stop_between_layers

DIFT_PROMPT = "photo of a human"
# Only the first feature (t=261, up block 1, 1280 channels for SD 1.5) is used downstream; the
# official call also computes (t=0, up block 2), which the ControlNet ignores.
OFFICIAL_TIMESTEPS = (261, 0)
OFFICIAL_UP_FT_INDEX = (1, 2)


def ddim_alphas_cumprod(
    beta_start: float = 0.00085,
    beta_end: float = 0.012,
    beta_schedule: str = "scaled_linear",
    num_train_timesteps: int = 1000,
) -> torch.Tensor:
    """Cumulative alpha products of the DDIM scheduler (float32, computed as diffusers does)."""
    if beta_schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    elif beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    else:
        raise InputError(
            f"DIFT: unsupported beta_schedule '{beta_schedule}' in the scheduler config; "
            "use the Stable Diffusion 1.5 scheduler folder (scaled_linear)."
        )
    return torch.cumprod(1.0 - betas, dim=0)


class DiftFeaturizer(nn.Module):
    """SD 1.5 UNet + VAE encoder + the two prompt embeddings (the text encoder is not kept).

    ``vae`` is a diffusers ``AutoencoderKL`` without its decoder. ``prompt_embeds`` and
    ``null_prompt_embeds`` are (1, 77, D) CLIP last hidden states of the prompt and of "".
    """

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        prompt_embeds: torch.Tensor,
        null_prompt_embeds: torch.Tensor,
        alphas_cumprod: torch.Tensor,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.vae = vae
        self.register_buffer("prompt_embeds", prompt_embeds)
        self.register_buffer("null_prompt_embeds", null_prompt_embeds)
        # float32 on purpose: a plain attribute, so .to(float16) does not round the schedule.
        self.alphas_cumprod = alphas_cumprod.to(torch.float32)

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.conv_in.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.conv_in.weight.device

    def up_block_channels(self, index: int) -> int:
        """Channels of up block ``index``'s output (1280 for SD 1.5 block 1)."""
        return int(tuple(reversed(self.unet.config.block_out_channels))[index])

    def posterior(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the VAE posterior of ``image`` (1,3,H,W) in [-1,1], latent scale."""
        dist = self.vae.encode(image).latent_dist
        scale = float(self.vae.config.scaling_factor)
        return dist.mean * scale, dist.std * scale

    def noisy_latents(self, mean: torch.Tensor, std: torch.Tensor, t: int,
                      eps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t for every ensemble member: DDIM add_noise of the posterior sample mean + std*eps."""
        abar = self.alphas_cumprod[t].double()
        z = mean + std * eps.to(mean)
        return float(abar.sqrt()) * z + float((1 - abar).sqrt()) * noise.to(mean)

    def up_features(self, latents: torch.Tensor, t: int, context: torch.Tensor, up_index: int) -> torch.Tensor:
        """Output of up block ``up_index`` for a batch of latents (the UNet stops there)."""
        unet = self.unet
        timesteps = torch.full((latents.shape[0],), t, dtype=torch.long, device=latents.device)
        emb = unet.time_embedding(unet.time_proj(timesteps).to(latents.dtype))
        context = context.expand(latents.shape[0], -1, -1)
        # Latents not divisible by the total upsampling factor need explicit upsample sizes.
        forward_size = any(s % 2 ** unet.num_upsamplers for s in latents.shape[-2:])

        sample = unet.conv_in(latents)
        skips: tuple[torch.Tensor, ...] = (sample,)
        for block in unet.down_blocks:
            if getattr(block, "has_cross_attention", False):
                sample, res = block(hidden_states=sample, temb=emb, encoder_hidden_states=context)
            else:
                sample, res = block(hidden_states=sample, temb=emb)
            skips += res
        sample = unet.mid_block(sample, emb, encoder_hidden_states=context)
        for i, block in enumerate(unet.up_blocks[: up_index + 1]):
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            size = skips[-1].shape[2:] if forward_size and skips else None
            if getattr(block, "has_cross_attention", False):
                sample = block(hidden_states=sample, temb=emb, res_hidden_states_tuple=res,
                               encoder_hidden_states=context, upsample_size=size)
            else:
                sample = block(hidden_states=sample, temb=emb, res_hidden_states_tuple=res, upsample_size=size)
        return sample


def _check_image(image: torch.Tensor) -> None:
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise InputError(f"DIFT: the reference image must be one RGB image (1,3,H,W), got {tuple(image.shape)}.")
    h, w = image.shape[-2:]
    if h % 8 or w % 8:
        raise InputError(
            f"DIFT: image size {h}x{w} is not a multiple of 8; resize the reference to the generation "
            "size (multiples of 64) first."
        )


def draw_noise(shape: tuple[int, ...], passes: int, generator: torch.Generator | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(eps, noise) per pass, drawn in the official order eps1, n1, eps2, n2 (float32).

    Drawn on the generator's device (CPU without one), so a seed gives the same features on every
    compute device and for every ensemble chunk size.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    draws = []
    for _ in range(passes):
        eps = torch.randn(shape, generator=generator, device=device)
        noise = torch.randn(shape, generator=generator, device=device)
        draws.append((eps, noise))
    return draws


@torch.no_grad()
def extract_features(
    featurizer: DiftFeaturizer,
    image: torch.Tensor,
    *,
    timesteps: Sequence[int] = OFFICIAL_TIMESTEPS[:1],
    up_ft_index: Sequence[int] = OFFICIAL_UP_FT_INDEX[:1],
    ensemble_size: int = 8,
    ensemble_chunk: int | None = None,
    generator: torch.Generator | None = None,
    draws: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: ShouldStop | None = None,
) -> list[torch.Tensor]:
    """DIFT feature maps (1, C_i, H/2^k, W/2^k), float32, one per (timestep, up block) pair.

    ``image`` is (1,3,H,W) in [-1,1]. Pass 0 uses the prompt embedding, later passes the empty
    prompt (official). ``ensemble_chunk`` bounds how many members run through the UNet at once
    (memory); results do not depend on it. ``draws`` injects recorded (eps, noise) pairs per pass
    (golden tests) instead of drawing from ``generator``. ``should_stop`` is polled before every
    layer of the UNet (``interrupt.stop_between_layers``: a Cancel does not wait for the ensemble);
    returning True raises InterruptedError.
    """
    if len(timesteps) != len(up_ft_index) or not timesteps:
        raise InputError("DIFT: give one up-block index per timestep.")
    if ensemble_size < 1:
        raise InputError(f"DIFT: ensemble_size must be >= 1, got {ensemble_size}.")
    _check_image(image)
    device, dtype = featurizer.device, featurizer.dtype
    mean, std = featurizer.posterior(image.to(device, dtype))
    shape = (ensemble_size, *mean.shape[1:])
    if draws is None:
        draws = draw_noise(shape, len(timesteps), generator)
    chunk = max(1, min(ensemble_chunk or ensemble_size, ensemble_size))
    starts = range(0, ensemble_size, chunk)
    total, done = len(timesteps) * len(starts), 0
    features = []
    for p, (t, up_index) in enumerate(zip(timesteps, up_ft_index)):
        context = featurizer.prompt_embeds if p == 0 else featurizer.null_prompt_embeds
        eps, noise = (d.to(device) for d in draws[p])
        acc = None
        for s in starts:
            latents = featurizer.noisy_latents(mean, std, t, eps[s:s + chunk], noise[s:s + chunk])
            with stop_between_layers(should_stop, "DIFT feature extraction"):
                part = featurizer.up_features(latents, t, context.to(dtype), up_index).float().sum(0, keepdim=True)
            acc = part if acc is None else acc + part
            done += 1
            if progress is not None:
                progress(done, total)
        features.append(acc / ensemble_size)
    return features
