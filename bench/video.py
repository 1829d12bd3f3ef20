"""Benchmark: sequential decoding (`iwm.video.read_frames`) vs the original project's per-sample seeking.

Records one real Crafter clip at VPT's 640x360 into a temporary folder, then times, in the same run:
  (a) one sequential decode of the whole clip, resized to 64x64 inside the decoder;
  (b) the baseline: for each of `--samples` random frame indices, open the file with PyAV, seek backward to the
      keyframe before that frame's timestamp, decode forward to the exact frame, resize it to 64x64.
Both paths are checked to return the same pixels for a few indices, so the two numbers measure the same work.

    python bench/video.py [--frames 300] [--samples 60] [--seed 33] [--size 64]
"""
import argparse, tempfile, time
from fractions import Fraction
from pathlib import Path
import av
import numpy as np
import iwm.crafter
from iwm.video import read_frames, video_info


def seek_frame(path, index: int, size: int = 64) -> np.ndarray:
    "The original approach: open, seek to frame `index`'s timestamp (backward, keyframe), decode forward to it."
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb, rate = s.time_base, Fraction(s.average_rate)
        start = s.start_time or 0
        target = start + round(Fraction(index) / rate / tb)  # pts of frame `index`
        c.seek(target, stream=s, backward=True, any_frame=False)
        for frame in c.decode(s):
            if frame.pts is None or frame.pts < target: continue
            if frame.pts != target: raise RuntimeError(f"{path}: frame {index} (pts {target}) not found, got pts {frame.pts}")
            return frame.to_ndarray(width=size, height=size, format='rgb24', interpolation='AREA')
    raise RuntimeError(f"{path}: frame {index} past the end")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--frames', type=int, default=300, help='frames to record (Crafter steps)')
    ap.add_argument('--samples', type=int, default=60, help='random frames fetched by the seek baseline')
    ap.add_argument('--size', type=int, default=64, help='model resolution (square)')
    ap.add_argument('--seed', type=int, default=33, help='Crafter seed; most episodes die before 300 steps, the count recorded is printed')
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rec = iwm.crafter.record_clip(tmp, 'bench', seed=args.seed, steps=args.frames, size=(640, 360))
        path = Path(tmp) / 'bench.mp4'
        info = video_info(path)
        print(f"recorded {rec['frames']} frames at {info.width}x{info.height} {info.fps:g} fps "
              f"({path.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f}s")
        n = info.frames
        if rec['frames'] < args.frames:
            print(f"note: the episode ended at step {rec['frames']} (died={rec['died']}), before --frames {args.frames}")

        read_frames(path, args.size, stop=8)  # warm up imports and codec setup for both paths
        seek_frame(path, 0, args.size)

        t0 = time.perf_counter()
        seq = read_frames(path, args.size)
        t_seq = time.perf_counter() - t0
        assert seq.shape == (n, args.size, args.size, 3), seq.shape
        fps_seq = n / t_seq
        print(f"(a) sequential read_frames: {n} frames in {t_seq:.2f}s = {fps_seq:,.0f} frames/s")

        rng = np.random.default_rng(args.seed)
        idx = rng.integers(0, n, args.samples)
        t0 = time.perf_counter()
        for i in idx: seek_frame(path, int(i), args.size)
        t_seek = time.perf_counter() - t0
        fps_seek = args.samples / t_seek
        print(f"(b) seek per sample (baseline): {args.samples} frames in {t_seek:.2f}s = {fps_seek:,.1f} frames/s")

        check = sorted({0, n // 3, n // 2, n - 1, *map(int, idx[:4])})
        diffs = [int(np.abs(seek_frame(path, i, args.size).astype(np.int16) - seq[i].astype(np.int16)).max()) for i in check]
        print(f"check: seek vs sequential max abs diff at frames {check}: {diffs} (max {max(diffs)})")
        if max(diffs) > 0: print("WARNING: the two paths disagree; the comparison is not like for like")

        print(f"sequential is {fps_seq / fps_seek:.1f}x faster per frame than seek-per-sample (baseline)")


if __name__ == '__main__':
    main()
