"""Run the notebooks in place and save them with their outputs (nbdev's convention), or check the saved outputs.

    python tools/nbs.py [NAME ...] [--jobs 2] [--nbs DIR]   # run every notebook (or these), then nbdev-clean them
    python tools/nbs.py --check [--nbs DIR]                 # fail on a missing output or a stored error

A notebook runs with nbclient from its own folder and runs the cells `nbdev-test` runs: not `#| eval: false`, not
those flagged with a `tst_flags` flag (pyproject.toml), except the flags that `FORCE` below runs for that notebook.
Widget state goes into the notebook's metadata (`widgets`: nbdev-clean keeps it, nbdev's docs processing passes it
on, and the page's widget manager draws the views from it offline), trimmed to the widgets the outputs show.
A failing cell stops its notebook (left as it was); the run goes on with the others, then fails with one line per
failure naming the notebook and the cell (0-based, counting every cell).
"""
import argparse, ast, json, os, re, sys, time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The per-notebook setting: flags whose cells run here although nbdev-test skips them. The quickstart's `#| slow`
# cells (record, train, evaluate: about 10 minutes on 2 CPU cores) make the pictures its page shows.
FORCE = {'tutorials/quickstart.ipynb': ['slow']}
# --check: a cell whose last statement is a call to one of these (or to a test_* function) displays nothing
QUIET = {'print', 'display', 'show_doc', 'nbdev_export', 'chdir', 'sleep', 'system', 'run_line_magic', 'run_cell_magic'}
WSTATE, WVIEW = 'application/vnd.jupyter.widget-state+json', 'application/vnd.jupyter.widget-view+json'


class Failed(Exception): "One line naming the notebook and what failed"


def notebooks(nbs, names=None):
    "The notebooks under `nbs` that nbdev finds (nbdev's nbglob), or those `names` name: {rel path: path}"
    from nbdev.doclinks import nbglob
    found = {f.relative_to(nbs).as_posix(): f for f in sorted(nbglob(nbs, as_path=True))}
    if not names: return found
    pick = {r: f for n in names for r, f in found.items() if n in (r, r[:-6], f.stem)}
    missing = [n for n in names if not any(n in (r, r[:-6], Path(r).stem) for r in found)]
    if missing: raise Failed(f"no notebook {', '.join(missing)} under {nbs}")
    return pick


def run_cells(path, rel):
    "Indices of the cells that run: those nbdev-test runs (nbdev's own `nb_test_cells`), plus the `FORCE` flags"
    from nbdev.config import get_config
    from nbdev.test import nb_test_cells
    flags = get_config(ROOT).tst_flags
    return {c.idx_ for c in nb_test_cells(path, flags.split() if isinstance(flags, str) else flags, FORCE.get(rel))}


def trim_widgets(nb):
    "Keep the widget models that outputs show and those they refer to (no `widgets` metadata when none is shown)"
    state = nb.metadata.get('widgets', {}).get(WSTATE, {}).get('state', {})
    todo = [o['data'][WVIEW]['model_id'] for c in nb.cells for o in c.get('outputs', []) if WVIEW in o.get('data', {})]
    keep = set()
    while todo:
        m = todo.pop()
        if m in keep or m not in state: continue
        keep.add(m)
        todo += [a or b for a, b in re.findall(r'IPY_MODEL_(\w+)|"model_id": "(\w+)"', json.dumps(state[m]['state']))]
    for m in keep:  # a layout's unset (null) properties are its defaults: the widget manager fills them in
        if state[m]['model_name'] == 'LayoutModel': state[m]['state'] = {k: v for k, v in state[m]['state'].items() if v is not None}
    if keep: nb.metadata['widgets'][WSTATE]['state'] = {k: v for k, v in state.items() if k in keep}
    else: nb.metadata.pop('widgets', None)


def execute(path, rel, shown, threads=1):
    "Run the notebook at `path` in place, save it and nbdev-clean it"
    import nbformat
    from nbclient import NotebookClient
    from nbdev.clean import nbdev_clean
    os.chdir(ROOT)  # nbdev-clean reads the project's config
    os.environ.update(IN_TEST='1', OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),  # IN_TEST: as nbdev-test
                      PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
    nb = nbformat.read(path, as_version=4)
    run = run_cells(path, rel)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    client = NotebookClient(nb, timeout=600, startup_timeout=120, store_widget_state=True, kernel_name='python3',
                            extra_arguments=['--IPKernelApp.log_level=ERROR'], resources={'metadata': {'path': str(path.parent)}})
    with client.setup_kernel():
        for i in sorted(run):
            try: client.execute_cell(nb.cells[i], i)
            except Exception as e:
                what = f'{e.ename}: {e.evalue}' if hasattr(e, 'ename') else f'{type(e).__name__}: {e}'
                raise Failed(f"{shown}: cell {i}: {' '.join(what.split())[:300]}") from None
        client.set_widgets_metadata()
    trim_widgets(nb)
    nbformat.write(nb, path)
    nbdev_clean.__wrapped__(fname=str(path))


