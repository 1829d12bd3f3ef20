"`iwm-download` against a real HTTP server on 127.0.0.1 that serves Crafter clips under a real VPT index's relpaths."
import collections, http.server, json, re, signal, subprocess, sys, threading, time, urllib.parse
from pathlib import Path
import pytest
from iwm.actions import actions_from_jsonl
from iwm.video import aligned_length, video_info
from iwm.vpt import MANIFEST, IndexFileError, load_index, part_path

INDEX = Path(__file__).parent / 'fixtures' / 'vpt' / 'index' / 'all_10xx_Jun_29.json'
CLI = Path(sys.executable).parent / 'iwm-download'
N = 9  # the scenario uses the index's first N clips


class Site:
    """A threaded HTTP server on 127.0.0.1 serving `root`, with Range requests, 416, and faults set per URL path.
    A path in `held` sends its first 4 KiB, then holds the rest until its event is set: a transfer that is certain
    to be in flight, however fast or busy the machine."""
    def __init__(self, root: Path):
        self.root, self.log, self.count = root.resolve(), [], collections.Counter()
        self.drop_once, self.fail_once, self.fail_always, self.held = set(), set(), set(), {}
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self): site.serve(self)
            def log_message(self, *args): pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.handle_error = lambda request, address: None  # a client that hung up mid-file
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}/'

    def serve(self, h):
        path, rng = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path), h.headers.get('Range')
        self.count[path] += 1
        first = self.count[path] == 1
        self.log.append((path, rng))
        if path in self.fail_always: return h.send_error(500)
        if path in self.fail_once and first: return h.send_error(503)
        f = (self.root / path.lstrip('/')).resolve()
        if not f.is_relative_to(self.root) or not f.is_file(): return h.send_error(404)
        data, start = f.read_bytes(), 0
        if rng:
            start = int(re.fullmatch(r'bytes=(\d+)-', rng)[1])
            if start >= len(data):
                h.send_response(416); h.send_header('Content-Range', f'bytes */{len(data)}'); h.end_headers(); return
            h.send_response(206); h.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        else: h.send_response(200)
        h.send_header('Content-Length', str(len(data) - start)); h.end_headers()
        body = data[start:]
        if path in self.drop_once and first: body = body[:len(body) // 2]  # then the connection closes
        if path in self.held:
            h.wfile.write(body[:4096]); h.wfile.flush()
            self.held[path].wait(60)
            body = body[4096:]
        h.wfile.write(body)

    def put(self, relpath: str, data: bytes):
        p = self.root / relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def requests(self, relpath): return [r for p, r in self.log if p == '/' + relpath]


def cli(*args, cwd, timeout=120):
    return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob('*') if p.is_file())


