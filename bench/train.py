"""Benchmark: training throughput of the world model and its model FLOP utilisation (MFU).

In one run, on this machine: (1) the matmul peak, measured with large fp32 (and bf16) matrix products;
(2) the FLOPs of one training step (forward + backward, counted by torch.utils.flop_counter) per sample;
(3) training samples/s of `iwm.train.Trainer.train_step` for each config on real Crafter windows.
MFU = FLOPs per sample x samples/s / measured peak. Goals: `small` >= 30% on CPU; >= 40% of bf16 peak on a GPU.

    python bench/train.py [--configs tiny small] [--batch 32] [--steps 6] [--amp none]
"""
import argparse, tempfile, time
from pathlib import Path
import torch
from torch.utils.data import default_collate
import iwm.crafter
from iwm.data import ClipWindows
from iwm.models.config import get_config
from iwm.models.info import count_flops
from iwm.train import Trainer, TrainConfig, amp_dtype


def matmul_peak(device, dtype, n=2048, reps=10) -> float:
    "Best FLOP/s of an n x n matrix product over `reps` runs."
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(reps + 2):
        if device.type == 'cuda': torch.cuda.synchronize()
        t0 = time.perf_counter(); a @ b
        if device.type == 'cuda': torch.cuda.synchronize()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--configs', nargs='+', default=['tiny', 'small'])
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--steps', type=int, default=6, help='timed steps per config (after 2 warm-up steps)')
    ap.add_argument('--amp', default='none', help="'none', 'bf16' or 'auto'")
    a = ap.parse_args()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    name = torch.cuda.get_device_name() if device.type == 'cuda' else f"CPU, {torch.get_num_threads()} threads"
    dtype = amp_dtype(a.amp, device) or torch.float32
    peak = matmul_peak(device, dtype)
    print(f"device: {name}; training dtype {dtype}; measured matmul peak {peak / 1e9:.1f} GFLOP/s ({dtype})")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        iwm.crafter.record(tmp / 'clips', episodes=2, steps=80, seed=3, size=(256, 144), progress=False)
        for cfg in a.configs:
            mc = get_config(cfg)
            ds = ClipWindows(tmp / 'clips', size=mc.img_size, horizon=2)
            batch = default_collate([ds[i % len(ds)] for i in range(a.batch)])
            tr = Trainer(TrainConfig(config=cfg, data=str(tmp / 'clips'), out=str(tmp / cfg), batch=a.batch, amp=a.amp, steps=10 ** 6))
            for _ in range(2): tr.train_step([batch])  # warm-up (oneDNN builds its kernels on the first step)
            if device.type == 'cuda': torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(a.steps): tr.train_step([batch])
            if device.type == 'cuda': torch.cuda.synchronize()
            sps = a.steps * a.batch / (time.perf_counter() - t0)
            flops = count_flops(lambda: tr.train_step([batch])) / a.batch  # one more step, outside the timed ones
            params = sum(p.numel() for p in tr.model.parameters() if p.requires_grad)
            print(f"{cfg:>6}: {params / 1e6:6.1f}M trainable params, {flops / 1e9:7.2f} GFLOP per training sample, "
                  f"{sps:8.1f} samples/s, MFU {flops * sps / peak:.1%} of the measured peak")


if __name__ == '__main__':
    main()
