"tools/stale.py: a stored output that no longer matches what the code prints is caught; moved numbers are not."
import importlib.util, json, subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location('iwm_stale_tool', ROOT / 'tools' / 'stale.py')
stale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stale)


def nb(*outputs, source='print(f"loss {loss:.3f}")'):
    cell = {'cell_type': 'code', 'execution_count': None, 'id': 'a1', 'metadata': {}, 'source': source, 'outputs': list(outputs)}
    return {'cells': [cell], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}


def out(text): return {'output_type': 'stream', 'name': 'stdout', 'text': text}


def repo(tmp_path, stored):
    git = lambda *a: subprocess.run(['git', *a], cwd=tmp_path, check=True, capture_output=True)
    git('init', '-q'); git('config', 'user.email', 'ci@example.org'); git('config', 'user.name', 'ci')
    (tmp_path / 'nbs').mkdir()
    (tmp_path / 'nbs/a.ipynb').write_text(json.dumps(stored))
    git('add', '.'); git('commit', '-qm', 'stored')
    return lambda fresh: ((tmp_path / 'nbs/a.ipynb').write_text(json.dumps(fresh)), stale.compare('nbs/a.ipynb', root=tmp_path))[1]


def test_numbers_may_move_text_may_not(tmp_path):
    now = repo(tmp_path, nb(out('loss 0.512 after 80 steps\n')))
    assert now(nb(out('loss 0.498 after 80 steps\n'))) == []  # another CPU: other digits
    assert now(nb(out('loss 0.4'), out('98 after 80 steps\n'))) == []  # a stream split in two chunks is one output
    assert len(now(nb(out('accuracy 0.512 after 80 steps\n')))) == 1  # the code prints something else now
    bar = {'output_type': 'display_data', 'metadata': {}, 'data': {'application/vnd.jupyter.widget-view+json': {'model_id': 'f'},
                                                                      'text/plain': 'train: 0%|'}}
    assert now(nb(bar, out('loss 0.5 after 8 steps\n'))) == []  # a progress widget where a plain run writes to stderr
    p = now(nb())  # the output vanished
    assert len(p) == 1 and 'but now nothing' in p[0] and 'nbs/a.ipynb: code cell 0' in p[0]
    err = {'output_type': 'error', 'ename': 'KeyError', 'evalue': 'x', 'traceback': []}
    assert len(now(nb(err))) == 1


def test_changed_code_is_reported_not_compared(tmp_path):
    now = repo(tmp_path, nb(out('loss 0.5\n')))
    p = now(nb(out('loss 0.5\n'), source='print(loss)'))
    assert p == ['nbs/a.ipynb: its code differs from HEAD: commit it before comparing outputs']


def test_the_command_line(tmp_path):
    repo(tmp_path, nb(out('loss 0.5\n')))(nb(out('gain 0.5\n')))
    r = subprocess.run(['python', str(ROOT / 'tools/stale.py'), '--root', str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and 'stale: 1 stale output(s) in 1 notebooks' in r.stdout, r.stdout + r.stderr
