"""A corpus of broken clips, each made from a real recorded Crafter clip. For every kind:
`iwm-inspect` names the problem in one line; both loaders skip the clip with a warning and a count (or read it
with the documented rule), never crash, and never yield a window whose actions and frames are misaligned."""
import json, shutil, subprocess, sys, warnings
from pathlib import Path
import av
import numpy as np
import pytest
import torch
import iwm.crafter
from iwm.actions import actions_from_jsonl
from iwm.data import ClipWindows, StreamingWindows
from iwm.inspect import inspect_folder
from iwm.video import read_frames
from conftest import faststart_copy

N = 40  # frames of the source clip


def _lines(src): return src.with_suffix('.jsonl').read_text().splitlines(keepends=True)


def _edit_line(lines, i, fn):
    d = json.loads(lines[i]); fn(d); return lines[:i] + [json.dumps(d) + '\n'] + lines[i + 1:]


def _audio_only(dst):
    with av.open(str(dst), 'w', format='mp4') as o:
        s = o.add_stream('aac', rate=44100)
        for k in range(20):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp', layout='mono')
            f.sample_rate, f.pts = 44100, k * 1024
            for p in s.encode(f): o.mux(p)
        for p in s.encode(): o.mux(p)


# kind -> (builder(src, folder, name), expected words in inspect's message, usable?)
def _kinds():
    def cp_mp4(src, d, n): shutil.copy(src, d / f'{n}.mp4')
    def cp_jsonl(src, d, n, lines=None): (d / f'{n}.jsonl').write_text(''.join(_lines(src) if lines is None else lines))
    def both(mp4=cp_mp4, lines=None):
        def build(src, d, n): mp4(src, d, n); cp_jsonl(src, d, n, lines(_lines(src)) if lines else None)
        return build
    def truncated(src, d, n): b = src.read_bytes(); (d / f'{n}.mp4').write_bytes(b[:len(b) // 2])
    def truncated_fast(src, d, n):
        faststart_copy(src, d / 'tmp.mp4'); b = (d / 'tmp.mp4').read_bytes(); (d / 'tmp.mp4').unlink()
        (d / f'{n}.mp4').write_bytes(b[:int(len(b) * 0.6)])
    def zero(src, d, n): (d / f'{n}.mp4').write_bytes(b'')
    def text(src, d, n): (d / f'{n}.mp4').write_text('this is not a video\n' * 100)
    def audio(src, d, n): _audio_only(d / f'{n}.mp4')
    def small(src, d, n): iwm.crafter.record_clip(d, n, seed=99, steps=N, size=(320, 180))
    def no_jsonl(src, d, n): cp_mp4(src, d, n)
    def no_mp4(src, d, n): cp_jsonl(src, d, n)
    def nan(l): l['mouse']['dx'] = float('nan')
    def huge(l): l['mouse']['dy'] = 99999.0
    def nulls(l): l['mouse'] = None; l['keyboard'] = None
    def unknown(l): l['keyboard']['keys'] = ['key.keyboard.z', 'key.keyboard.tab']
    def hot(l): l['hotbar'] = 11
    return {
        'truncated mp4': (truncated, ['not a readable video'], False),
        'truncated faststart mp4': (both(truncated_fast), ['video frames but', 'jsonl lines'], False),
        'zero-byte mp4': (both(zero), ['empty file'], False),
        'not a video': (both(text), ['not a readable video'], False),
        'no video stream': (both(audio), ['no video stream'], False),
        'wrong resolution': (lambda s, d, n: small(s, d, n), ['resolution 320x180'], True),
        'non-JSON line': (both(lines=lambda L: L[:7] + ['{"mouse": {"dx": \n'] + L[8:]), [':8: not JSON'], False),
        'non-UTF-8 bytes': (both(lines=lambda L: L[:3] + ['{"keyboard": {"keys": ["@BYTE@"]}}\n'] + L[4:]), [':4: not UTF-8'], False),
        'empty jsonl': (both(lines=lambda L: []), ['no action lines'], False),
        'blank line': (both(lines=lambda L: L[:10] + ['\n'] + L[11:]), [':11: empty line'], False),
        'JSON list line': (both(lines=lambda L: L[:2] + ['[1, 2]\n'] + L[3:]), [':3: a line must be a JSON object'], False),
        'missing jsonl': (no_jsonl, ['no such file'], False),
        'missing mp4': (no_mp4, ['no such file'], False),
        'count off by one': (both(lines=lambda L: L + L[-1:]), ['one-frame tail trimmed'], True),
        'count off by hundreds': (both(lines=lambda L: L * 9), [f'{N} video frames but {N * 9} jsonl lines'], False),
        'null mouse and keyboard': (both(lines=lambda L: _edit_line(L, 5, nulls)), ['null mouse or keyboard'], True),
        'NaN camera': (both(lines=lambda L: _edit_line(L, 6, nan)), [':7: mouse.dx is nan'], False),
        'absurd camera': (both(lines=lambda L: _edit_line(L, 6, huge)), [':7: camera moved'], False),
        'unknown keys': (both(lines=lambda L: _edit_line(L, 4, unknown)), ['key.keyboard.tab', 'key.keyboard.z', 'ignored'], True),
        'hotbar out of range': (both(lines=lambda L: _edit_line(L, 9, hot)), [':10: hotbar is 11'], False),
    }


KINDS = _kinds()


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    src_dir = tmp_path_factory.mktemp('src')
    iwm.crafter.record_clip(src_dir, 'src', seed=4, steps=N)
    src = src_dir / 'src.mp4'
    root = tmp_path_factory.mktemp('corpus')
    for i, (kind, (build, _, _)) in enumerate(KINDS.items()):
        d = root / f'k{i:02d}'; d.mkdir()
        name = f'k{i:02d}'
        build(src, d, name)
        if kind == 'non-UTF-8 bytes':  # write the raw byte 0xff, which no JSON text may hold
            p = d / f'{name}.jsonl'; p.write_bytes(p.read_bytes().replace(b'@BYTE@', b'\xff'))
    return src, root


def test_corpus_has_at_least_15_kinds():
    assert len(KINDS) >= 15


@pytest.mark.parametrize('kind', list(KINDS))
def test_inspect_names_the_problem_in_one_line(corpus, kind):
    _, root = corpus
    i = list(KINDS).index(kind)
    _, words, usable = KINDS[kind]
    reports = inspect_folder(root / f'k{i:02d}')
    assert len(reports) == 1
    r = reports[0]
    msgs = r.problems + r.warnings
    assert r.ok == usable, (kind, r)
    hit = [m for m in msgs if all(w in m for w in words)]
    assert hit, (kind, msgs)
    assert all('\n' not in m for m in msgs)
    assert all(f'k{i:02d}' in m for m in hit), hit  # names the file


def _check_aligned(w, folder):
    "A window's actions are the jsonl's lines t-24..t+K-1 and its frames are the video's t..t+K."
    a = actions_from_jsonl(folder / f"{w['clip']}.jsonl")
    t, K = w['t'], w['targets'].shape[0]
    assert torch.equal(w['actions'], torch.from_numpy(a[t - 24: t + K]))
    f = read_frames(folder / f"{w['clip']}.mp4", 32, start=t, stop=t + K + 1)
    assert np.array_equal(w['frame'].permute(1, 2, 0).numpy(), f[0])
    assert np.array_equal(w['targets'].permute(0, 2, 3, 1).numpy(), f[1:])


def test_loaders_skip_and_count_never_crash_never_misalign(corpus):
    src, root = corpus
    every = root / 'all'
    if not every.exists():
        every.mkdir()
        for d in sorted(root.glob('k*')):
            for f in d.iterdir(): shutil.copy(f, every / f.name)
        shutil.copy(src, every / 'good.mp4'); shutil.copy(src.with_suffix('.jsonl'), every / 'good.jsonl')
    usable = {f'k{i:02d}' for i, (_, _, u) in enumerate(KINDS.values()) if u} | {'good'}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ds = ClipWindows(every, size=32, horizon=2)
    assert {c.stem for c in ds.clips} == usable
    n_mp4 = len(list(every.glob('*.mp4')))
    assert len(ds.skipped) == n_mp4 - len(usable) and len(caught) >= len(ds.skipped)
    for k in range(0, len(ds), 7): _check_aligned(ds[k], every)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        st = StreamingWindows(every, size=32, horizon=2, buffer=32)
        got = list(st)
    # the cut faststart file decodes its first frames; those windows are whole and aligned, the rest is skipped
    assert {w['clip'] for w in got} <= usable | {f'k{list(KINDS).index("truncated faststart mp4"):02d}'}
    assert usable <= {w['clip'] for w in got}
    assert len(st.skipped) >= n_mp4 - len(usable) - 1
    for w in got[::5]: _check_aligned(w, every)


def test_inspect_cli_on_the_corpus(corpus):
    _, root = corpus
    exe = Path(sys.executable).parent / 'iwm-inspect'
    r = subprocess.run([str(exe), str(root)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    problems = [l for l in r.stdout.splitlines() if l.startswith('problem: ')]
    assert len(problems) >= sum(not u for _, _, u in KINDS.values())
    j = subprocess.run([str(exe), str(root / 'k00'), '--json'], capture_output=True, text=True, timeout=60)
    rep = json.loads(j.stdout)
    assert rep[0]['ok'] is False and 'not a readable video' in rep[0]['problems'][0]
