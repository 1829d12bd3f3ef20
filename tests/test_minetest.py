"""The first-person recorder on the real game: Minetest under Xvfb, played through X input.

The alignment test records a short clip whose first steps are scripted (look down, take the shovel, hold attack) and
whose rest is the exploring player, then checks every action line against the truth the game logged: camera columns
against the turn between frames, walking forward against the facing, attack against the node it dug. The other tests
check that the game, its X server and its world never outlive the recorder (normal exit, an error, Ctrl-C), and that a
missing game or X server is one line."""
import os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from iwm import minetest as mt
from iwm.actions import read_jsonl

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not (mt.shutil.which('Xvfb') and (mt.shutil.which('minetest') or Path('/usr/games/minetest').exists())),
                                reason='needs minetest and xvfb (make packages)')


class DigThenExplore(mt.MinetestPolicy):
    "Ten steps lowering the gaze, the shovel (slot 2), attack held for 40 steps, then the exploring player."
    def __call__(self, row, t):
        base = dict(keys=set(), buttons=set(), dx=0, dy=0, wheel=0, hotbar=1, gui=False)
        if t < 10: return dict(base, dy=40, hotbar=0 if t < 10 else 1)
        if t == 10: return dict(base, keys={'key.keyboard.2'})
        if t < 50: return dict(base, buttons={0})
        if t == 50: self.slot = 1  # the shovel it took
        return super().__call__(row, t)


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    "One short clip: dig, then explore (recorded once for the tests below)."
    folder = tmp_path_factory.mktemp('minetest')
    info = mt.record_minetest_clip(folder, 'clip', seed=11, steps=220, policy=DigThenExplore(11))
    return folder, info


