"StreamingWindows under a real two-process torchrun (gloo): each rank streams its own clips, together all of them."
import json, socket, subprocess, sys
from pathlib import Path
import iwm.crafter

WORKER = r'''
import json, sys, torch.distributed as dist
from torch.utils.data import DataLoader
from iwm.data import StreamingWindows
dist.init_process_group('gloo')
ds = StreamingWindows(sys.argv[1], size=16, horizon=1, buffer=8)
seen = sorted({(b, int(t)) for batch in DataLoader(ds, batch_size=4, num_workers=2) for b, t in zip(batch['clip'], batch['t'])})
everyone = [None] * dist.get_world_size()
dist.all_gather_object(everyone, dict(rank=dist.get_rank(), world=dist.get_world_size(), windows=seen))
if dist.get_rank() == 0:
    with open(sys.argv[2], 'w') as f: json.dump(everyone, f)
dist.barrier()  # both processes end together, after rank 0 has written
dist.destroy_process_group()
'''


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_torchrun_two_ranks_disjoint_and_cover(tmp_path):
    clips = tmp_path / 'clips'
    iwm.crafter.record(clips, episodes=5, steps=40, seed=21, size=(64, 36), progress=False)
    script, out = tmp_path / 'worker.py', tmp_path / 'seen.json'
    script.write_text(WORKER)
    torchrun = Path(sys.executable).parent / 'torchrun'
    r = subprocess.run([str(torchrun), '--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', str(_free_port()),
                        str(script), str(clips), str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r['rank'] for r in ranks] == [0, 1] and all(r['world'] == 2 for r in ranks)
    per_rank = [{c for c, _ in r['windows']} for r in ranks]
    assert all(per_rank), per_rank  # both ranks got clips
    assert not per_rank[0] & per_rank[1], per_rank  # no clip on both ranks
    assert per_rank[0] | per_rank[1] == {p.stem for p in clips.glob('*.mp4')}  # together: every clip
    windows = [tuple(w) for r in ranks for w in r['windows']]
    assert len(windows) == len(set(windows)) == 5 * (40 - 24 - 1)  # every window exactly once
