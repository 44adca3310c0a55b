"""Multi-view driving video from occupancy conditions (GenieDrive occ_render on diffusers' Wan2.1).

Modules, one job each:
- configs:   named configs (`wan2.1-1.3b`, `debug`): transformer, VAE, views, flow, sampling, optimiser.
- multiview: Normalized Multi-View Attention (row sequences across the view ring).
- model:     MultiViewWanTransformer (WanTransformer3DModel + multi-view modules), diffusers save/load.
- latents:   VAE encode/decode of [V, N, 3, H, W] videos, the 48-channel input, prompt contexts.
- flow:      flow-matching loss and Euler sampler with classifier-free guidance.
- rollout:   chunked generation to any 4k + 1 frames, input checks (--frames, --resolution).
- finetune:  optimiser, lr schedule, batch encoding, one training step.
- loading:   base Wan2.1 loading and patch-embedding widening, saving/loading our video models.
- metrics*, i3d, inception: FVD / FID feature networks and metrics.

This package file imports nothing, so that the metric modules do not pull in diffusers; import
from the submodules.

Typical use (names from the submodules above):

    cfg = get_config("wan2.1-1.3b")
    model = load_base_model("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", cfg)      # or build_video_model(cfg)
    opt = make_optimizer(model.transformer, cfg.optim)
    batch = encode_training_batch(model.vae, videos, conditions, cfg)      # [B, V, N, 3, H, W] in [0, 1]
    finetune_step(model.transformer, opt, batch, cfg)
    save_video_model(model, folder)
    video = generate_video(m.transformer, m.vae, m.config, conditions)   # m = load_video_model(folder)
"""
