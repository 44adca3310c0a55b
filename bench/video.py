"""Video benchmark: seconds per generated frame and peak memory of the multi-view video model.

Goal (GenieDrive's reported inference cost): <= 4.36 s per frame and <= 11.72 GB peak memory for
the released `wan2.1-1.3b` layout (CLIP-image cross-attention and ref_conv, as the official model;
`generate_video` feeds it no CLIP features yet) generating 6 views x 256 x 512, one 81-frame
chunk, 50 flow-matching Euler steps with classifier-free guidance (6.0, so every step runs the prompt and the negative
prompt), bf16. Weights are random (the cost does not depend on them); conditions, first frame and
prompt embeddings are random tensors of the real shapes. "Per frame" = per multi-view frame:
the whole `generate_video` call (condition and first-frame encoding, sampling, decoding), synced,
divided by the 81 frames.

Steps: `--steps 50` times the protocol directly. Two counts (`--steps 5,10`) time both and
extrapolate linearly to 50: time(s) = fixed + s * per_step, fitted through the two points (the
VAE work is the fixed part, the transformer's steps the per-step part). Each count is timed
best of 3 after a warm-up run.

On CUDA the full model runs there (device named; peak = torch.cuda.max_memory_allocated). With no
CUDA device the full model is not tried (it would take hours): the JSON records `"device": "cpu"`,
why it was skipped, and the same measurement for the tiny `debug` config (so the script is
exercised; peak = the process's peak RSS). Writes bench/results/video.json atomically.

Run: .venv/bin/python bench/video.py [--steps 50 | --steps 5,10]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.store.atomic import write_text_atomic  # noqa: E402
from pipelines.video.configs import VideoConfig, get_config  # noqa: E402
from pipelines.video.loading import build_video_model  # noqa: E402
from pipelines.video.rollout import GenerationSettings, generate_video  # noqa: E402

OFFICIAL = {"s_per_frame": 4.36, "peak_memory_gb": 11.72}
PROTOCOL_STEPS = 50
GUIDANCE = 6.0
CPU_STEPS = (2, 8)  # debug config on a CPU: two short runs, extrapolated to 50
REPEATS = 3  # best of: a shared machine's other load only ever adds time


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux reports KiB


def measure(cfg: VideoConfig, device: torch.device, dtype: torch.dtype, steps: list[int]) -> dict:
    """Time `generate_video` for one chunk of cfg.sampling.chunk_frames frames at each step count."""
    frames = cfg.sampling.chunk_frames
    height, width = cfg.resolution
    # fp32 is the built dtype; casting to it anyway makes diffusers warn about fp32-kept modules
    model = build_video_model(cfg, seed=0).to(device, None if dtype == torch.float32 else dtype)
    model.transformer.eval()
    model.vae.eval()
    g = torch.Generator().manual_seed(0)
    conditions = torch.rand(cfg.num_views, frames, 3, height, width, generator=g)  # [V, N, 3, H, W]
    first = torch.rand(cfg.num_views, 3, height, width, generator=g)
    prompt = torch.randn(1, cfg.text_len, cfg.transformer.text_dim, generator=g) * 0.1

    def run(n_steps: int) -> float:
        settings = GenerationSettings(steps=n_steps, guidance=GUIDANCE, shift=cfg.flow.shift, chunk_frames=frames)
        sync(device)
        t = time.perf_counter()
        generate_video(model.transformer, model.vae, cfg, conditions, settings, first_frame=first.to(device),
                       prompt_embeds=prompt)
        sync(device)
        return time.perf_counter() - t

    run(1)  # warm-up: allocator, kernels, first-call overheads
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = [min(run(s) for _ in range(REPEATS)) for s in steps]
    if len(steps) == 1:
        total = seconds[0] * PROTOCOL_STEPS / steps[0] if steps[0] != PROTOCOL_STEPS else seconds[0]
        fit = {"method": "measured at 50 steps" if steps[0] == PROTOCOL_STEPS else
               f"measured at {steps[0]} steps, scaled by 50 / {steps[0]} (VAE time scaled too: an upper bound)"}
    else:
        per_step = (seconds[1] - seconds[0]) / (steps[1] - steps[0])
        fixed = seconds[0] - per_step * steps[0]
        total = fixed + per_step * PROTOCOL_STEPS
        fit = {"method": f"linear fit through {steps[0]} and {steps[1]} steps, extrapolated to 50: "
                         "time = fixed + steps x per_step", "fixed_s": round(fixed, 4), "per_step_s": round(per_step, 4)}
    return {
        "config": cfg.name, "views": cfg.num_views, "height": height, "width": width, "frames": frames,
        "guidance": GUIDANCE, "dtype": str(dtype).replace("torch.", ""), "steps_measured": steps,
        "timing": f"synced wall seconds, best of {REPEATS} after a warm-up run",
        "seconds_measured": [round(s, 4) for s in seconds], **fit,
        "seconds_at_50_steps": round(total, 4), "s_per_frame": round(total / frames, 4),
        "peak_memory_gb": round(peak_memory_gb(device), 3),
        "transformer_params": sum(p.numel() for p in model.transformer.parameters()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default=str(PROTOCOL_STEPS), help="50, or two counts 'a,b' to extrapolate from")
    args = ap.parse_args()
    steps = sorted({int(s) for s in args.steps.split(",")})
    if not 1 <= len(steps) <= 2 or steps[0] < 1:
        ap.error("--steps: give 50, one positive count, or two different counts such as 5,10")
    out: dict = {
        "machine": {"processor": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "official": {**OFFICIAL, "setting": "GenieDrive occ_render (Wan2.1-Fun-1.3B-Control), 6 x 256 x 512, "
                                            "81 frames, 50 steps, CFG 6.0"},
        "per_frame": "whole generate_video call (encode, 50 sampling steps with CFG, decode) / 81 multi-view frames",
    }
    if torch.cuda.is_available():
        device = torch.device("cuda")
        out["device"] = torch.cuda.get_device_name(device)
        res = measure(get_config("wan2.1-1.3b"), device, torch.bfloat16, steps)
        out["wan2.1-1.3b"] = res
        out["met"] = {"s_per_frame": res["s_per_frame"] <= OFFICIAL["s_per_frame"],
                      "peak_memory_gb": res["peak_memory_gb"] <= OFFICIAL["peak_memory_gb"]}
        out["ratio_to_official"] = {"s_per_frame": round(res["s_per_frame"] / OFFICIAL["s_per_frame"], 3),
                                    "peak_memory_gb": round(res["peak_memory_gb"] / OFFICIAL["peak_memory_gb"], 3)}
    else:
        out["device"] = "cpu"
        out["skipped"] = "no CUDA device; the goal is defined on an H100-class GPU"
        out["debug"] = {**measure(get_config("debug"), torch.device("cpu"), torch.float32, list(CPU_STEPS)),
                        "note": "tiny random config, fp32, to exercise the script; peak = process peak RSS"}
    dst = REPO / "bench" / "results" / "video.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(dst, json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