def test_alignment(clip):
    tmp_path, info = clip
    assert info['frames'] == 220
    z, lines = dict(np.load(tmp_path / 'clip.truth.npz')), read_jsonl(tmp_path / 'clip.jsonl')
    al = mt.alignment(z, lines)
    assert al['turning'] >= 20 and al['same_sign'] >= 0.95, al            # camera columns turn the player, same sign
    assert abs(al['turn_ratio'] - 1) <= 0.10, al                          # by the same amount (median)
    assert al['forward'] >= 10 and al['forward_along'] >= 0.95, al        # forward walks along the facing
    assert al['digs'] >= 1 and al['collected'] >= 1, al                 # attack held on a node: gone (and collected)
    assert al['hotbar'] >= 0.95, al                                      # the line's slot is the slot the game wields next
    assert z['yaw'].dtype == np.float32 and z['grabbed_us'].shape == (220,) and np.all(np.diff(z['grabbed_us']) > 0)
    assert np.all(np.diff(z['game_step']) >= 2)                           # every frame at least `settle` steps after its input
    assert al['exact_camera'] == 1.0, al                                  # each line's turn, all of it, before the next frame
    assert al['gui_agree'] == 1.0, al                                     # the mouse turned the camera iff no GUI was shown
    assert (z['gui'] == np.array([l['isGuiOpen'] for l in lines])).all()
    out = subprocess.run([BIN / 'iwm-inspect', str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert '1 clips: 1 usable, 0 with problems' in out and 'frame timing of clip: every' in out and 'attack' in out


def test_inventory_state_from_the_game():
    """The GUI state is read from the screen: `e` opens the inventory (the mouse then moves the pointer, not the camera), `e` again
    closes it; a key still held from the line before is not pressed again, and the screen says so."""
    e = {'key.keyboard.e'}
    with mt.Minetest(seed=11) as g:
        step = lambda **kw: g.frame_after(g.send(**kw))
        img, row, *_ = step()
        assert not g.gui_open(img) and g.cursor() == (640.0, 360.0)
        img, row, *_ = step(keys=e)
        assert g.gui_open(img)
        img, row2, *_ = step(keys=e, dx=20)                             # e held on: not a new press, so it stays open
        assert g.gui_open(img) and row2['yaw'] == row['yaw']              # the mouse moved the pointer, not the camera
        assert g.cursor() == (640.0 + 20 * 1280 / g.render[0], 360.0)
        img, _, *_ = step()                                              # let go
        img, row, *_ = step(keys=e)                                      # pressed again: closed
        assert not g.gui_open(img)
        step()
        img, row2, *_ = step(dx=20)
        assert not g.gui_open(img)
        assert abs(np.degrees(row['yaw'] - row2['yaw']) - 3.0) < 1e-3      # 20 pixels turn 3 degrees again
        for _ in range(10): step(dy=40)                                 # look down 60 degrees, drop the wielded tool at the feet:
        step(keys={'key.keyboard.q'}); step(); time.sleep(1.5)           # the crosshair becomes an X over the item, no GUI
        img = g.grab()
        assert g.gui_open(img) is False and np.mean(img[g.cross[0]].min(-1) >= 230) < 0.5


def test_evaluation_in_first_person(clip):
    """Evaluation splits a Minetest clip's steps by the game's kinds (turning, moving, world, still) and reads its probes (the yaw
    change from a difference of features, pitch, on ground, the node class); an untrained model is copy-last on every kind."""
    import torch
    from iwm.models.world_model import WorldModel
    from iwm.evaluate import sample_windows, latent_report, probe_report
    folder, _ = clip
    z = np.load(folder / 'clip.truth.npz')
    torch.manual_seed(0); wm = WorldModel('tiny').eval()
    ds, idx, other = sample_windows([folder / 'clip.mp4'], 64, horizon=3, n=40)
    rep = latent_report(wm, ds, idx, other, batch=20)
    assert rep['kinds'] == ['turning', 'moving', 'world', 'still'] and abs(sum(rep['kind_share'].values()) - 1) < 1e-9
    turned = (np.abs((np.diff(z['yaw']) + 180) % 360 - 180) > 1) | (np.abs(np.diff(z['pitch'])) > 1)
    i, t = (int(x) for x in ds.index[idx[5]])
    assert ((rep['_kinds'][5] == 'turning') == turned[t:t + 3]).all()
    for s in ['all'] + rep['kinds']:
        got = np.array(rep['ratios'][f'model/copy_last_{s}'])
        assert np.all(np.isnan(got) | (np.abs(got - 1) < 1e-4)), (s, got)  # untrained: the model copies its frame
    pr = probe_report(wm, [folder / 'clip.mp4'], ds, idx, rep['_first'], seed=1)
    assert set(pr['trained']) == {'yaw_change_r2', 'pitch_r2', 'on_ground_acc', 'on_ground_majority', 'node_acc', 'node_majority'}
    assert pr['info']['game'] == 'minetest' and pr['info']['eval_frames'] == 220
    t = ds.index[idx, 1]
    assert pr['persistence']['pitch_r2'] > 0.5 and abs(pr['current']['yaw_change_r2']) < 0.05   # z_t - z_t: no turn to read
    assert np.isclose(pr['persistence']['node_acc'], np.mean([mt.node_class(a) == mt.node_class(b) for a, b in zip(z['node'][t], z['node'][t + 1])]))


def test_planning_in_first_person(clip):
    """Planning reaches Minetest only through the game interface: goals on the clip, replay of the recorded lines (records name
    them `line T`, and `replay_record` plays them again), random actions over the game's planning moves, each rollout from the
    same running world with the player moved back to the frame."""
    from iwm.planning import goals, pursue, replay_record, start_game, goal_distance
    folder, _ = clip
    gs = goals([folder / 'clip.mp4'], k=4, n=2)
    assert len(gs) == 2 and all(isinstance(goal_distance(g), int) for g in gs)
    game, obs = start_game(gs[0].clip, gs[0].t)
    try:
        replay, = pursue(gs[0], 'replay', start=(game, obs))
        rand = pursue(gs[0], 'random', seed=1, rollouts=2, start=(game, obs))
        look, = pursue(gs[0], 'random_camera', seed=2, rollouts=1, start=(game, obs))
    finally: game.close()
    assert replay['actions'] == [f'line {gs[0].t + i}' for i in range(4)] and replay['steps'] == 4
    assert abs((replay['final']['yaw'] - replay['goal']['yaw'] + 180) % 360 - 180) < 0.01   # the recorded turns, exactly
    assert [len(r['actions']) for r in rand] == [6, 6] and {a for r in rand for a in r['actions']} <= set(mt.PLAN_MOVES)
    assert set(look['actions']) <= {'turn_left', 'turn_right'} and len(look['actions']) == 6     # camera only: the player stays put
    moved = np.subtract(look['final']['pos'], look['start']['pos'])  # across the ground: a player put down in mid-air falls (`Minetest.goto`)
    assert np.linalg.norm(moved[[0, 2]]) < 0.1, (look['start'], look['final'])
    again = replay_record(rand[0])
    assert abs((again['yaw'] - rand[0]['final']['yaw'] + 180) % 360 - 180) < 0.01            # turns replay exactly


def test_game_settings_reach_the_live_game(clip):
    """`game_kw` is how a planning run sets the live game: `start_game` makes the game with it, and Minetest holds each
    action's input at least `hold` seconds (measured from the press to the first game step after the release)."""
    from iwm.games import game_settings
    from iwm.planning import start_game
    folder, _ = clip
    game, obs = start_game(folder / 'clip.mp4', 60, game_settings(mt.MinetestGame, dict(hold=0.3)))
    try:
        assert game.hold == 0.3 and game.hold_us == 300_000
        game.act(game.line('forward'))
        assert game.held_us >= 300_000, game.held_us
    finally: game.close()


def test_readers(clip):
    "The loaders and the clip viewer read the clip as they read VPT's: 640x360 frames, camera columns that move."
    from iwm.data import ClipWindows, StreamingWindows
    from iwm.viewer import ClipViewer, action_state
    folder, _ = clip
    ds = ClipWindows(folder, size=64, horizon=4)
    assert len(ds) > 150 and not ds.skipped
    w = ds[100]
    assert w['frame'].shape == (3, 64, 64) and w['targets'].shape == (4, 3, 64, 64) and w['actions'].shape[0] == 25 + 3  # steps t-24..t, then the horizon's
    s = next(iter(StreamingWindows(folder, size=64, horizon=4)))
    assert s['frame'].shape == (3, 64, 64)
    v = ClipViewer(folder / 'clip.mp4', size=64)
    turns = [t for t in range(len(v.clip)) if action_state(v.clip.actions[t])['arrows'] != '·']
    assert len(turns) > 50
    v.show(turns[0])
    assert action_state(v.clip.actions[turns[0]])['arrows'] in v.actions.value


def _children(pid):
    "Processes whose parent is `pid`."
    out = []
    for st in Path('/proc').glob('[0-9]*/stat'):
        try: f = st.read_text().rsplit(')', 1)[1].split()
        except OSError: continue
        if int(f[1]) == pid: out.append(int(st.parent.name))
    return out


def _ctrl_c_works():
    "In the child: SIGINT back to its default, so Python turns it into KeyboardInterrupt even when this test runs where it is ignored."
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _alive(pid):
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    return Path(f'/proc/{pid}/stat').read_text().split()[2] != 'Z'


def test_closes_on_error(tmp_path, monkeypatch):
    monkeypatch.setenv('TMPDIR', str(tmp_path)); mt.tempfile.tempdir = None
    try:
        with pytest.raises(RuntimeError, match='on purpose'):
            with mt.Minetest(seed=5) as g:
                pids, folder = (g.game.pid, g.xvfb.pid), g.dir
                assert folder.parent == tmp_path and all(_alive(p) for p in pids)
                raise RuntimeError('on purpose')
    finally: mt.tempfile.tempdir = None
    assert not any(_alive(p) for p in pids) and not folder.exists()
    assert not list(tmp_path.glob('iwm-minetest-*'))


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_stopped(tmp_path, sig):
    """Ctrl-C or SIGTERM in the middle of a recording: no game, no X server, no world and no partial clip left behind;
    SIGKILL: no game and no X server."""
    out = tmp_path / 'clips'
    env = {**os.environ, 'TMPDIR': str(tmp_path)}
    p = subprocess.Popen([BIN / 'iwm-record', '--game', 'minetest', '--out', str(out), '--episodes', '1', '--steps', '5000'],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_works)
    deadline = time.monotonic() + 120
    while not list(out.glob('.*.part')) and time.monotonic() < deadline: time.sleep(0.2)  # recording has begun
    assert list(out.glob('.*.part')), p.stderr.read() if p.poll() is not None else 'no recording after 120 s'
    time.sleep(2)
    kids = _children(p.pid)  # the game and its X server
    assert len(kids) >= 2, kids
    p.send_signal(sig)
    p.wait(60)
    assert p.returncode != 0
    for _ in range(50):  # the kernel's PDEATHSIG is quick but not instant
        left = [k for k in kids if _alive(k)]
        if not left: break
        time.sleep(0.1)
    assert not left and not subprocess.run(['pgrep', '-f', str(tmp_path)], capture_output=True, text=True).stdout.split()
    if sig != signal.SIGKILL:
        assert not list(tmp_path.glob('iwm-minetest-*'))
        assert not list(out.iterdir())  # nothing half-written under any name


def test_missing_tools(tmp_path, monkeypatch):
    monkeypatch.setattr(mt.shutil, 'which', lambda name: None)
    monkeypatch.setattr(mt, 'MINETEST_PLACES', ())
    with pytest.raises(RuntimeError, match=r'needs minetest and xvfb: apt-get install minetest xvfb'): mt.minetest_binary()
    r = subprocess.run([BIN / 'iwm-record', '--game', 'minetest', '--out', str(tmp_path / 'c')], capture_output=True, text=True,
                       env={**os.environ, 'PATH': str(tmp_path)})  # neither Xvfb nor minetest on PATH
    assert r.returncode != 0 and r.stderr.strip().count('\n') == 0 and 'apt-get install minetest xvfb' in r.stderr, r.stderr
    assert not (tmp_path / 'c').exists()


def test_bad_seed(tmp_path):
    for game in ('crafter', 'minetest'):
        r = subprocess.run([BIN / 'iwm-record', '--game', game, '--seed', '-4', '--out', str(tmp_path / game)],
                           capture_output=True, text=True)
        assert r.returncode != 0 and r.stderr.strip().count('\n') == 0 and 'seed -4' in r.stderr, r.stderr


def test_broken_episode_is_skipped(tmp_path, monkeypatch):
    "The game dies in the first episode (killed from outside): that clip is reported and skipped, the next one recorded."
    import threading
    monkeypatch.setenv('TMPDIR', str(tmp_path)); mt.tempfile.tempdir = None
    killed, part = [], tmp_path / 'clips' / '.minetest-s7-0000.mp4.part'
    def kill_first():
        "Kill the first episode's game once its video has begun: a part file exists only while that episode records."
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if part.exists():
                for p in subprocess.run(['pgrep', '-f', f'{tmp_path}/iwm-minetest-'], capture_output=True, text=True).stdout.split():
                    try: os.kill(int(p), signal.SIGKILL); killed.append(p)
                    except ProcessLookupError: pass  # a process that matched has ended since: look again
            time.sleep(0.05)
    th = threading.Thread(target=kill_first, daemon=True); th.start()
    try: res = mt.record_minetest(tmp_path / 'clips', episodes=2, steps=60, seed=7, progress=False)
    finally: mt.tempfile.tempdir = None
    th.join(1)
    assert killed and 'minetest exited' in res[0]['error'] and res[0]['frames'] is None
    assert res[1]['frames'] == 60 and 'error' not in res[1]
    assert sorted(p.name for p in (tmp_path / 'clips').iterdir()) == [f'minetest-s7-0001{k}' for k in ('.jsonl', '.mp4', '.truth.npz')]


@pytest.mark.timeout(1500)
def test_reference_shortened_in_first_person(tmp_path):
    "`make reproduce GAME=minetest`'s job at toy sizes: worlds of four seed ranges, a 96-pixel model, evaluation by Minetest's kinds, planning over its moves with the camera-only baseline."
    import json, math
    from iwm.demo import run_reference
    from iwm.planning import PlanConfig
    s = run_reference(tmp_path / 'run', tmp_path / 'data', game='minetest', episodes=2, held_episodes=1, val_episodes=1, test_episodes=1,
                      steps=80, held_steps=200, img_size=96, train_minutes=0.1, decoder_minutes=0.1, batch=4, goals=2, val_goals=2, rollouts=2,
                      plan=PlanConfig(samples=8, iters=1, elite=2, actions=tuple(mt.MinetestGame.actions)), decoder_windows=2, eval_windows=8,
                      check=3, progress=False)
    assert json.loads((tmp_path / 'run/summary.json').read_text()) == json.loads(json.dumps(s))
    assert s['game'] == 'minetest' and s['img_size'] == 96 and s['train_steps'] > 0 and s['decoder_steps'] > 0
    assert json.loads((tmp_path / 'run/model/config.json').read_text())['model']['img_size'] == 96
    seeds = sorted((p.parent.name, int(np.load(p)['seed'])) for p in (tmp_path / 'data').glob('*/*.truth.npz'))
    assert seeds == [('held', 10000), ('test', 30000), ('train', 0), ('train', 1), ('val', 20000)]
    plan = json.loads((tmp_path / 'run/planning.json').read_text())
    assert {r['method'] for r in plan['records']} == {'cem', 'greedy', 'random', 'random_camera', 'replay'}  # random over all moves is `random`
    assert 'random_moves' in plan['left_out'] and set(s['planning']) == {'4'}
    assert {r['clip'] for r in plan['records']} == {str(tmp_path / 'data/test/minetest-s30000-0000.mp4')}
    assert set(s['eval']['kinds']) <= {'turning', 'moving', 'world', 'still'} and 'turning' in s['eval']['kinds']
    nums = [v for v in s['eval']['ratios']['model/copy_last_turning'] + [s['decoder']['reconstruction']['decoded']['psnr']]]
    assert all(math.isfinite(n) for n in nums)
    for f in ('strip.png', 'latent_error.png', 'model/loss.png', 'model/decoder/loss.png'):
        assert (tmp_path / 'run' / f).read_bytes()[:4] == b'\x89PNG', f


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_reproduce_command_shortened_in_first_person(tmp_path):
    "`iwm-reproduce --game minetest --train-minutes 4 --decoder-minutes 2 --goals 6` end to end, on worlds of 300 frames: it prints the run's numbers and writes its summary and report."
    import json
    r = subprocess.run([str(BIN / 'iwm-reproduce'), '--game', 'minetest', '--out', str(tmp_path / 'run'), '--data', str(tmp_path / 'data'),
                        '--train-minutes', '4', '--decoder-minutes', '2', '--goals', '6', '--episodes', '2', '--held-episodes', '1',
                        '--steps', '300', '--held-steps', '300'], capture_output=True, text=True, timeout=3500)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'minetest, tiny at 64x64' in r.stdout and 'random_camera' in r.stdout and 'cem' in r.stdout, r.stdout
    s = json.loads((tmp_path / 'run/summary.json').read_text())
    assert s['minutes'] == dict(world=4.0, decoder=2.0) and s['planning']['4']['cem']['goals'] == 6
    assert (tmp_path / 'run/report.html').exists() and len(list((tmp_path / 'run/plan-log').glob('*.jsonl'))) == 2
