"""Run the notebooks as tests and fail when a stored output is not what the code prints now.

`make test` runs the notebooks through this: it keeps the notebooks as they are on disk, runs `nbdev-test --save`
(which writes what each cell printed into the notebook), compares every notebook with the kept one, and puts the
kept notebooks back, whatever happened, so the stored book (and any uncommitted edit) is never replaced by a test
run. Cells compare by their outputs' kinds and text, with every number masked: numbers move with the CPU, threads
and timings, but a changed message, table, column, shape or a vanished output means the stored book no longer
matches the code. Pictures compare by kind only; stderr and progress bars drawn as widgets are not compared.
Cells nbdev-test does not run (`#| slow`, `#| eval: false`) keep their stored outputs and so compare equal.

    python tools/stale.py [NBDEV_TEST_ARGS ...]     # from the project root, e.g. --n-workers 2
"""
import json, re, subprocess, sys
from pathlib import Path

NUMBER = re.compile(r'[-+]?(?:\d[\d,_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?')
ADDRESS = re.compile(r'0x[0-9a-fA-F]+|/tmp/\S+')  # object addresses and temporary paths differ run to run
WIDGET = 'application/vnd.jupyter.widget'


def _text(o):
    if o.get('output_type') == 'stream': return o.get('name', '') + ':' + ''.join(o.get('text', ''))
    if o.get('output_type') == 'error': return 'error:' + o.get('ename', '')
    data = o.get('data', {})
    for k in ('text/markdown', 'text/html', 'text/plain'):
        if k in data: return k + ':' + ''.join(data[k])
    return ''


def signature(cell):
    "What a code cell's outputs say, numbers and addresses masked: [(output type, kinds, text), ...]"
    outs = []
    for o in cell.get('outputs', []):  # consecutive chunks of one stream are one output, however the kernel split them
        if outs and o.get('output_type') == 'stream' == outs[-1].get('output_type') and o.get('name') == outs[-1].get('name'):
            outs[-1] = dict(outs[-1], text=''.join(outs[-1]['text']) + ''.join(o['text']))
        else: outs.append(o)
    sig = []
    for o in outs:
        if o.get('output_type') == 'stream' and o.get('name') == 'stderr': continue  # warnings and progress bars
        if o.get('output_type') == 'display_data' and any(k.startswith(WIDGET) for k in o.get('data', {})):
            continue  # a progress bar drawn as a widget (a kernel with ipywidgets) where a plain run writes it to stderr
        kinds = sorted(k for k in o.get('data', {}) if not k.startswith(WIDGET))
        text = ADDRESS.sub('@', NUMBER.sub('#', _text(o)))
        sig.append((o.get('output_type'), tuple(kinds), re.sub(r'\s+', ' ', text).strip()))
    return sig


def code_cells(nb): return [c for c in nb['cells'] if c['cell_type'] == 'code']


def _short(s): return 'nothing' if s is None else f'{s[0]} {s[2][:120]!r}'


def compare(name, stored: dict, fresh: dict) -> list:
    "Problems of notebook `name`: the cells whose `fresh` outputs say something else than the `stored` ones"
    a, b = code_cells(stored), code_cells(fresh)
    if [''.join(c['source']) for c in a] != [''.join(c['source']) for c in b]: return [f'{name}: its code changed while it ran']
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        sa, sb = signature(x), signature(y)
        if sa == sb: continue
        first = ''.join(x['source']).splitlines()[:1]
        what = next(((p, q) for p, q in zip(sa + [None] * len(sb), sb + [None] * len(sa)) if p != q), (None, None))
        out.append(f"{name}: code cell {i} ({first[0][:50] if first else ''!r}): stored {_short(what[0])} but now {_short(what[1])}")
    return out


def main(args, root):
    "Run nbdev-test with --save in project `root`, compare, put the stored notebooks back; the exit status"
    kept = {p: p.read_bytes() for p in sorted((Path(root) / 'nbs').rglob('*.ipynb')) if '.ipynb_checkpoints' not in p.parts}
    try:
        rc = subprocess.run([str(Path(sys.executable).parent / 'nbdev-test'), '--save', *args], cwd=root).returncode
        problems = [p for f, b in kept.items() if f.exists() and f.read_bytes() != b
                    for p in compare(f.relative_to(root).as_posix(), json.loads(b), json.loads(f.read_text()))]
    finally:
        for f, b in kept.items(): f.write_bytes(b)
    for p in problems: print(p)
    print(f'stale: {len(problems)} stale output(s) in {len(kept)} notebooks' if problems else
          f'stale: the stored outputs of {len(kept)} notebooks match what their code prints now')
    return rc or (1 if problems else 0)


if __name__ == "__main__": sys.exit(main(sys.argv[1:], root=Path.cwd()))
