"iwm-train end to end on real Crafter clips: exact resume after SIGKILL, and DDP under a real two-process torchrun."
import json, os, socket, subprocess, sys
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file
import iwm.crafter
from conftest import kill_when_written, start_train

BIN = Path(sys.executable).parent
COMMON = ['--config', 'tiny', '--batch', '4', '--warmup', '2', '--amp', 'none', '--deterministic', '--eval-every', '1000',
          '--log-every', '1', '--ckpt-every', '6', '--keep', '5']


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp('train_clips')
    iwm.crafter.record(d, episodes=3, steps=50, seed=17, size=(64, 64), progress=False)
    return d


def _train(args): return start_train(*args)


def test_sigkill_then_resume_equals_uninterrupted(clips, tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    p = _train(['--data', str(clips), '--out', str(a), '--steps', '12', *COMMON])
    kill_when_written(p, a / 'checkpoints' / 'step-00000006' / 'state.json')
    assert not (a / 'checkpoints' / 'step-00000012').exists(), "the run finished before it could be killed"
    n0 = len((a / 'metrics.jsonl').read_text().splitlines())
    r = _train(['--out', str(a), '--resume'])  # no --steps: the run keeps its own schedule of 12
    assert r.wait(timeout=300) == 0, r.stderr.read()[-2000:]
    resumed = [json.loads(l)['step'] for l in (a / 'metrics.jsonl').read_text().splitlines()[n0:]]
    assert resumed == list(range(7, 13)), resumed  # it went on from the step-6 checkpoint, not from scratch
    u = _train(['--data', str(clips), '--out', str(b), '--steps', '12', *COMMON])
    assert u.wait(timeout=300) == 0, u.stderr.read()[-2000:]
    wa, wb = load_file(str(a / 'checkpoints/step-00000012/model.safetensors')), load_file(str(b / 'checkpoints/step-00000012/model.safetensors'))
    assert wa.keys() == wb.keys()
    diff = {k: (wa[k] - wb[k]).abs().max().item() for k in wa if not torch.equal(wa[k], wb[k])}
    assert not diff, f"{len(diff)} tensors differ, e.g. {list(diff.items())[:3]}"
    sa = json.loads((a / 'checkpoints/step-00000012/state.json').read_text())
    assert sa['step'] == 12


WORKER = r'''
import hashlib, json, sys, torch, torch.distributed as dist
from iwm.train import Trainer, TrainConfig
seen = []
class Recording(Trainer):
    def batches(self):
        for b in super().batches(): seen.extend(b['clip']); yield b
c = TrainConfig(data=sys.argv[1], out=sys.argv[2], steps=4, batch=4, warmup=1, amp='none', eval_every=1000, ckpt_every=2,
                log_every=1, buffer=8)
tr = Recording(c)
tr.fit()
h = hashlib.sha256(b''.join(p.detach().contiguous().numpy().tobytes() for p in tr.model.state_dict().values())).hexdigest()
out = [None] * dist.get_world_size()
dist.all_gather_object(out, dict(rank=dist.get_rank(), clips=sorted(set(seen)), params=h))
if dist.get_rank() == 0: open(sys.argv[3], 'w').write(json.dumps(out))
dist.destroy_process_group()
'''


def test_torchrun_ddp_two_cpu_processes(clips, tmp_path):
    script, res, run = tmp_path / 'w.py', tmp_path / 'res.json', tmp_path / 'run'
    script.write_text(WORKER)
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    r = subprocess.run([str(BIN / 'torchrun'), '--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', str(port),
                        str(script), str(clips), str(run), str(res)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = json.loads(res.read_text())
    assert ranks[0]['params'] == ranks[1]['params']  # identical replicas after the steps
    assert ranks[0]['clips'] and ranks[1]['clips'] and not set(ranks[0]['clips']) & set(ranks[1]['clips'])  # disjoint data
    assert [p.name for p in sorted((run / 'checkpoints').iterdir())] == ['step-00000002', 'step-00000004']  # one set, rank 0's
    assert len((run / 'metrics.jsonl').read_text().splitlines()) == 4


def test_clear_errors_instead_of_waiting_forever(clips, tmp_path):
    "A process or loader worker without a clip, or an epoch without a batch, would otherwise wait forever for data."
    from iwm.train import Trainer, TrainConfig
    with pytest.raises(ValueError, match=r'2 training clips for 1 processes x 4 loader workers'):
        Trainer(TrainConfig(data=str(clips), out=str(tmp_path / 'a'), workers=4, amp='none'))
    tr = Trainer(TrainConfig(data=str(clips), out=str(tmp_path / 'b'), batch=10_000, steps=2, amp='none'))
    with pytest.raises(ValueError, match=r'gave no batch of 10000 windows'):
        tr.fit()
