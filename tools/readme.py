"""Write README.md from nbs/index.ipynb and its stored outputs (Quarto, which nbdev-readme uses, is not always installed).

Markdown cells are copied; a code cell shows its source (unless `#| hide` or `#| echo: false`) and then what it stored:
markdown outputs as markdown, text as a text block. Relative links into the book point at nbs/."""
import json, re
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nb = json.loads((root / 'nbs/index.ipynb').read_text())


def outputs(cell):
    for o in cell.get('outputs', []):
        data = o.get('data', {})
        if 'text/markdown' in data: yield ''.join(data['text/markdown'])
        elif o.get('output_type') == 'stream' and o.get('name') == 'stdout': yield f"```text\n{''.join(o['text']).rstrip()}\n```"
        elif 'text/plain' in data: yield f"```text\n{''.join(data['text/plain']).rstrip()}\n```"


out = []
for cell in nb['cells']:
    src = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': out.append(src); continue
    flags = [l for l in src.splitlines() if l.startswith('#|')]
    if any(re.match(r'#\|\s*hide', l) for l in flags): continue
    code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
    if code and not any(re.match(r'#\|\s*echo:\s*false', l) for l in flags): out.append(f'```python\n{code}\n```')
    out.extend(outputs(cell))
text = re.sub(r'\]\((?!https?:|#|/)([^)\s]+)\)', r'](nbs/\1)', '\n\n'.join(out))
(root / 'README.md').write_text('<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook -->\n\n' + text.strip() + '\n')
