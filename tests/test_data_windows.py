"`ClipWindows` over real Crafter clips: DataLoader with workers, window bounds, broken clips skipped."
import shutil
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from iwm.actions import ACTION_NAMES
from iwm.data import ClipWindows, CONTEXT
from iwm.video import video_info, read_frames, VideoError
from conftest import faststart_copy

SIZE, H = 32, 2


def test_windows_bounds(crafter_clips):
    ds = ClipWindows(crafter_clips, size=SIZE, horizon=H)
    assert len(ds.clips) == 2 and ds.skipped == []
    assert ds.lengths == [60, 60]
    assert len(ds) == sum(n - H - (CONTEXT - 1) for n in ds.lengths)
    for k in range(len(ds)):
        i, t = (int(x) for x in ds.index[k])
        n = ds.lengths[i]
        assert CONTEXT - 1 <= t <= n - 1 - H
    ts = sorted(int(t) for i, t in ds.index if i == 0)
    assert ts[0] == 24 and ts[-1] == 60 - 1 - H


def test_window_content(crafter_clips):
    ds = ClipWindows(crafter_clips, size=SIZE, horizon=H)
    mp4 = ds.clips[0]
    frames = torch.from_numpy(read_frames(mp4, SIZE)).permute(0, 3, 1, 2)
    k = int(np.flatnonzero(ds.index[:, 0] == 0)[3])
    w = ds[k]
    t = w['t']
    assert w['clip'] == mp4.stem and w['frame'].dtype == torch.uint8
    assert torch.equal(w['frame'], frames[t])
    assert torch.equal(w['targets'], frames[t + 1:t + 1 + H])
    assert torch.equal(w['actions'], ds.actions[0][t - CONTEXT + 1:t + H])


def test_dataloader_two_workers(crafter_clips):
    ds = ClipWindows(crafter_clips, size=SIZE, horizon=H)
    torch.manual_seed(0)
    dl = DataLoader(ds, batch_size=4, num_workers=2, shuffle=True)
    seen, batches = set(), 0
    for b in dl:
        assert b['frame'].shape[1:] == (3, SIZE, SIZE) and b['frame'].dtype == torch.uint8
        bs = b['frame'].shape[0]
        assert b['actions'].shape == (bs, CONTEXT + H - 1, len(ACTION_NAMES)) == (bs, 26, 28)
        assert b['targets'].shape == (bs, H, 3, SIZE, SIZE)
        assert isinstance(b['clip'], list) and all(isinstance(c, str) for c in b['clip'])
        assert b['t'].shape == (bs,)
        if batches == 0:
            assert b['frame'].shape == (4, 3, 32, 32)
            assert b['actions'].shape == (4, 26, 28)
            assert b['targets'].shape == (4, 2, 3, 32, 32)
        for c, t in zip(b['clip'], b['t'].tolist()):
            assert CONTEXT - 1 <= t <= 60 - 1 - H
            seen.add((c, t))
        batches += 1
    assert len(seen) == len(ds)  # every window exactly once per epoch
    assert batches == -(-len(ds) // 4)


def test_truncated_mp4(crafter_clips, tmp_path):
    src = sorted(crafter_clips.glob('*.mp4'))[0]
    bad = tmp_path / 'broken'
    bad.mkdir()
    data = src.read_bytes()
    (bad / 'cut.mp4').write_bytes(data[:int(len(data) * 0.3)])
    shutil.copy(src.with_suffix('.jsonl'), bad / 'cut.jsonl')
    n_lines = len((bad / 'cut.jsonl').read_text().splitlines())
    ds = ClipWindows(bad, size=SIZE, horizon=H)  # must not crash
    if ds.skipped:
        assert ds.clips == []
        (p, msg), = ds.skipped
        assert p.name == 'cut.mp4' and 'cut.mp4' in msg
        assert len(ds) == 0
    else:
        # the container still opened: it may only stay if its frame count matches the lines within 1
        n = video_info(bad / 'cut.mp4').frames
        assert abs(n - n_lines) <= 1, f"truncated clip with {n} frames for {n_lines} lines was accepted"
        assert len(ds.clips) == 1
        try: f = ds.frames(0)
        except VideoError: return
        assert len(f) == ds.lengths[0]


def test_truncated_mp4_beside_good_clips(crafter_clips, tmp_path):
    folder = tmp_path / 'mixed'
    shutil.copytree(crafter_clips, folder)
    src = sorted(folder.glob('*.mp4'))[0]
    data = src.read_bytes()
    (folder / 'zz-cut.mp4').write_bytes(data[:int(len(data) * 0.3)])
    shutil.copy(src.with_suffix('.jsonl'), folder / 'zz-cut.jsonl')
    (folder / 'nojsonl.mp4').write_bytes(data)  # an mp4 without its partner file
    ds = ClipWindows(folder, size=SIZE, horizon=H)
    names = {p.name for p in ds.clips}
    assert {'crafter-s11-0000.mp4', 'crafter-s11-0001.mp4'} <= names
    assert 'nojsonl.mp4' not in names
    skipped = {p.name: msg for p, msg in ds.skipped}
    assert 'nojsonl.jsonl' in skipped['nojsonl.mp4']
    assert 'zz-cut.mp4' in skipped or 'zz-cut.mp4' not in names or \
        abs(video_info(folder / 'zz-cut.mp4').frames - 60) <= 1
    for p, msg in ds.skipped: assert p.name in msg
    b = next(iter(DataLoader(ds, batch_size=4, shuffle=True)))
    assert b['frame'].shape == (4, 3, SIZE, SIZE)


@pytest.mark.parametrize('frac', [0.3, 0.6, 0.9])
def test_truncated_faststart_mp4(crafter_clips, tmp_path, frac):
    "Regression: a cut mp4 whose moov header comes first still claims all its frames; it must be skipped or whole."
    src = sorted(crafter_clips.glob('*.mp4'))[0]
    full = tmp_path / 'full.mp4'
    faststart_copy(src, full)
    assert video_info(full).frames == 60
    bad = tmp_path / 'broken'
    bad.mkdir()
    data = full.read_bytes()
    (bad / 'cut.mp4').write_bytes(data[:int(len(data) * frac)])
    shutil.copy(src.with_suffix('.jsonl'), bad / 'cut.jsonl')
    ds = ClipWindows(bad, size=SIZE, horizon=H)
    if not ds.clips: return  # skipped: fine
    for k in range(len(ds)):  # kept: then every window must be whole
        w = ds[k]
        assert w['targets'].shape == (H, 3, SIZE, SIZE), f"window t={w['t']}: targets {tuple(w['targets'].shape)}"
