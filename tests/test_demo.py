"The demo job end to end, as `make demo` runs it (default sizes), in a temporary folder."
import json, subprocess, sys
from pathlib import Path
import pytest


@pytest.mark.slow
def test_iwm_demo_default_job(tmp_path):
    exe = Path(sys.executable).parent / 'iwm-demo'
    r = subprocess.run([str(exe), '--data', str(tmp_path / 'data'), '--out', str(tmp_path / 'run')],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / 'run/summary.json').read_text())
    assert s['clips'] == 4 and s['skipped'] == [] and s['windows'] > 0
    assert s['frames'] == sum(len((tmp_path / 'data' / f'crafter-s0-{i:04d}.jsonl').read_text().splitlines()) for i in range(4))
    moves = sum(v for k, v in s['actions'].items() if k.startswith('move_'))
    assert moves > 0.3 * s['frames'], s['actions']  # the exploring policy walks
    assert (tmp_path / 'run/clips.png').read_bytes()[:4] == b'\x89PNG'
