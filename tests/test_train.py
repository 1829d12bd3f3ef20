"iwm-train end to end on real Crafter clips: exact resume after SIGKILL, DDP under a real two-process torchrun, and `--set` on the model config."
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
dist.barrier()  # both processes end together, after rank 0 has written
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


def test_set_reaches_the_saved_model(clips, tmp_path):
    "`--set` fields are the model's: saved with the run (train overrides and model config), and `load_run` rebuilds that model."
    from iwm.train import load_run
    run = tmp_path / 'set'
    p = _train(['--data', str(clips), '--out', str(run), '--steps', '2', *COMMON,
                '--set', 'encoder_lr=0.1,rollout_steps=1,cross_attn=false'])
    assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    saved = json.loads((run / 'config.json').read_text())
    assert saved['train']['overrides'] == {'encoder_lr': 0.1, 'rollout_steps': 1, 'cross_attn': False}
    assert (saved['model']['encoder_lr'], saved['model']['rollout_steps'], saved['model']['cross_attn']) == (0.1, 1, False)
    assert saved['model']['dim'] == 192 and saved['train']['steps'] == 2  # the rest is tiny's and the command line's
    wm = load_run(run)  # cross_attn=False drops the conditioner's cross-attention: a tiny model's weights would not load
    assert (wm.cfg.encoder_lr, wm.cfg.rollout_steps, wm.cfg.cross_attn) == (0.1, 1, False)


@pytest.mark.parametrize('arg, msg', [
    ('foo=1', "iwm-train: --set: unknown field 'foo' of WorldModelConfig (fields: name, img_size, "),
    ('encoder_lr=abc', "iwm-train: --set encoder_lr='abc': not a float"),
    ('rollout_steps=0', "iwm-train: rollout_steps must be at least 1")])
def test_set_errors_are_one_line(clips, tmp_path, arg, msg):
    r = subprocess.run([str(BIN / 'iwm-train'), '--data', str(clips), '--out', str(tmp_path / 'x'), '--set', arg],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode in (1, 2) and 'Traceback' not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(msg), r.stderr
    assert not (tmp_path / 'x').exists()  # nothing was written


def test_help_has_every_setting():
    "The options are TrainConfig's fields, each with a help line (its comment) and the field's default."
    from dataclasses import fields
    from fastcore.script import anno_parser
    from iwm.train import TrainConfig, iwm_train
    p = anno_parser(iwm_train.__wrapped__)
    helps = {a.dest: a.help for a in p._actions}
    assert set(helps) >= {f.name for f in fields(TrainConfig)} - {'overrides'} | {'resume', 'set'}
    assert [k for k, h in helps.items() if not h or h.startswith('(default')] == []  # a help of its own, not just a default
    r = subprocess.run([str(BIN / 'iwm-train'), '--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    help_ = ' '.join(r.stdout.split())
    assert '--set (str) fields of the model config set otherwise' in help_
    assert '--batch (int) windows per micro-batch and process (default: 32)' in help_
    assert '--max-bad-steps (int) non-finite steps in a row before the run stops (default: 20)' in help_


def test_encoder_delay_holds_the_encoder_then_lets_it_learn(clips, tmp_path):
    "`encoder_delay=2`: two steps leave the encoder as it was (the predictor learns on fixed latents), the steps after move it."
    from iwm.train import Trainer, TrainConfig
    tr = Trainer(TrainConfig(data=str(clips), out=str(tmp_path / 'd'), steps=4, batch=4, warmup=1, amp='none',
                             overrides=dict(encoder_lr=1.0, encoder_delay=2, target='online', sigreg_weight=0.05)))
    enc = lambda: [p.detach().clone() for p in tr.model.encoder.parameters()]
    moved = lambda a, b: max(float((x - y).abs().max()) for x, y in zip(a, b))
    w0, pred0, it = enc(), [p.detach().clone() for p in tr.model.predictor.parameters()], tr.batches()
    held = [tr.train_step([next(it)]) for _ in range(2)]
    w2 = enc()
    assert moved(w0, w2) == 0 and all(s['encoder_held'] and 'latent_change' not in s for s in held)
    assert max(float((a - b.detach()).abs().max()) for a, b in zip(pred0, tr.model.predictor.parameters())) > 0  # the rest learned
    free = [tr.train_step([next(it)]) for _ in range(2)]
    assert moved(w2, enc()) > 1e-5 and all('encoder_held' not in s and 'latent_change' in s for s in free)


DELAY_WORKER = r'''
import gc, hashlib, json, os, sys, torch.distributed as dist
from iwm.train import Trainer, TrainConfig
tr = Trainer(TrainConfig(data=sys.argv[1], out=sys.argv[2], steps=4, batch=4, warmup=1, amp='none', eval_every=1000, buffer=8,
                         overrides=dict(encoder_lr=1.0, encoder_delay=2, target='online', sigreg_weight=0.05)))
digest = lambda m: hashlib.sha256(b''.join(p.detach().contiguous().numpy().tobytes() for p in m.state_dict().values())).hexdigest()
it, hashes, held = tr.batches(), [digest(tr.model.encoder)], []
for _ in range(4):
    held.append(bool(tr.train_step([next(it)]).get('encoder_held'))); hashes.append(digest(tr.model.encoder))
out = [None] * dist.get_world_size()
dist.all_gather_object(out, dict(encoder=hashes, held=held, params=digest(tr.model)))
if dist.get_rank() == 0: open(sys.argv[3], 'w').write(json.dumps(out))
it.close(); del it, tr; gc.collect()  # the loader and the DDP model go before their process group does, not in the interpreter's teardown
dist.barrier()
dist.destroy_process_group()
sys.stdout.flush(); os._exit(0)  # nothing left for exit's unordered destructors (a C++ thread torn down there aborted one run)
'''


def test_encoder_delay_under_torchrun(clips, tmp_path):
    "Under DDP the held encoder's gradients are dropped after the backward: it stays as it was for 2 steps, then learns, alike on both ranks."
    script, res = tmp_path / 'w.py', tmp_path / 'res.json'
    script.write_text(DELAY_WORKER)
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    r = subprocess.run([str(BIN / 'torchrun'), '--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', str(port),
                        str(script), str(clips), str(tmp_path / 'run'), str(res)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = json.loads(res.read_text())
    assert a['held'] == b['held'] == [True, True, False, False]
    e = a['encoder']
    assert e[0] == e[1] == e[2] and e[3] != e[2] and e[4] != e[3], e  # fixed for two steps, then it learns
    assert a['encoder'] == b['encoder'] and a['params'] == b['params']  # the replicas stay identical
