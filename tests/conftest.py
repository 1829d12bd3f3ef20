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