def shows_value(src):
    """Does the cell display a value? Yes when its last statement (magics turned into Python by IPython) is a bare
    expression that is not `;`-terminated and not a call to a name in `QUIET` or to `test_*` (they return None)."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.inputtransformer2 import TransformerManager
    code = TransformerManager().transform_cell(src)
    try: body = ast.parse(code).body
    except SyntaxError: return False
    if not body or not isinstance(body[-1], ast.Expr) or DisplayHook.semicolon_at_end_of_expression(code): return False
    v = body[-1].value
    if not isinstance(v, ast.Call): return True
    name = getattr(v.func, 'id', getattr(v.func, 'attr', ''))
    return not (name in QUIET or name.startswith('test_'))


def imports_beside_code(src):
    """Whether a cell imports and also does something else: nbdev's docs build runs every cell holding an import,
    alone, without the cells before it, so such a cell fails there (exported and `nbdev_export()` cells excepted)."""
    if re.search(r'^#\|\s*(export|exports|exporti|exec_doc)\b|^#\|\s*eval:\s*false', src, re.M) or 'nbdev_export()' in src: return False
    try: body = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))).body
    except SyntaxError: return False
    imports = (ast.Import, ast.ImportFrom)
    return any(isinstance(n, imports) for t in body for n in ast.walk(t)) and not all(isinstance(t, imports) for t in body)


def check(path, rel, shown):
    "The problems of one saved notebook: a running cell that shows a value but has no output; a stored error; imports beside code"
    nb = json.loads(path.read_text())
    run, res = run_cells(path, rel), []
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        outs, src = c.get('outputs', []), ''.join(c['source'])
        if i in run and not outs and shows_value(src):
            res.append(f'{shown}: cell {i}: ends on a value but has no stored output ({src.strip().splitlines()[-1][:60]})')
        if imports_beside_code(src): res.append(f'{shown}: cell {i}: imports beside other code (nbdev\'s docs build runs it alone): give the imports a cell of their own')
        for o in outs:
            if o['output_type'] == 'error': res.append(f"{shown}: cell {i}: stored error {o['ename']}: {o['evalue'][:100]}")
            elif o.get('name') == 'stderr' and 'Traceback' in ''.join(o.get('text', '')):
                res.append(f'{shown}: cell {i}: a traceback on stderr')
    return res


def _execute(args):
    "Worker: (seconds, None) or (seconds, the one-line error)"
    t0 = time.time()
    try: execute(*args); err = None
    except Failed as e: err = str(e)
    return time.time() - t0, err


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('names', nargs='*', metavar='NAME', help='notebooks to run (default: all): 30_decoder, index, tutorials/quickstart')
    ap.add_argument('--jobs', type=int, default=1, help='notebooks run at a time (default 1)')
    ap.add_argument('--check', action='store_true', help='check the saved outputs instead of running anything')
    ap.add_argument('--nbs', default=str(ROOT / 'nbs'), help='the notebooks folder (default: nbs/)')
    a = ap.parse_args(argv)
    nbs = Path(a.nbs).resolve()
    show = lambda f: str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f)
    try: nbf = notebooks(nbs, a.names)
    except Failed as e: sys.exit(str(e))
    if a.check:
        problems = [p for rel, f in nbf.items() for p in check(f, rel, show(f))]
        print('\n'.join(problems) or f'nbs: {len(nbf)} notebooks, every output stored and none an error')
        return 1 if problems else 0
    threads, errors = max(1, (os.cpu_count() or 1) // a.jobs), []  # every notebook runs; the failures are listed at the end
    with ProcessPoolExecutor(a.jobs) as pool:
        futs = {pool.submit(_execute, (f, rel, show(f), threads)): show(f) for rel, f in nbf.items()}
        for fut in as_completed(futs):
            secs, err = fut.result()
            print(f"{futs[fut]}: {'FAILED' if err else 'ran'} in {secs:.0f} s", flush=True)
            if err: errors.append(err)
    print('\n'.join(errors), file=sys.stderr)
    return 1 if errors else 0


if __name__ == '__main__': sys.exit(main())
