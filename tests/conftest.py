"Shared fixtures: real Crafter clips recorded once per test session."
import pytest
import iwm.crafter


@pytest.fixture(scope='session')
def crafter_clips(tmp_path_factory):
    "A folder with 2 real Crafter clips (60 steps each, seed 11) in VPT format: mp4 + jsonl + truth sidecar."
    folder = tmp_path_factory.mktemp('crafter_clips')
    iwm.crafter.record(folder, episodes=2, steps=60, seed=11, progress=False)
    return folder


def faststart_copy(src, dst):
    "Remux `src` with the moov atom first (as web-served mp4s are), without re-encoding."
    import av
    with av.open(str(src)) as i, av.open(str(dst), 'w', format='mp4', options={'movflags': 'faststart'}) as o:
        s = i.streams.video[0]
        out = o.add_stream_from_template(s)
        for p in i.demux(s):
            if p.dts is None: continue
            p.stream = out
            o.mux(p)


def start_train(*args):
    "Start `iwm-train ARGS` in its own process (one thread, so two can run side by side)."
    import os, subprocess, sys
    from pathlib import Path
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.Popen([str(Path(sys.executable).parent / 'iwm-train'), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def kill_when_written(p, path, timeout: float = 240):
    "SIGKILL process `p` the moment file `path` exists (a checkpoint's last file), failing if `p` ends first."
    import signal, time
    t0 = time.time()
    while not path.exists():
        assert p.poll() is None, p.stderr.read()[-2000:]
        assert time.time() - t0 < timeout
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL); p.wait()
