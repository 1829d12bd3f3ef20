"""Render the documentation site from the notebooks' stored outputs, without Quarto and without running them.

`nbdev-docs` needs Quarto; this does the rest of its job. nbdev processes the notebooks into `_proc/` as nbdev-docs
does (`nbdev.serve.proc_nbs`, the work of `nbdev-proc-nbs` less its Quarto install: titles, `show_doc` output after
exported definitions, for which nbdev runs the imports, exported code and show_doc cells; hidden and exported cells
removed; links added). nbconvert's HTML exporter then writes each page with the stored outputs, named as nbdev names
it (`00_actions.ipynb` -> `actions.html`), with a sidebar from `nbs/sidebar.yml`, the Quarto cell options nbdev
leaves (`echo`, `output`, `include`) applied, and links to notebooks and to the published site made
local. Widgets, require.js and MathJax load from `_static/`, unpacked from npm tarballs (`npm pack`, cached in
`.docs_cache/npm/`). Every relative href/src must reach a file inside the site, else the build fails.

    python tools/docs.py [--out _docs] [--nbs nbs] [--jobs 2]
"""
import html, json, os, re, shutil, subprocess, sys, tarfile, time
from pathlib import Path, PurePosixPath
from posixpath import normpath, relpath
from urllib.parse import unquote, urlsplit

import yaml
from fastcore.script import call_parse

ROOT = Path(__file__).resolve().parent.parent
NBS, CACHE = ROOT / 'nbs', ROOT / '.docs_cache'
MARKER = '.iwm-docs'  # written into the output folder (with the notebooks' folder): only such a folder is emptied
NPM = {'@jupyter-widgets/html-manager': '1.0.15', 'requirejs': '2.3.8', 'mathjax': '3.2.2'}  # exact: reproducible


class DocsError(Exception): "A build failure with a one-line message"


# ---------------------------------------------------------------- the site: sidebar.yml, pages, titles
def _listed(items):
    for it in items or []:
        if isinstance(it, dict) and 'contents' in it: yield from _listed(it['contents'])
        else: yield it['href'] if isinstance(it, dict) else it


def _frontmatter(path):
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    p = NBProcessor(path, procs=[FrontmatterProc], rm_directives=False)
    p.process()
    return p.nb.frontmatter_


def read_site(nbs=NBS):
    """The sidebar tree of `nbs/sidebar.yml`; its pages ({'src', 'out', 'title', 'description'}) in its order, then
    the other notebooks nbdev finds (Quarto renders every one); the site's title and published URL"""
    from nbdev.config import get_config, nbpath2html
    from nbdev.doclinks import nbglob
    nbs, cfg = Path(nbs), get_config(nbs)
    try: tree = yaml.safe_load((nbs / 'sidebar.yml').read_text())['website']['sidebar']['contents']
    except (OSError, KeyError, TypeError) as e: raise DocsError(f'{nbs}/sidebar.yml: no website.sidebar.contents ({e!r})')
    srcs = [s for s in dict.fromkeys(_listed(tree)) if not re.match(r'^[a-z]+:', s)]
    for rel in srcs:
        if not (nbs / rel).exists(): raise DocsError(f'nbs/sidebar.yml lists {rel}, but nbs/{rel} does not exist')
    srcs += sorted(r for f in nbglob(nbs, as_path=True) if (r := f.relative_to(nbs).as_posix()) not in srcs)
    pages = [{'src': rel, 'out': str(nbpath2html(PurePosixPath(rel))), 'title': str(fm.get('title') or rel),
              'description': str(fm.get('description') or '')} for rel in srcs for fm in [_frontmatter(nbs / rel)]]
    url = f"{cfg.get('doc_host', '')}{cfg.get('doc_baseurl', '')}".rstrip('/') + '/'
    return {'tree': tree, 'pages': pages, 'title': cfg.get('title', 'Documentation'), 'url': url}


def nav_html(site, page, root):
    "The sidebar <nav> for `page`, its links relative to it (`root` leads to the site's top)"
    e, by_src = html.escape, {p['src']: p for p in site['pages']}
    def items(tree):
        for it in tree:
            if isinstance(it, dict) and 'contents' in it:
                yield f'<li class="section"><span>{e(str(it["section"]))}</span><ul>{"".join(items(it["contents"]))}</ul></li>'
                continue
            src = it['href'] if isinstance(it, dict) else it
            p = by_src.get(src)
            text = (it.get('text') if isinstance(it, dict) else None) or (p['title'] if p else src)
            active = ' class="active"' if p is page else ''
            yield f'<li><a href="{e(root + p["out"] if p else src)}"{active}>{e(text)}</a></li>'
    return (f'<nav id="iwm-sidebar"><a class="site-title" href="{root}index.html">{e(site["title"])}</a>'
            f'<ul>{"".join(items(site["tree"]))}</ul></nav>')


