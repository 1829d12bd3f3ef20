"""Benchmark: the first-person recorder's frame timing on this machine, against the game's own step rate and VPT's 20 fps.

Records one Minetest clip (default 2,000 frames, map seed 0, the exploring player) with `record_minetest_clip` and
prints: the intervals between grabbed frames (mean, p99, frames later than 1.5 periods), the game's own step
interval measured in the same run (the baseline: the recorder grabs once every `settle` + 1 game steps at best, so
its interval over the game's step interval says how close to that bound it runs), the achieved rate as a share of
VPT's 20 fps, the wall time, and how the action lines agree with the truth (`alignment`). Then a Crafter clip of
at most the same length (its episode ends if the player dies), recorded in the same run, for the time a frame costs
with a game that waits for its input.

    python bench/record.py [--steps 2000] [--seed 0] [--render 320x180] [--out DIR]
"""
import argparse, tempfile, time
from pathlib import Path
import numpy as np
from iwm import minetest as mt
from iwm.actions import read_jsonl
from iwm.crafter import record_clip


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=2000)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--render', default='320x180', help="the game's window (WxH); frames are scaled to 640x360")
    ap.add_argument('--out', default=None, help='keep the clip in this folder (default: a temporary one)')
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp())
    render = tuple(int(v) for v in a.render.split('x'))
    r = mt.record_minetest_clip(out, 'bench', a.seed, a.steps, render=render)
    z, lines = dict(np.load(out / 'bench.truth.npz')), read_jsonl(out / 'bench.jsonl')
    per_step = np.diff(z['truth_us']) / np.maximum(np.diff(z['game_step']), 1) / 1000
    al = mt.alignment(z, lines)
    print(f"minetest: {r['frames']} frames at {render[0]}x{render[1]} (scaled to 640x360) in {r['seconds']:.0f} s")
    print(f"  grabbed every {r['interval_ms']:.1f} ms (p99 {r['p99_ms']:.1f} ms), {r['dropped']} of {r['frames'] - 1} later than 75 ms")
    print(f"  game step every {per_step.mean():.1f} ms (p99 {np.percentile(per_step, 99):.1f}); steps between frames: "
          f"{np.bincount(np.diff(z['game_step'])).tolist()} (index = steps)")
    print(f"  ratio frame interval / (3 game steps): {r['interval_ms'] / (3 * per_step.mean()):.2f}; "
          f"achieved {1000 / r['interval_ms']:.1f} fps = {50 / r['interval_ms']:.2f} x VPT's 20 fps")
    print(f"  alignment: {al}")
    t0 = time.monotonic()
    c = record_clip(out, 'crafter-bench', seed=a.seed, steps=a.steps)
    dt = time.monotonic() - t0
    print(f"crafter: {c['frames']} frames in {dt:.0f} s ({1000 * dt / c['frames']:.1f} ms a frame); "
          f"minetest / crafter time a frame: {r['seconds'] / r['frames'] / (dt / c['frames']):.1f}")


if __name__ == '__main__':
    main()
