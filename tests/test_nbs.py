"""tools/nbs.py: `--check` finds a cell that should show a value but stored none, and a stored error; running a
notebook stores the outputs of exactly the cells nbdev-test runs, and a failing cell names the notebook and the cell."""
import importlib.util, json, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / 'tools' / 'nbs.py'
spec = importlib.util.spec_from_file_location('iwm_nbs_tool', TOOL)
nbs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nbs)


def code(src, *outputs): return {'cell_type': 'code', 'execution_count': None, 'id': f'c{abs(hash(src)) % 10**8}',
                                 'metadata': {}, 'source': src, 'outputs': list(outputs)}
def result(text): return {'output_type': 'execute_result', 'execution_count': None, 'metadata': {}, 'data': {'text/plain': text}}
def stream(text, name='stdout'): return {'output_type': 'stream', 'name': name, 'text': text}


def write_nb(folder, name, cells):
    folder.mkdir(parents=True, exist_ok=True)
    nb = {'cells': cells, 'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}},
          'nbformat': 4, 'nbformat_minor': 5}
    (folder / name).write_text(json.dumps(nb, indent=1))
    return folder / name


def run_tool(*args):
    r = subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return r.returncode, (r.stdout + r.stderr).strip().splitlines()


GOOD = [code('x = 1'), code('x + 1', result('2')), code("print('hi')", stream('hi\n')), code('test_eq(x, 1)'),
        code('x;'), code('import os'), code('def f(): return 1'), code('f()', result('1')),
        code('#| eval: false\nx + 2'), code('#| slow\nx + 3'),  # skipped as nbdev-test skips them: no output needed
        code('#| eval: false\n!echo "a shell line" \\\n   continued')]


@pytest.mark.parametrize('src,shows', [
    ('x', True), ('x + 1', True), ('f(x)', True), ('obj.method()', True), ('a, b', True), ('x  # a comment', True),
    ('x = 1', False), ('x;', False), ('x;  # quiet', False), ('print(x)', False), ('test_eq(1, 1)', False),
    ('test_close(a, b, eps=1e-3)', False), ('show_doc(f)', False), ('import os', False), ('def f(): pass', False),
    ('for i in x: i', False), ('!ls', False), ('%time f()', False), ('', False), ('x = (', False)])
def test_shows_value(src, shows):
    assert nbs.shows_value(src) == shows


def test_check_passes_a_good_notebook(tmp_path):
    write_nb(tmp_path, 'good.ipynb', GOOD)
    rc, lines = run_tool('--check', '--nbs', tmp_path)
    assert rc == 0 and lines == ['nbs: 1 notebooks, every output stored and none an error'], lines


def test_check_finds_a_missing_output_and_stored_errors(tmp_path):
    write_nb(tmp_path / 'missing', '01_a.ipynb', GOOD[:2] + [code('x * 10'), code('x')])
    err = {'output_type': 'error', 'ename': 'ZeroDivisionError', 'evalue': 'division by zero', 'traceback': []}
    write_nb(tmp_path / 'errors', '02_b.ipynb', [code('1/0', err), code('f()', stream('Traceback (most recent call last):\n', 'stderr')),
                                                  code('g()', stream('a warning\n', 'stderr'), result('3'))])
    rc, lines = run_tool('--check', '--nbs', tmp_path / 'missing')
    assert rc == 1 and lines == [f'{tmp_path}/missing/01_a.ipynb: cell 2: ends on a value but has no stored output (x * 10)',
                                 f'{tmp_path}/missing/01_a.ipynb: cell 3: ends on a value but has no stored output (x)'], lines
    rc, lines = run_tool('--check', '--nbs', tmp_path / 'errors')
    assert rc == 1 and lines == [f'{tmp_path}/errors/02_b.ipynb: cell 0: stored error ZeroDivisionError: division by zero',
                                 f'{tmp_path}/errors/02_b.ipynb: cell 1: a traceback on stderr'], lines


def test_forced_flags_run_for_their_notebook_only(tmp_path, monkeypatch):
    cells = [code('1'), code('#| slow\n2'), code('#| eval: false\n3'), code('#| notest\n4')]
    a, b = write_nb(tmp_path / 'tutorials', 'a.ipynb', cells), write_nb(tmp_path, 'b.ipynb', cells)
    monkeypatch.setitem(nbs.FORCE, 'tutorials/a.ipynb', ['slow'])
    assert nbs.run_cells(a, 'tutorials/a.ipynb') == {0, 1}
    assert nbs.run_cells(b, 'b.ipynb') == {0}
    assert nbs.FORCE['tutorials/quickstart.ipynb'] == ['slow']  # the project's setting


def test_run_stores_outputs_in_place_and_names_a_failing_cell(tmp_path):
    write_nb(tmp_path, '01_ok.ipynb', [code('import os\nx = 20'), code('x + 1', result('stale')), code('#| slow\nx + 2', result('stale')),
                                       code("print(os.path.basename(os.getcwd()))"), code('#| eval: false\n1/0')])
    write_nb(tmp_path, '02_bad.ipynb', [code('x = 1'), code("raise ValueError('no good')")])
    rc, lines = run_tool('01_ok', '02_bad', '--nbs', tmp_path)  # both run; the failure is named at the end
    assert rc == 1 and lines[-1] == f'{tmp_path}/02_bad.ipynb: cell 1: ValueError: no good', lines
    assert f'{tmp_path}/01_ok.ipynb: ran in' in '\n'.join(lines) and f'{tmp_path}/02_bad.ipynb: FAILED in' in '\n'.join(lines)
    nb = json.loads((tmp_path / '01_ok.ipynb').read_text())
    outs = [c['outputs'] for c in nb['cells']]
    assert ''.join(outs[1][0]['data']['text/plain']) == '21' and outs[2] == [] and outs[4] == []  # skipped cells keep no old output
    assert ''.join(outs[3][0]['text']) == f'{tmp_path.name}\n'  # run from the notebook's own folder
    assert all(c['execution_count'] is None and c['metadata'] == {} for c in nb['cells'])  # nbdev-clean ran
    assert json.loads((tmp_path / '02_bad.ipynb').read_text())['cells'][1]['outputs'] == []  # a failed notebook is left as it was
    rc, lines = run_tool('03_nothing', '--nbs', tmp_path)
    assert rc == 1 and 'no notebook 03_nothing' in lines[-1]


@pytest.mark.parametrize('src,bad', [
    ('import os', False), ('from a import b\nimport c', False), ('x = 1', False),
    ('from collections import Counter\nCounter("ab")', True), ('import os\nx = os.sep', True),
    ('def f():\n    import os\n    return os.sep', True),  # an import anywhere makes nbdev's docs build run the cell
    ('#| export\nimport os\nx = os.sep', False), ('#| hide\nimport nbdev; nbdev.nbdev_export()', False),
    ('#| eval: false\nimport os\nos.system("ls")', False)])
def test_imports_beside_code(src, bad):
    assert nbs.imports_beside_code(src) == bad


def test_check_names_a_cell_with_imports_beside_code(tmp_path):
    write_nb(tmp_path, '03_c.ipynb', [code('from collections import Counter\nc = Counter("ab")')])
    rc, lines = run_tool('--check', '--nbs', tmp_path)
    assert rc == 1 and lines == [f"{tmp_path}/03_c.ipynb: cell 0: imports beside other code (nbdev's docs build runs it alone): "
                                 'give the imports a cell of their own'], lines