# ---------------------------------------------------------------- vendored JavaScript (npm pack, cached)
def _pick(name, rel):
    "Where file `rel` of npm package `name` goes under _static/, or None"
    base = PurePosixPath(rel).name
    if base.upper().startswith('LICENSE'): return f'{name.split("/")[-1]}.LICENSE'
    if name == 'requirejs' and rel == 'require.js': return rel
    if name == 'mathjax' and (rel == 'es5/tex-chtml.js' or rel.startswith(('es5/output/chtml/', 'es5/input/tex/extensions/', 'es5/ui/', 'es5/a11y/'))):
        return 'mathjax/' + rel[4:]
    if name.endswith('html-manager') and re.fullmatch(r'dist/(embed-amd\.js|[^/]+\.(woff2?|ttf|eot|svg))', rel): return f'html-manager/{base}'


def vendor_static(out):
    "Unpack the widget manager, require.js and MathJax into `out`/_static"
    for name, version in NPM.items():
        f = CACHE / 'npm' / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
        if not f.exists():
            if not shutil.which('npm'): raise DocsError(f'{f} is missing and npm is not installed to fetch it (make packages)')
            f.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(['npm', 'pack', f'{name}@{version}', '--pack-destination', str(f.parent), '--silent'], capture_output=True, text=True)
            if r.returncode or not f.exists(): raise DocsError(f'npm pack {name}@{version} failed: {" ".join(r.stderr.split())[-300:]}')
        with tarfile.open(f) as tf:
            for m in tf.getmembers():
                if m.isfile() and '/' in m.name and (to := _pick(name, m.name.split('/', 1)[1])):
                    (out / '_static' / to).parent.mkdir(parents=True, exist_ok=True)
                    (out / '_static' / to).write_bytes(tf.extractfile(m).read())
    (out / '_static/site.css').write_text(SITE_CSS)


