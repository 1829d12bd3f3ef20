"""Benchmark: what one imagined step costs in latent space vs as a decoded frame.

The whole argument for a latent world model is that imagining (and so planning) in latent space is far
cheaper than generating pixels. In one run, on one world model and its decoder: time per imagined latent
step (`WorldModel.step`: conditioner + predictor on B trajectories), and time per decoded frame of those
B trajectories (`Decoder.decode`, DDIM with the decoder's default 20 steps). The ratio is the cost of a
pixel frame in latent steps; beside it, the ratio of the two calls' FLOPs (torch's count of matrix
multiplies and attention), which no machine's overheads change. Goal: latent at least 100x cheaper at batch 1 and at batch 16.

Weights do not change the cost, so without --run the models are freshly initialised at the config's sizes (and the
decoder's DiT patch, --decoder-patch). With --compile, both sides run under `torch.compile`: the world model's step and
the decoder's DiT, each compiled once per batch size before it is timed.

    python bench/imagine.py [--config tiny] [--run RUN] [--decoder-patch P] [--batches 1 16] [--reps 20] [--sampler-steps 20] [--compile]
"""
import argparse, time
import torch
from iwm.decoder import Decoder, decoder_config
from iwm.models.info import count_flops
from iwm.models.world_model import WorldModel
from iwm.train import load_decoder, load_run


def timed(fn, reps: int, device) -> float:
    "Median seconds per call of `fn` over `reps` calls, after two warm-up calls."
    for _ in range(2): fn()
    ts = []
    for _ in range(reps):
        if device.type == 'cuda': torch.cuda.synchronize()
        t0 = time.perf_counter(); fn()
        if device.type == 'cuda': torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--config', default='tiny')
    ap.add_argument('--run', default=None, help='a trained run (world model and RUN/decoder); default: fresh models')
    ap.add_argument('--batches', nargs='+', type=int, default=[1, 16])
    ap.add_argument('--reps', type=int, default=20, help='timed latent steps per batch size (decoding: a quarter, at least 3)')
    ap.add_argument('--sampler-steps', type=int, default=None, help="the decoder's sampler steps (default: its config, 20)")
    ap.add_argument('--decoder-patch', type=int, default=None, help="fresh models only: the decoder DiT's patch (default: the config's)")
    ap.add_argument('--compile', action='store_true', help="time both sides under torch.compile (the step and the decoder's DiT)")
    a = ap.parse_args()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    name = torch.cuda.get_device_name() if device.type == 'cuda' else f"CPU, {torch.get_num_threads()} threads"
    torch.manual_seed(0)
    if a.run and a.decoder_patch: ap.error('--decoder-patch is for fresh models; a run has its own decoder')
    if a.run: wm, dec = load_run(a.run, device), load_decoder(a.run, device)
    else:
        wm = WorldModel(a.config).to(device).eval()
        dec = Decoder(decoder_config(a.config, patch_size=a.decoder_patch)).to(device).eval()
    c, steps = wm.cfg, a.sampler_steps or dec.cfg.sample_steps
    print(f"device: {name}; world model {c.name} ({c.tokens} tokens x {c.dim}); decoder {dec.cfg.name}, "
          f"{sum(p.numel() for p in dec.parameters()) / 1e6:.1f}M params, patch {dec.cfg.patch_size} "
          f"({(dec.cfg.img_size // dec.cfg.patch_size) ** 2} tokens), {dec.cfg.sampler} with {steps} steps; fp32"
          + (", both sides compiled" if a.compile else ", eager"))
    ratios, counts = {}, {}
    for B in a.batches:
        zf, af = torch.randn(B, c.tokens, c.dim, device=device), torch.randn(B, c.context, c.action_dim, device=device)
        counts[B] = count_flops(lambda: wm.step(zf, af)), count_flops(lambda: dec.decode(zf, steps=steps))  # outside inference mode: the counter's hooks need ordinary tensors
    step = wm.step
    if a.compile: step, dec.dit.forward = torch.compile(wm.step), torch.compile(dec.dit.forward)  # after the eager FLOP counts
    with torch.inference_mode():
        for B in a.batches:
            z = torch.randn(B, c.tokens, c.dim, device=device)
            acts = torch.randn(B, c.context, c.action_dim, device=device)
            if a.compile:
                t0 = time.perf_counter(); step(z, acts); dec.decode(z, steps=steps)
                print(f"batch {B:>3}: compiled both sides in {time.perf_counter() - t0:.0f} s")
            t_latent = timed(lambda: step(z, acts), a.reps, device)
            t_frame = timed(lambda: dec.decode(z, steps=steps), max(3, a.reps // 4), device)
            ratios[B] = t_frame / t_latent
            f_latent, f_frame = counts[B]
            print(f"batch {B:>3}: latent step {t_latent * 1e3:9.3f} ms  |  decoded frame {t_frame * 1e3:10.1f} ms  "
                  f"|  decoded / latent (baseline: a decoded frame) = {ratios[B]:7.1f}x  "
                  f"|  FLOPs {f_latent / B / 1e6:.0f}M vs {f_frame / B / 1e6:.0f}M per trajectory, {f_frame / f_latent:.1f}x")
    worst = min(ratios.values())
    print(f"latent imagination is {worst:.0f}x cheaper than decoding at worst (goal >= 100x): {'met' if worst >= 100 else 'NOT met'}")


if __name__ == '__main__': main()
