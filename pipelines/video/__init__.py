"""Multi-view driving video from occupancy conditions (GenieDrive occ_render on diffusers' Wan2.1).

Modules, one job each:
- configs:   named configs (`wan2.1-1.3b` the released layout, `wan2.1-1.3b-t2v` text-only, `debug`,
             `debug-i2v`): transformer, VAE, views, flow, sampling, optimiser.
- multiview: Normalized Multi-View Attention (row sequences across the view ring).
- model:     MultiViewWanTransformer (WanTransformer3DModel + multi-view modules), diffusers save/load.
- latents:   VAE encode/decode of [V, N, 3, H, W] videos, the 48-channel input, prompt contexts.
- flow:      flow-matching loss and Euler sampler with classifier-free guidance.
- rollout:   chunked generation to any 4k + 1 frames, input checks (--frames, --resolution).
- finetune:  optimiser, lr schedule, batch encoding, one training step.
- loading:   base Wan2.1 loading and patch-embedding widening, saving/loading our video models.
- official_transformer, official_base: the official GenieDrive transformer and its Wan2.1 base
             components (VAE, umT5, CLIP) in gdrive / diffusers / transformers, with the official calls.
- import_weights: `gdrive import-weights --format geniedrive-video`.
- metrics (the evaluation), metrics_videos, metrics_networks, metrics_frechet, i3d, inception:
             FVD / FID videos, feature networks, distances.
- finetune_data, finetune_plan, finetune_stage: `gdrive finetune-video` (clips of camera video and
             their conditions; the checked request; rendering and training).

This package file imports nothing when imported, so that the metric modules do not pull in
diffusers. It offers, loaded on first use, the API for official GenieDrive video weights:
`load_video_model`, `official_forward`, `official_vae_encode`, `official_vae_decode`,
`official_text_encode`, `official_image_encode`:

    m = load_video_model(folder)   # a folder from `gdrive import-weights --format geniedrive-video`
    out = official_forward(m, x, t, context, y, clip_fea=clip_fea, full_ref=full_ref)
    latent = official_vae_encode(m, video)   # and the other three, where the import had --base

Typical use otherwise (names from the submodules above):

    cfg = get_config("wan2.1-1.3b-t2v")
    model = load_base_model("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", cfg)      # or build_video_model(cfg)
    opt = make_optimizer(model.transformer, cfg.optim)
    batch = encode_training_batch(model.vae, videos, conditions, cfg)      # [B, V, N, 3, H, W] in [0, 1]
    finetune_step(model.transformer, opt, batch, cfg)
    save_video_model(model, folder)
    video = generate_video(m.transformer, m.vae, m.config, conditions)   # m = load_video_model(folder)
"""

import importlib

_LAZY = {
    "load_video_model": ".loading",
    "official_forward": ".official_transformer",
    "official_vae_encode": ".official_base",
    "official_vae_decode": ".official_base",
    "official_text_encode": ".official_base",
    "official_image_encode": ".official_base",
}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
