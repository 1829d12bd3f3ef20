"""Fail when a notebook's stored outputs are not what its code prints now.

CI runs the notebooks with `nbdev-test --save`, which writes what each cell printed back into the notebook, then
this compares every notebook in the working tree with the one committed at REF (default HEAD). Cells compare by
their outputs' kinds and text, with every number masked: numbers move with the CPU, threads and timings, but a
changed message, table, column, shape or a vanished output means the stored book no longer matches the code.
Pictures compare by kind only; stderr (warnings, progress bars) is not compared. Cells nbdev-test did not run (`#| slow`, `#| eval: false`) keep their stored
outputs and so compare equal.

    python tools/stale.py [--ref HEAD] [NOTEBOOK ...]
"""
import argparse, json, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r'[-+]?(?:\d[\d,_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?')
ADDRESS = re.compile(r'0x[0-9a-fA-F]+|/tmp/\S+')  # object addresses and temporary paths differ run to run


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
        if o.get('output_type') == 'display_data' and any(k.startswith('application/vnd.jupyter.widget') for k in o.get('data', {})):
            continue  # a progress bar drawn as a widget (a kernel with ipywidgets) where a plain run writes it to stderr
        kinds = sorted(k for k in o.get('data', {}) if not k.startswith('application/vnd.jupyter.widget'))
        text = ADDRESS.sub('@', NUMBER.sub('#', _text(o)))
        sig.append((o.get('output_type'), tuple(kinds), re.sub(r'\s+', ' ', text).strip()))
    return sig


def code_cells(nb): return [c for c in nb['cells'] if c['cell_type'] == 'code']


def compare(rel, ref='HEAD', root=ROOT):
    "Problems of notebook `rel` (relative to `root`, a git work tree) against its committed version at `ref`"
    old = subprocess.run(['git', 'show', f'{ref}:{rel}'], cwd=root, capture_output=True, text=True)
    if old.returncode: return []  # a new notebook: nothing stored to go stale
    stored, fresh = code_cells(json.loads(old.stdout)), code_cells(json.loads((Path(root) / rel).read_text()))
    if [c['source'] for c in stored] != [c['source'] for c in fresh]:
        return [f'{rel}: its code differs from {ref}: commit it before comparing outputs']
    out = []
    for i, (a, b) in enumerate(zip(stored, fresh)):
        sa, sb = signature(a), signature(b)
        if sa == sb: continue
        first = ''.join(a['source']).splitlines()[:1]
        what = next(((x, y) for x, y in zip(sa + [None] * len(sb), sb + [None] * len(sa)) if x != y), (None, None))
        out.append(f"{rel}: code cell {i} ({first[0][:50] if first else ''!r}): stored {_short(what[0])} but now {_short(what[1])}")
    return out


def _short(s): return 'nothing' if s is None else f'{s[0]} {s[2][:120]!r}'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='*', help='notebooks to compare (default: every tracked notebook under nbs/)')
    ap.add_argument('--ref', default='HEAD', help='the commit whose stored outputs are compared (default HEAD)')
    ap.add_argument('--root', default=str(ROOT), help='the git work tree (default: this repository)')
    a = ap.parse_args(argv)
    rels = a.notebooks or subprocess.run(['git', 'ls-files', 'nbs/*.ipynb', 'nbs/**/*.ipynb'], cwd=a.root, capture_output=True,
                                         text=True, check=True).stdout.split()
    problems = [p for r in dict.fromkeys(rels) for p in compare(Path(r).as_posix(), a.ref, a.root)]
    for p in problems: print(p)
    print(f'stale: {len(problems)} stale output(s) in {len(set(rels))} notebooks' if problems else
          f'stale: the stored outputs of {len(set(rels))} notebooks match what their code prints now')
    return 1 if problems else 0


if __name__ == '__main__': sys.exit(main())