@pytest.fixture(scope='module')
def site(crafter_clips, tmp_path_factory):
    "The server, with the first N relpaths of the real 10.x index set up as the scenario needs."
    site = Site(tmp_path_factory.mktemp('site'))
    idx = load_index(INDEX)
    a, b = (crafter_clips / 'crafter-s11-0000', crafter_clips / 'crafter-s11-0001')
    mp4 = lambda c: Path(f'{c}.mp4').read_bytes()
    jsonl = lambda c: Path(f'{c}.jsonl').read_bytes()
    c = idx[:N + 1]
    def pair(i, src, mp4_data=None, jsonl_data=None):
        site.put(c[i].stem + '.jsonl', jsonl_data if jsonl_data is not None else jsonl(src))
        if mp4_data is not False: site.put(c[i].relpath, mp4_data if mp4_data is not None else mp4(src))
    pair(0, a)                                                    # ok
    pair(1, b); site.drop_once.add('/' + c[1].relpath)            # ok after a dropped connection mid-mp4
    pair(2, a, mp4_data=False)                                    # missing: mp4 404
    #    3                                                          missing: neither file (jsonl 404)
    pair(4, b, mp4_data=mp4(b)[:len(mp4(b)) * 3 // 5])            # invalid: video cut short on the server
    pair(5, a, jsonl_data=b''.join(jsonl(a).splitlines(keepends=True)[:30]))  # invalid: 30 lines for 60 frames
    pair(6, b); site.fail_once.add('/' + c[6].stem + '.jsonl')    # ok after a 503
    pair(7, a); site.drop_once.add('/' + c[7].stem + '.jsonl')    # ok after a dropped connection mid-jsonl
    pair(8, b); site.fail_always.add('/' + c[8].relpath)          # failed: 500 on every try
    pair(9, a); site.held['/' + c[9].relpath] = threading.Event()                 # for the interrupted download
    site.clips, site.sources = c, {0: a, 1: b, 6: b, 7: a}
    yield site
    site.server.shutdown()


EXPECTED = ['ok', 'ok', 'missing', 'missing', 'invalid', 'invalid', 'ok', 'ok', 'failed']


@pytest.fixture(scope='module')
def first_run(site, tmp_path_factory):
    "`iwm-download` over the first N clips, run in an empty working folder; what it left behind."
    work = tmp_path_factory.mktemp('work')
    t = time.time()
    r = cli(INDEX, '--out', 'out', '--limit', N, '--workers', 3, '--basedir', site.url, '--retries', 2,
            '--backoff', 0.01, '--timeout', 10, cwd=work)
    return dict(r=r, work=work, out=work / 'out', files=tree(work), seconds=time.time() - t,
                manifest=(work / 'out' / MANIFEST).read_text(), log=list(site.log))


def test_statuses_and_exit_code(first_run):
    r = first_run['r']
    assert r.returncode == 1, r.stderr  # one clip failed: run again
    assert '9 clips: 4 ok, 2 missing, 2 invalid, 1 failed' in r.stdout
    assert 'VPTIndex(all_10xx_Jun_29.json: 5661 clips, 0 duplicates dropped' in r.stderr
    recs = [json.loads(l) for l in first_run['manifest'].splitlines()]
    assert [m['status'] for m in recs] == EXPECTED


def test_manifest_records(first_run, site):
    recs = [json.loads(l) for l in first_run['manifest'].splitlines()]
    c, out = site.clips, first_run['out']
    assert [m['relpath'] for m in recs] == [x.relpath for x in c[:N]]  # one record per clip, index order
    for i, m in enumerate(recs):
        assert set(m) >= {'relpath', 'status', 'bytes', 'error', 'frames'}
        if m['status'] == 'ok':
            src = site.sources[i]
            frames = aligned_length(video_info(f'{src}.mp4').frames, len(actions_from_jsonl(f'{src}.jsonl')))
            assert m['error'] is None and m['frames'] == frames == 60
            assert m['bytes'] == sum(p.stat().st_size for p in c[i].paths(out))
    assert recs[2]['error'].startswith('HTTP 404') and recs[2]['error'].endswith(c[2].relpath)
    assert recs[3]['error'].startswith('HTTP 404') and recs[3]['error'].endswith(c[3].stem + '.jsonl')
    assert 'not a readable video' in recs[4]['error'] and c[4].relpath in recs[4]['error']
    assert '60 video frames but 30 jsonl lines' in recs[5]['error']
    assert 'HTTP 500' in recs[8]['error'] and '3 attempts' in recs[8]['error']


def test_files_written(first_run, site):
    c = site.clips
    ok = [p for i in (0, 1, 6, 7) for p in (c[i].relpath, c[i].stem + '.jsonl')]
    lone_jsonl = [c[2].stem + '.jsonl', c[8].stem + '.jsonl']  # their mp4 is missing / failed: no mp4 without its pair
    assert first_run['files'] == sorted('out/' + p for p in [MANIFEST, *ok, *lone_jsonl])  # nothing else, nowhere else
    for i in (0, 1, 6, 7):  # byte for byte what the server has
        for p in c[i].paths(first_run['out']): assert p.read_bytes() == (site.root / p.relative_to(first_run['out'])).read_bytes()


def test_resumed_with_range(first_run, site):
    c = site.clips
    for path in (c[1].relpath, c[7].stem + '.jsonl'):  # dropped mid-file, then resumed where the part ended
        tries = [r for p, r in first_run['log'] if p == '/' + path]
        size = (site.root / path).stat().st_size
        assert tries[0] is None and tries[1] == f'bytes={size // 2}-' and len(tries) == 2, tries
    assert [r for p, r in first_run['log'] if p == '/' + c[6].stem + '.jsonl'] == [None, None]  # 503, then whole
    assert [p for p, _ in first_run['log']].count('/' + c[8].relpath) == 3  # 1 try + 2 retries
    assert '/' + c[3].relpath not in {p for p, _ in first_run['log']}  # no jsonl: its mp4 is not fetched


def test_second_run_skips_complete_clips(first_run, site):
    before = len(site.log)
    r = cli(INDEX, '--out', 'out', '--limit', N, '--basedir', site.url, '--retries', 0, '--quiet', cwd=first_run['work'])
    assert r.returncode == 1, r.stderr
    asked = {p for p, _ in site.log[before:]}
    for i in (0, 1, 6, 7): assert not asked & {'/' + c for c in (site.clips[i].relpath, site.clips[i].stem + '.jsonl')}
    recs = [json.loads(l) for l in (first_run['out'] / MANIFEST).read_text().splitlines()]
    assert [m['status'] for m in recs] == EXPECTED and len(recs) == N
    assert [m['skipped'] for m in recs] == [s == 'ok' for s in EXPECTED]
    assert tree(first_run['work']) == first_run['files']


def _index_variant(tmp_path, name, **changes):
    "A copy of the real index's first 6 entries, with `changes` applied (relpaths as {i: new})."
    d = json.loads(INDEX.read_text())
    d['relpaths'] = d['relpaths'][:6]
    for i, v in changes.pop('relpaths', {}).items(): d['relpaths'][i] = v
    d.update(changes)
    if d.get('basedir') is None: d.pop('basedir', None)
    (tmp_path / name).write_text(json.dumps(d))
    return tmp_path / name, d


REAL = json.loads(INDEX.read_text())['relpaths']
BAD = {
    'climb': (dict(relpaths={2: '../' + REAL[2]}), 'relpaths[2]', 'climbs out'),
    'climb_deep': (dict(relpaths={4: 'data/10.0/../../../' + REAL[4].split('/')[-1]}), 'relpaths[4]', 'climbs out'),
    'absolute': (dict(relpaths={1: '/tmp/' + REAL[1]}), 'relpaths[1]', 'is absolute'),
    'file_basedir': (dict(basedir='file:///etc/'), 'basedir', 'not an http(s) URL'),
    'ftp_basedir': (dict(basedir='ftp://openaipublic.blob.core.windows.net/minecraft-rl/'), 'basedir', 'not an http(s) URL'),
    'no_basedir': (dict(basedir=None), 'no basedir', '--basedir'),
}


@pytest.mark.parametrize('case', list(BAD))
def test_untrusted_index_refused(case, tmp_path):
    changes, entry, why = BAD[case]
    path, _ = _index_variant(tmp_path, f'{case}.json', **changes)
    with pytest.raises(IndexFileError) as e: load_index(path)
    msg = str(e.value)
    assert msg.startswith(f'{path}: ') and entry in msg and why in msg and '\n' not in msg


@pytest.mark.parametrize('case', ['climb', 'no_basedir'])
def test_cli_refuses_untrusted_index(case, tmp_path, site):
    changes, entry, why = BAD[case]
    path, _ = _index_variant(tmp_path, f'{case}.json', **changes)
    work = tmp_path / 'work'; work.mkdir()
    before = tree(tmp_path)
    r = cli(path, '--out', 'out', cwd=work)
    assert r.returncode == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and entry in err and why in err
    assert tree(tmp_path) == before and not (work / 'out').exists()  # nothing written, not even the output folder


def test_basedir_given_for_index_without_one(tmp_path, site):
    path, d = _index_variant(tmp_path, 'nobase.json', basedir=None)
    idx = load_index(path, basedir=site.url)
    assert [c.relpath for c in idx] == d['relpaths'] and idx[0].mp4_url == site.url + d['relpaths'][0]
    r = cli(path, '--out', 'out', '--limit', 1, '--basedir', site.url, '--quiet', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [json.loads(l)['status'] for l in (tmp_path / 'out' / MANIFEST).read_text().splitlines()] == ['ok']


def test_interrupted_download_resumes(site, tmp_path):
    c = site.clips[N]
    mp4, jsonl = c.paths(tmp_path / 'out')
    args = (INDEX, '--out', 'out', '--match', c.relpath.split('/')[-1][:-4], '--basedir', site.url, '--quiet', '--timeout', 10)
    p = subprocess.Popen([str(CLI), *map(str, args)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # Ctrl-C works even where this test runs with it ignored
    part, t = part_path(mp4), time.time()
    while not (part.exists() and part.stat().st_size > 0) and time.time() - t < 30: time.sleep(0.01)
    p.send_signal(signal.SIGINT)  # the server holds the rest of the file: the signal lands mid-transfer
    _, err = p.communicate(timeout=30)
    site.held.pop('/' + c.relpath).set()
    assert p.returncode == 130, err
    assert 'interrupted' in err and '.part' in err
    size = part.stat().st_size
    assert 0 < size < (site.root / c.relpath).stat().st_size  # stopped mid-file...
    assert not mp4.exists() and jsonl.exists()  # ...with no final name on the partial file
    assert not any(json.loads(l)['relpath'] == c.relpath for l in (tmp_path / 'out' / MANIFEST).read_text().splitlines())
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert site.requests(c.relpath)[-1] == f'bytes={size}-'  # resumed where the interrupted run stopped
    assert mp4.read_bytes() == (site.root / c.relpath).read_bytes() and not part.exists()
    assert [json.loads(l)['status'] for l in (tmp_path / 'out' / MANIFEST).read_text().splitlines()] == ['ok']
    assert tree(tmp_path) == sorted(f'out/{p}' for p in (MANIFEST, c.relpath, c.stem + '.jsonl'))
