"The decoder on real Crafter frames: it learns, it is reproducible, and `iwm-train --stage decoder` resumes exactly and runs under DDP."
import json, os, socket, subprocess, sys
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file
import iwm.crafter
from iwm.checkpoint import save_checkpoint, load_checkpoint
from iwm.decoder import Decoder, decoder_config, psnr
from iwm.models.world_model import WorldModel
from iwm.train import load_decoder
from iwm.video import read_frames
from conftest import kill_when_written, start_train

BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS='1')


@pytest.fixture(scope='module')
def batch(crafter_clips):
    "8 real frames, 64x64, spread over a clip, and an untrained tiny world model's target latents of them."
    mp4 = sorted(Path(crafter_clips).glob('*.mp4'))[0]
    frames = torch.from_numpy(read_frames(mp4, size=64)).permute(0, 3, 1, 2)[::7][:8].contiguous()
    torch.manual_seed(0)
    with torch.no_grad(): z = WorldModel('tiny').eval().forward_target(frames[:, None])[:, 0]
    return frames, z


def _fit(dec, z, frames, steps, lr=2e-3):
    opt = torch.optim.AdamW(dec.parameters(), lr=lr, weight_decay=0)
    for _ in range(steps):
        loss, _ = dec.loss(z, frames); opt.zero_grad(); loss.backward(); opt.step()
    return dec.eval()


def test_overfits_one_real_batch(batch):
    "Pure diffusion (no deterministic residual), so the 20 dB come from the sampler, not the linear map."
    frames, z = batch
    torch.manual_seed(0)
    dec = Decoder(decoder_config('tiny', residual=False, prediction='sample'))
    before = float(psnr(dec.eval().decode(z, steps=20), frames).mean())
    after = float(psnr(_fit(dec.train(), z, frames, 100).decode(z, steps=20), frames).mean())
    print(f'decoded PSNR on the batch: {before:.2f} dB untrained, {after:.2f} dB after 100 steps')
    assert before < 15 and after >= 20, (before, after)


def test_same_seed_same_samples_and_save_load_round_trip(batch, tmp_path):
    frames, z = batch
    torch.manual_seed(1)
    dec = _fit(Decoder('tiny'), z, frames, 5)
    a, b, c = dec.decode(z, seed=3, steps=5), dec.decode(z, seed=3, steps=5), dec.decode(z, seed=4, steps=5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    ck = save_checkpoint(tmp_path, 5, dec)
    torch.manual_seed(2)
    fresh = Decoder('tiny').eval()
    assert not torch.equal(fresh.decode(z, seed=3, steps=5), a)
    load_checkpoint(ck, fresh, restore_rng=False)
    assert torch.equal(fresh.decode(z, seed=3, steps=5), a)
    assert torch.equal(fresh.decode(z, seed=3, steps=5, sampler='dpm'), dec.decode(z, seed=3, steps=5, sampler='dpm'))


def _train(args): return start_train(*args)


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    "3 real clips at 64x64: one held out, one for each of two DDP ranks."
    d = tmp_path_factory.mktemp('decoder_clips')
    iwm.crafter.record(d, episodes=3, steps=50, seed=17, size=(64, 64), progress=False)
    return d


@pytest.fixture(scope='module')
def world_run(clips, tmp_path_factory):
    "A tiny world model trained for 4 steps on the real clips, through the CLI."
    run = tmp_path_factory.mktemp('decoder_runs') / 'world'
    p = _train(['--data', str(clips), '--out', str(run), '--steps', '4', '--batch', '4', '--warmup', '1', '--amp', 'none',
                '--eval-every', '1000', '--ckpt-every', '4'])
    assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    return run


DEC = ['--stage', 'decoder', '--batch', '4', '--warmup', '2', '--amp', 'none', '--deterministic', '--eval-every', '1000',
       '--log-every', '1', '--ckpt-every', '3', '--keep', '5']


def test_decoder_stage_sigkill_then_resume_equals_uninterrupted(world_run, tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    p = _train(['--world', str(world_run), '--out', str(a), '--steps', '8', *DEC])
    kill_when_written(p, a / 'checkpoints' / 'step-00000003' / 'state.json')
    assert not (a / 'checkpoints' / 'step-00000008').exists(), "the run finished before it could be killed"
    r = _train(['--stage', 'decoder', '--world', str(world_run), '--out', str(a), '--resume', '--steps', '8'])
    assert r.wait(timeout=300) == 0, r.stderr.read()[-2000:]
    u = _train(['--world', str(world_run), '--out', str(b), '--steps', '8', *DEC])
    assert u.wait(timeout=300) == 0, u.stderr.read()[-2000:]
    wa, wb = (load_file(str(d / 'checkpoints/step-00000008/model.safetensors')) for d in (a, b))
    diff = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert wa.keys() == wb.keys() and not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"
    steps = [json.loads(l)['step'] for l in (a / 'metrics.jsonl').read_text().splitlines()]
    assert steps[-5:] == [4, 5, 6, 7, 8], steps  # went on from the step-3 checkpoint
    dec = load_decoder(a)
    assert dec.decode(torch.randn(1, 16, 192), steps=2).shape == (1, 3, 64, 64)


def test_decoder_stage_default_out_and_errors(world_run):
    r = subprocess.run([str(BIN / 'iwm-train'), '--stage', 'decoder'], capture_output=True, text=True, env=ENV)
    assert r.returncode != 0 and '--stage decoder needs --world RUN' in r.stderr
    r = subprocess.run([str(BIN / 'iwm-train'), '--stage', 'decoder', '--world', str(world_run.parent / 'nothing')], capture_output=True, text=True, env=ENV)
    assert r.returncode != 0 and 'not a run folder' in r.stderr
    r = subprocess.run([str(BIN / 'iwm-train'), '--stage', 'decoder', '--world', str(world_run), '--decoder-patch', '5'], capture_output=True, text=True, env=ENV)
    assert r.returncode != 0 and 'img_size 64 is not a multiple of patch_size 5' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    r = subprocess.run([str(BIN / 'iwm-train'), '--decoder-patch', '4'], capture_output=True, text=True, env=ENV)
    assert r.returncode != 0 and '--decoder-patch is for --stage decoder' in r.stderr


def test_decoder_stage_torchrun_two_cpu_processes(world_run, clips, tmp_path):
    "The command line itself under torchrun (its options must not collide with torchrun's), with a time budget agreed by both ranks."
    run = tmp_path / 'dec'
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    r = subprocess.run([str(BIN / 'torchrun'), '--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', str(port),
                        '-m', 'iwm.train', '--stage', 'decoder', '--world', str(world_run), '--data', str(clips), '--out', str(run),
                        '--steps', '8', '--minutes', '10', '--batch', '2', '--warmup', '1', '--amp', 'none', '--eval-every', '1000',
                        '--ckpt-every', '8', '--log-every', '1'],
                       capture_output=True, text=True, timeout=600, env=dict(ENV, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    assert [p.name for p in sorted((run / 'checkpoints').iterdir())] == ['step-00000008']  # one set, rank 0's
    rows = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]
    assert [row['step'] for row in rows] == list(range(1, 9))
    assert rows[-1]['samples_per_s'] > 0 and 'step 8' in r.stdout
