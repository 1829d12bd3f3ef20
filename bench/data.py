"""Benchmark: the streaming loader (`iwm.data.StreamingWindows`) on clips stored as VPT stores them (640x360 H.264).

Measured in one run on the same clips:
  1. windows/s of the streaming loader vs the original project's seek-per-sample baseline (per window: open the
     file, seek to frame t, decode t and t+1; the baseline named in `bench/video.py`);
  2. frames/s of the loader vs raw sequential PyAV decoding of the same clips at the same resolution;
  3. peak RSS of a process streaming one 6000-frame clip (5 minutes at 20 fps) vs one 600-frame clip.

    python bench/data.py [--episodes 4] [--steps 200] [--samples 40] [--long 6000]
"""
import argparse, subprocess, sys, tempfile, time
from pathlib import Path
import av
import numpy as np
import iwm.crafter
from iwm.actions import actions_from_jsonl
from iwm.data import StreamingWindows, find_clips
from iwm.video import VideoWriter, read_frames, video_info
from video import seek_frame  # bench/video.py: open + seek + decode forward to one frame

SIZE = 64


def loader_windows(clips, **kw):
    t0 = time.perf_counter()
    n = sum(1 for _ in StreamingWindows(clips, size=SIZE, horizon=1, **kw))
    return n, time.perf_counter() - t0


def raw_decode(clips):
    t0, n = time.perf_counter(), 0
    for p in clips:
        with av.open(str(p)) as c:
            s = c.streams.video[0]; s.thread_type = 'AUTO'
            for f in c.decode(s): f.to_ndarray(width=SIZE, height=SIZE, format='rgb24', interpolation='AREA'); n += 1
    return n, time.perf_counter() - t0


def seek_windows(clips, samples, rng):
    "The baseline: per window, frame t and t+1 each fetched by opening, seeking and decoding forward."
    lengths = [video_info(p).frames for p in clips]
    picks = [(i, int(rng.integers(24, lengths[i] - 1))) for i in rng.integers(len(clips), size=samples)]
    t0 = time.perf_counter()
    for i, t in picks:
        actions_from_jsonl(clips[i].with_suffix('.jsonl'))[t - 24: t + 1]
        seek_frame(clips[i], t, SIZE); seek_frame(clips[i], t + 1, SIZE)
    return samples, time.perf_counter() - t0


def long_clip(sources, out, n):
    "One n-frame clip made of real recorded episodes played back to back, with their jsonl lines in step."
    lines = [l for p in sources for l in p.with_suffix('.jsonl').read_text().splitlines(keepends=True)]
    frames = [read_frames(p, (360, 640)) for p in sources]
    with VideoWriter(out) as w:
        k = 0
        while w.n < n:
            f = frames[k % len(frames)][: n - w.n]; w.write(f); k += 1
    out.with_suffix('.jsonl').write_text(''.join((lines * (n // len(lines) + 1))[:n]))
    return out


PEAK = r'''
import resource, sys
from iwm.data import StreamingWindows
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after imports
n = sum(1 for _ in StreamingWindows([sys.argv[1]], size=64, horizon=1, buffer=512))
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, base)
'''


def peak_rss(clip):
    r = subprocess.run([sys.executable, '-c', PEAK, str(clip)], capture_output=True, text=True, check=True)
    n, kb, base = r.stdout.split()
    return int(n), int(kb) / 1024, int(base) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--episodes', type=int, default=4)
    ap.add_argument('--steps', type=int, default=200)
    ap.add_argument('--samples', type=int, default=40, help='windows fetched by the seek baseline')
    ap.add_argument('--long', type=int, default=6000, help='frames of the long clip for the memory check')
    ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        iwm.crafter.record(tmp / 'clips', a.episodes, a.steps, a.seed, progress=False)
        clips = find_clips(tmp / 'clips')
        frames = sum(video_info(p).frames for p in clips)
        print(f"clips: {len(clips)} Crafter episodes, {frames} frames at 640x360 H.264, recorded in {time.perf_counter() - t0:.0f}s")

        n_raw, s_raw = raw_decode(clips)
        n_win, s_win = loader_windows(clips)
        n_seek, s_seek = seek_windows(clips, a.samples, np.random.default_rng(0))
        loader_fps = sum(min(video_info(p).frames, len(actions_from_jsonl(p.with_suffix('.jsonl')))) for p in clips) / s_win
        print(f"streaming loader: {n_win / s_win:8.1f} windows/s ({n_win} windows, {s_win:.2f}s)")
        print(f"seek per sample:  {n_seek / s_seek:8.1f} windows/s ({n_seek} windows, {s_seek:.2f}s)  [baseline]")
        print(f"raw PyAV decode:  {n_raw / s_raw:8.1f} frames/s")
        print(f"loader decode:    {loader_fps:8.1f} frames/s")
        print(f"ratio windows/s, streaming / seek-per-sample: {(n_win / s_win) / (n_seek / s_seek):.1f}x (goal >= 30x)")
        print(f"ratio frames/s, loader / raw PyAV decode: {loader_fps / (n_raw / s_raw):.0%} (goal >= 50%)")

        t0 = time.perf_counter()
        longp = long_clip(clips, tmp / 'long.mp4', a.long)
        shortp = long_clip(clips, tmp / 'short.mp4', a.long // 10)
        print(f"long clip: {video_info(longp).frames} frames ({longp.stat().st_size / 1e6:.1f} MB), made in {time.perf_counter() - t0:.0f}s")
        n_long, rss_long, base = peak_rss(longp)
        n_short, rss_short, _ = peak_rss(shortp)
        print(f"peak RSS after imports only: {base:.0f} MiB")
        print(f"peak RSS streaming {n_short} windows of a {a.long // 10}-frame clip: {rss_short:.0f} MiB (+{rss_short - base:.0f} MiB over imports)")
        print(f"peak RSS streaming {n_long} windows of a {a.long}-frame clip: {rss_long:.0f} MiB (+{rss_long - base:.0f} MiB over imports)")
        print(f"ratio peak RSS, {a.long}-frame / {a.long // 10}-frame clip: {rss_long / rss_short:.2f}x (flat = memory does not grow with clip length)")


if __name__ == '__main__':
    main()
