"""tools/stale.py: a stored output that no longer matches what the code prints is caught, moved numbers are not, and
the stored notebooks are put back after the run (a real nbdev-test on a small project)."""
import importlib.util, json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location('iwm_stale_tool', ROOT / 'tools' / 'stale.py')
stale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stale)


def nb(*outputs, source='print(f"loss {loss:.3f}")'):
    cell = {'cell_type': 'code', 'execution_count': None, 'id': 'a1', 'metadata': {}, 'source': source, 'outputs': list(outputs)}
    return {'cells': [cell], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}


def out(text): return {'output_type': 'stream', 'name': 'stdout', 'text': text}


def test_numbers_may_move_text_may_not():
    stored = nb(out('loss 0.512 after 80 steps\n'))
    now = lambda fresh: stale.compare('a.ipynb', stored, fresh)
    assert now(nb(out('loss 0.498 after 80 steps\n'))) == []  # another CPU: other digits
    assert now(nb(out('loss 0.4'), out('98 after 80 steps\n'))) == []  # a stream split in two chunks is one output
    bar = {'output_type': 'display_data', 'metadata': {}, 'data': {'application/vnd.jupyter.widget-view+json': {'model_id': 'f'},
                                                                      'text/plain': 'train: 0%|'}}
    assert now(nb(bar, out('loss 0.5 after 8 steps\n'))) == []  # a progress widget where a plain run writes to stderr
    assert len(now(nb(out('accuracy 0.512 after 80 steps\n')))) == 1  # the code prints something else now
    p = now(nb())  # the output vanished
    assert len(p) == 1 and 'but now nothing' in p[0] and 'a.ipynb: code cell 0' in p[0]
    err = {'output_type': 'error', 'ename': 'KeyError', 'evalue': 'x', 'traceback': []}
    assert len(now(nb(err))) == 1


def test_a_real_run_is_compared_then_put_back(tmp_path):
    (tmp_path / 'pyproject.toml').write_text('[project]\nname = "p"\nversion = "0.0.1"\n\n[tool.nbdev]\nlib_path = "p"\nnbs_path = "nbs"\n')
    (tmp_path / 'nbs').mkdir()
    same = nb(out('x is 41\n'), source='x = 42\nprint(f"x is {x}")')  # another number: the same text
    moved = nb(out('x is 42\n'), source='x = 42\nprint(f"x was {x}")')  # the code says something else now
    for name, n in (('a.ipynb', same), ('b.ipynb', moved)): (tmp_path / 'nbs' / name).write_text(json.dumps(n))
    before = {p.name: p.read_bytes() for p in (tmp_path / 'nbs').iterdir()}
    r = subprocess.run([sys.executable, str(ROOT / 'tools/stale.py'), '--n-workers', '1'], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "nbs/b.ipynb: code cell 0 ('x = 42'): stored stream 'stdout:x is #' but now stream 'stdout:x was #'" in r.stdout, r.stdout
    assert 'a.ipynb' not in r.stdout and 'stale: 1 stale output(s) in 2 notebooks' in r.stdout
    assert {p.name: p.read_bytes() for p in (tmp_path / 'nbs').iterdir()} == before  # the stored book is put back
