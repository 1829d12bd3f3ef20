"Write README.md from nbs/index.ipynb (Quarto, which nbdev-readme uses, is not always installed)."
import json, re
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nb = json.loads((root / 'nbs/index.ipynb').read_text())
out = []
for cell in nb['cells']:
    src = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': out.append(src); continue
    lines = src.splitlines()
    flags = [l for l in lines if l.startswith('#|')]
    if any(re.match(r'#\|\s*(hide|exec_doc)', l) for l in flags): continue
    code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
    if code: out.append(f'```python\n{code}\n```')
text = '\n\n'.join(out).replace('](images/', '](nbs/images/')
(root / 'README.md').write_text('<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook -->\n\n' + text.strip() + '\n')
