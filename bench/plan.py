"""Benchmark: seconds per CEM plan (one action chosen) with prefix sharing vs rolling out every sample.

In one run, on one world model, from real frames toward one real goal frame: `CEMPlanner.plan` with the
reference budget (256 samples x horizon 6 x 4 iterations) imagining each distinct prefix of the sampled
sequences once (`share_prefixes=True`, each window's action keys gathered from a table made once per plan)
against rolling out all 256 samples separately (the baseline). Both give the same imagined latents. Then
receding-horizon control as `pursue` runs it: along the recorded trajectory, the first plan starts from uniform
and each plan after it from the previous plan's shifted distribution (`init=planner.shifted()`), so its samples
concentrate and share more prefixes. Goal (issue: plan time): at most 1 s per action on 2 CPU cores, for the
first plan of an episode as well as averaged over the loop.

    python bench/plan.py [--config tiny] [--run RUN] [--plans 5] [--horizon 6] [--actions a,b,..] [--compile] [--device cpu|cuda]
"""
import argparse, tempfile, time
from pathlib import Path
import numpy as np
import torch
import iwm.crafter
from iwm.actions import actions_from_jsonl
from iwm.models.world_model import WorldModel
from iwm.planning import CEMPlanner, PlanConfig, PLAN_ACTIONS
from iwm.train import load_run
from iwm.video import read_frames


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--config', default='tiny')
    ap.add_argument('--run', default=None, help='a trained run; default: a fresh model with a randomised predictor')
    ap.add_argument('--plans', type=int, default=5)
    ap.add_argument('--horizon', type=int, default=6)
    ap.add_argument('--actions', default=','.join(PLAN_ACTIONS), help='the Crafter actions CEM chooses among, comma-separated')
    ap.add_argument('--compile', action='store_true', help="torch.compile the world model's step (compiled during the warm-up plans)")
    ap.add_argument('--device', default='cpu', help="cpu (the goal's machine) or cuda")
    a = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if a.run: world = load_run(a.run, dev)
    else:
        world = WorldModel(a.config).to(dev).eval()
        with torch.no_grad():  # an untrained predictor is exactly copy-last; randomise it so CEM has something to choose
            for p in world.predictor.parameters(): p.normal_(0, 0.02)
    size = world.cfg.img_size
    with tempfile.TemporaryDirectory() as tmp:
        iwm.crafter.record(tmp, episodes=1, steps=80, seed=5, progress=False)
        mp4 = next(Path(tmp).glob('*.mp4'))
        frames = torch.from_numpy(read_frames(mp4, size)).permute(0, 3, 1, 2)
        lines = actions_from_jsonl(mp4.with_suffix('.jsonl'))
        history = torch.from_numpy(lines[16:40]).float()
    with torch.no_grad():
        frames = frames.to(dev)
        z, goal = world.encode(frames[40:41]), world.forward_target(frames[None, 48:49])[:, 0]
    c = PlanConfig(horizon=a.horizon, actions=tuple(x.strip() for x in a.actions.split(',')), compile=a.compile)
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; world model {world.cfg.name}; "
          f"CEM {c.samples} samples x horizon {c.horizon} x {c.iters} iterations over {', '.join(c.actions)}"
          f"{'; compiled step' if c.compile else ''}")
    res = {}
    for share in (False, True):
        pl = CEMPlanner(world, PlanConfig(**{**c.__dict__, 'share_prefixes': share}))
        pl.plan(z, history, goal, generator=torch.Generator().manual_seed(0))  # warm-up
        ts = []
        for i in range(a.plans):
            t0 = time.perf_counter(); pl.plan(z, history, goal, generator=torch.Generator().manual_seed(i)); ts.append(time.perf_counter() - t0)
        res[share] = float(np.median(ts))
        print(f"{'prefix sharing' if share else 'every sample (baseline)':<32} {res[share]:7.3f} s per action")
    # receding horizon along the recorded trajectory: frame 40 + i, its 24 lines of history, warm-started after the first plan
    ts = []  # `pl` is the prefix-sharing planner again: a plan without `init` starts from uniform (with --compile, its step is compiled already)
    with torch.no_grad():
        for i in range(a.plans + 1):
            zi = world.encode(frames[40 + i:41 + i])
            hist_i = torch.from_numpy(lines[16 + i:40 + i]).float()
            t0 = time.perf_counter()
            pl.plan(zi, hist_i, goal, generator=torch.Generator().manual_seed(i), init=pl.shifted() if i else None)
            ts.append(time.perf_counter() - t0)
    res['warm'], res['loop'] = float(np.median(ts[1:])), float(np.mean(ts))
    print(f"{'prefix sharing, warm-started':<32} {res['warm']:7.3f} s per action")
    print(f"{f'a loop of {len(ts)} plans (1st cold)':<32} {res['loop']:7.3f} s per action (its first plan {ts[0]:.3f} s)")
    worst = max(res[True], res['loop'])
    print(f"prefix sharing is {res[False] / res[True]:.2f}x faster than rolling out every sample, warm-started "
          f"{res[False] / res['warm']:.2f}x; receding-horizon control {res['loop']:.2f} s per action, a plan from "
          f"uniform {res[True]:.2f} s (goal <= 1 s): {'met' if worst <= 1 else 'NOT met'}")


if __name__ == '__main__': main()
