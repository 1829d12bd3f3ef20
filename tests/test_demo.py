"The demo job end to end: shortened on every test run, at its default sizes (as `make demo` runs it) in the slow suite."
import json, math, subprocess, sys
from pathlib import Path
import pytest

EXE = Path(sys.executable).parent / 'iwm-demo'


def _numbers(x):
    "Every number in a nested summary."
    if isinstance(x, dict): return [n for v in x.values() for n in _numbers(v)]
    if isinstance(x, list): return [n for v in x for n in _numbers(v)]
    return [x] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


def _check(tmp_path, episodes):
    s = json.loads((tmp_path / 'run/summary.json').read_text())
    assert s['clips'] == episodes and s['skipped'] == [] and s['windows'] > 0
    assert s['frames'] == sum(len((tmp_path / 'data' / f'crafter-s0-{i:04d}.jsonl').read_text().splitlines()) for i in range(episodes))
    moves = sum(v for k, v in s['actions'].items() if k.startswith('move_'))
    assert moves > 0.3 * s['frames'], s['actions']  # the exploring policy walks
    for f in ('clips.png', 'strip.png', 'model/loss.png', 'model/decoder/loss.png', 'latent_error.png', 'decoded.png', 'rollouts.png'):
        assert (tmp_path / 'run' / f).read_bytes()[:4] == b'\x89PNG', f
    assert (tmp_path / 'run/model/decoder/checkpoints').is_dir() and (tmp_path / 'run/model/checkpoints').is_dir()
    assert s['train']['steps'] > 0 and s['decoder']['steps'] > 0
    assert (tmp_path / 'run/rollout.gif').read_bytes()[:3] == b'GIF' and '<table>' in (tmp_path / 'run/report.html').read_text()
    m = json.loads((tmp_path / 'run/metrics.json').read_text())
    assert all(math.isfinite(n) for n in _numbers({k: m[k] for k in ('l1', 'cos', 'retrieval_mrr', 'decoded')}))
    plan, cem = json.loads((tmp_path / 'run/planning.json').read_text()), s['planning']['4']['cem']
    replay = [r for r in plan['records'] if r['method'] == 'replay']
    assert replay and all(r['arrived'] for r in replay) and plan['split'] == 'test' and s['stop']['4']['chosen_on'] == 'val'
    assert plan['clips']['val'] and not set(plan['clips']['val']) & set(plan['clips']['test'])  # validation goals from other clips
    assert s['cost_rank']['4']['goals'] == len(replay) == cem['goals'] + cem['by_distance']['unreachable']['goals']
    assert s['planning']['4']['random']['rollouts'] == 20 and 0 <= s['cost_rank']['4']['mean'] <= 1
    assert all(0 <= lo <= hi <= 1 for r in s['planning']['4'].values() for lo, hi in (r['arrived_ci'], r['passed_ci']))
    assert s['planning_note'].startswith('illustrative') and 'Planning, illustrative' in (tmp_path / 'run/report.html').read_text()
    nums = _numbers({k: s[k] for k in ('train', 'decoder')})
    assert len(nums) > 50 and all(math.isfinite(n) for n in nums)
    rec, im = s['decoder']['reconstruction'], s['decoder']['imagination']
    assert set(rec) == {'decoded', 'deterministic', 'mean_frame'} and im['horizons'] == list(range(1, 9))
    assert all(len(im[k]['psnr']) == 8 for k in ('decoded_real', 'imagined', 'copy_first'))
    return s


@pytest.mark.timeout(1500)  # about 4 minutes on 2 idle CPU cores; a busy machine takes several times that
def test_iwm_demo_shortened(tmp_path):
    r = subprocess.run([str(EXE), '--data', str(tmp_path / 'data'), '--out', str(tmp_path / 'run'), '--episodes', '3', '--steps', '80',
                        '--train-minutes', '0.25', '--decoder-minutes', '0.25', '--plan-goals', '2', '--eval-windows', '32'], capture_output=True, text=True, timeout=1400)
    assert r.returncode == 0, r.stderr[-2000:]
    _check(tmp_path, 3)
    assert 'held-out PSNR' in r.stdout and str(tmp_path / 'run' / 'report.html') in r.stdout, r.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the default job takes about 12.5 minutes on 2 CPU cores
def test_iwm_demo_default_job(tmp_path):
    r = subprocess.run([str(EXE), '--data', str(tmp_path / 'data'), '--out', str(tmp_path / 'run')],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    _check(tmp_path, 8)


@pytest.mark.timeout(1500)  # minutes when idle; a busy machine takes several times that
def test_reference_shortened(tmp_path):
    "`make reproduce`'s job at toy sizes: test goals from seeds of their own, every part of the summary there and finite."
    from iwm.demo import run_reference
    from iwm.planning import PlanConfig
    s = run_reference(tmp_path / 'run', tmp_path / 'data', episodes=2, held_episodes=1, test_episodes=1, steps=60, config='tiny', train_minutes=0.1,
                      decoder_minutes=0.1, batch=4, goals=2, val_episodes=1, val_goals=2, rollouts=3, plan=PlanConfig(samples=8, iters=1, elite=2),
                      decoder_windows=2, eval_windows=8, check=7, progress=False)
    assert json.loads((tmp_path / 'run/summary.json').read_text()) == json.loads(json.dumps(s))
    assert s['train_steps'] > 0 and s['decoder_steps'] > 0 and s['config'] == 'tiny'
    plan = json.loads((tmp_path / 'run/planning.json').read_text())
    assert plan['clips'] == dict(val=['crafter-s2-0000'], test=['crafter-s3-0000'])  # seeds never trained on: validation, test
    assert {r['clip'] for r in plan['records']} == {str(tmp_path / 'data/test/crafter-s3-0000.mp4')}  # results on test goals only
    assert {r['k'] for r in plan['records'] if r['method'] == 'replay' and r['arrived']} == {4, 8}
    assert {k: (s['stop'][k]['chosen_on'], s['stop'][k]['goals']) for k in ('4', '8')} == {'4': ('val', 2), '8': ('val', 2)}
    assert {k: s['planning'][k]['random']['rollouts'] for k in ('4', '8')} == {'4': 3, '8': 3}
    assert set(s['cost_check']) == {'4', '8'} and all(0 <= s['cost_check'][k][q] <= 1 for k in ('4', '8') for q in ('reach', 'real', 'imagined'))
    rec = s['decoder']['reconstruction']
    assert set(rec) == {'decoded', 'deterministic', 'mean_frame'} and s['decoder']['windows'] == 2
    nums = _numbers([rec, s['cost_rank'], s['eval']['ratios']['model/copy_last_all'], s['eval']['retrieval_mrr']])
    assert len(nums) > 10 and all(math.isfinite(n) for n in nums)
    for f in ('strip.png', 'latent_error.png', 'model/loss.png', 'model/decoder/loss.png'):
        assert (tmp_path / 'run' / f).read_bytes()[:4] == b'\x89PNG', f