SITE_CSS = """body.iwm-page { margin: 0; }
#iwm-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: 260px; overflow-y: auto; box-sizing: border-box;
  padding: 1rem 1rem 2rem; border-right: 1px solid #dee2e6; background: #f8f9fa; font: 14px system-ui, sans-serif; }
#iwm-sidebar a { color: #343a40; text-decoration: none; } #iwm-sidebar a.active { color: #0d6efd; font-weight: 600; }
#iwm-sidebar .site-title { display: block; font-size: 1.3em; font-weight: 700; margin-bottom: .75rem; }
#iwm-sidebar ul { list-style: none; margin: 0; padding: 0; } #iwm-sidebar ul ul { padding-left: .75rem; }
#iwm-sidebar li { margin: .2rem 0; } #iwm-sidebar li.section > span { display: block; margin-top: .8rem; font-weight: 600; color: #6c757d; }
main.iwm-main { margin-left: 260px; padding: 1rem 2rem 4rem; max-width: 1100px; }
#title-block-header .description { font-size: 1.15em; color: #6c757d; }
@media (max-width: 800px) { #iwm-sidebar { position: static; width: auto; } main.iwm-main { margin-left: 0; } }
"""

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{{ super() }}
<script>/* the widget manager loads its modules and fonts from _static/, not from a CDN */
(function() { var d = '{{ resources.iwm.root }}_static/html-manager', p = {'@jupyter-widgets/html-manager/dist': d};
  ['html-manager', 'base', 'controls', 'base7', 'controls7', 'output'].forEach(function(m) { p['@jupyter-widgets/' + m] = d + '/' + m; });
  require.config({paths: p}); })();</script>
{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], processEscapes: true}, options: {enableMenu: false}};</script>
<script id="MathJax-script" async src="{{ resources.iwm.root }}_static/mathjax/tex-chtml.js"></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<link rel="stylesheet" href="{{ resources.iwm.root }}_static/site.css">{% endblock extra_css %}
{%- block body_header -%}
<body class="jp-Notebook iwm-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.iwm.nav }}<main class="iwm-main">
<header id="title-block-header"><h1 class="title">{{ resources.iwm.title | e }}</h1>
{%- if resources.iwm.description %}<p class="description">{{ resources.iwm.description | e }}</p>{% endif %}</header>
{%- endblock body_header -%}
"""


# ---------------------------------------------------------------- one page
def fix_markdown(s):
    "Pandoc markdown that nbconvert would print as it is: link attributes, heading attributes, fenced divs"
    attrs = lambda m: ' '.join(re.findall(r'[\w-]+="[^"]*"', m[3]))
    s = re.sub(r'\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}', lambda m: f'<a href="{html.escape(m[2])}" {attrs(m)}>{m[1]}</a>', s)
    s = re.sub(r'^(#{1,6}\s.*?)\s*\{[#.][^}\n]*\}\s*$', r'\1', s, flags=re.M)
    return re.sub(r'^:::+.*\n?', '', s, flags=re.M)


def quarto_cells(nb):
    "The cells as Quarto shows them: the `#| key: value` options nbdev leaves (include, echo, output) applied"
    cells = []
    for c in nb.cells:
        c.pop('has_sd', None), c.metadata.pop('execution', None)  # marks of nbdev's show_doc step, not nbformat's
        if c.cell_type == 'raw' and c.source.startswith('---'): continue  # the frontmatter: the title block shows it
        if c.cell_type == 'markdown': c.source = fix_markdown(c.source)
        if c.cell_type != 'code': cells.append(c); continue
        lines = c.source.splitlines()
        n = next((i for i, l in enumerate(lines) if not l.startswith('#|')), len(lines))
        opts = {k.strip(): v.strip().strip('"') for k, _, v in (l[2:].partition(':') for l in lines[:n])}
        c.source = '\n'.join(lines[n:]).strip('\n')
        if opts.get('include') == 'false': continue
        if opts.get('output') == 'false': c.outputs = []
        if opts.get('echo') == 'false' or not c.source.strip(): c.metadata['transient'] = {'remove_source': True}
        for o in c.outputs:  # show_doc's (`output: asis` is for Quarto: nbconvert renders markdown outputs anyway)
            if 'text/markdown' in o.get('data', {}): o.data['text/markdown'] = fix_markdown(o.data['text/markdown'])
        if c.outputs or not c.metadata.get('transient'): cells.append(c)
    nb.cells = cells
    return nb


def _fix_heading_ids(page):
    "nbconvert keeps a heading's case ('Two-commands'); Quarto's ids (and nbdev's doc links) are pandoc's: 'two-commands'"
    seen = {}
    def sub(m):
        text = html.unescape(re.sub(r'<[^>]+>', '', re.sub(r'<a class="anchor-link".*?</a>', '', m[3], flags=re.S)))
        new = re.sub(r'^[^a-z]+', '', re.sub(r'\s+', '-', re.sub(r'[^\w\s.-]', '', text.lower()).strip())) or 'section'
        n = seen[new] = seen.get(new, -1) + 1
        new = f'{new}-{n}' if n else new
        inner = m[3].replace(f'href="#{m[2]}"', f'href="#{new}"')
        return f'<h{m[1]} id="{new}"{inner}</h{m[1]}>'
    return re.sub(r'<h([1-6]) id="([^"]*)"(.*?)</h\1>', sub, page, flags=re.S)


def _fix_links(page, p, site):
    "Links to notebooks -> their pages; links to the published site -> relative links"
    here, srcdir = PurePosixPath(p['out']).parent, PurePosixPath(p['src']).parent
    src2out = {q['src']: q['out'] for q in site['pages']}
    def fix(u):
        if site['url'].startswith('http') and u.startswith(site['url']): path, frag = u[len(site['url']):].partition('#')[::2]
        else:
            parts = urlsplit(u)
            if parts.scheme or parts.netloc or u.startswith(('/', '#')) or PurePosixPath(parts.path).suffix != '.ipynb': return u
            target = normpath(str(srcdir / unquote(parts.path)))
            path, frag = src2out.get(target, target[:-6] + '.html'), parts.fragment
        return relpath(path or 'index.html', str(here)) + (f'#{frag}' if frag else '')
    return re.sub(r'(\s(?:href|src))="([^"]*)"', lambda m: f'{m[1]}="{html.escape(fix(html.unescape(m[2])))}"', page)


def render_page(proc, p, site, out):
    "Write `out`/page from the processed notebook in `proc`, with its stored outputs"
    import jinja2, nbformat
    from nbconvert import HTMLExporter
    root = '../' * (len(PurePosixPath(p['out']).parts) - 1)
    nb = quarto_cells(nbformat.read(proc / p['src'], as_version=4))
    if '"model_name"' not in json.dumps(nb.metadata.get('widgets', {})): nb.metadata.pop('widgets', None)  # no widget: no manager
    nb.metadata['title'] = p['title'] if p['out'] == 'index.html' else f"{p['title']} – {site['title']}"
    ex = HTMLExporter(template_name='lab', extra_loaders=[jinja2.DictLoader({'iwm.html.j2': TEMPLATE})], template_file='iwm.html.j2',
                      exclude_input_prompt=True, exclude_output_prompt=True, require_js_url=f'{root}_static/require.js',
                      mathjax_url=f'{root}_static/mathjax/tex-chtml.js', widget_renderer_url=f'{root}_static/html-manager/embed-amd.js')
    body, _ = ex.from_notebook_node(nb, resources={'iwm': {**p, 'root': root, 'nav': nav_html(site, p, root)}})
    (out / p['out']).parent.mkdir(parents=True, exist_ok=True)
    (out / p['out']).write_text(_fix_links(_fix_heading_ids(body), p, site), encoding='utf-8')


# ---------------------------------------------------------------- the link checker
class _Refs:
    def __init__(self, text):
        from bs4 import BeautifulSoup
        soup = BeautifulSoup(text, 'html.parser')
        self.ids = {t['id'] for t in soup.find_all(id=True)} | {t['name'] for t in soup.find_all('a', attrs={'name': True})}
        self.refs = [(t.name, a, t[a]) for t in soup.find_all(True) for a in ('href', 'src') if t.has_attr(a)]


def check_links(out, pages=None, anchors=True):
    "Relative href/src on `pages` (default: every .html under `out`) that do not resolve: [(page, url, why)]"
    out = Path(out).resolve()
    cache, broken = {}, []
    def refs(f):
        if f not in cache: cache[f] = _Refs(f.read_text(errors='replace'))
        return cache[f]
    for page in [out / p for p in pages] if pages is not None else sorted(out.rglob('*.html')):
        name = str(page.relative_to(out))
        for tag, attr, url in refs(page).refs:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith(('data:', 'mailto:', 'javascript:')): continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir(): target = target / 'index.html'
            if url.startswith('/') or not target.is_relative_to(out): why = 'outside the site'
            elif not target.exists(): why = 'no such file'
            elif anchors and parts.fragment and target.suffix == '.html' and unquote(parts.fragment) not in refs(target).ids: why = 'no such anchor'
            else: continue
            broken.append((name, url, why))
    return broken


# ---------------------------------------------------------------- the build
def build(out='_docs', nbs=NBS, jobs=2):
    "Render the site into `out`; returns the site. Raises DocsError naming what failed."
    from nbdev.config import get_config
    from nbdev.serve import proc_nbs
    t0, out, nbs = time.time(), (Path.cwd() / out).resolve(), Path(nbs).resolve()
    site, cwd = read_site(nbs), os.getcwd()
    os.chdir(get_config(nbs).config_path)  # nbdev's processors read the project's config from the working folder
    try: proc = proc_nbs(str(nbs), n_workers=jobs)
    except Exception as e: raise DocsError(f"nbdev's docs processing failed: {' '.join(str(e).split())[:500]}")
    finally: os.chdir(cwd)
    print(f'nbdev processed the notebooks into {proc} in {time.time() - t0:.0f} s', flush=True)
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists(): raise DocsError(f'{out} was not written by tools/docs.py: not emptying it')
        shutil.rmtree(out)
    shutil.copytree(proc, out, ignore=shutil.ignore_patterns('*.ipynb', '*.yml', '*.css', '.*'))  # images and other files
    (out / MARKER).write_text(json.dumps({'nbs': str(nbs)}))
    vendor_static(out)
    for p in site['pages']:
        try: render_page(proc, p, site, out)
        except Exception as e: raise DocsError(f"{p['out']} from _proc/{p['src']}: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
    broken = check_links(out)
    bad = [b for b in broken if b[2] != 'no such anchor']
    if bad: raise DocsError(f'{len(bad)} broken links:\n' + '\n'.join(f'  {p}: {u} ({why})' for p, u, why in bad))
    if len(bad) < len(broken):  # nbdev links `Class.method` to an anchor that exists only when it has its own show_doc
        print(f'warning: {len(broken)} links to an anchor no page has:\n' + '\n'.join(f'  {p}: {u}' for p, u, _ in broken))
    print(f"docs: {len(site['pages'])} pages in {out} in {time.time() - t0:.0f} s; every relative link resolves")
    return site


@call_parse
def main(out:str='_docs',  # the output folder
         nbs:str=str(NBS),  # the notebooks (_proc/ goes beside the pyproject.toml above them)
         jobs:int=2):  # nbdev's processing workers
    "Render the documentation site from the notebooks' stored outputs"
    try: build(out, nbs, jobs)
    except DocsError as e: sys.exit(f'docs: FAILED\n{e}')
