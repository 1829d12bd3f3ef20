"""Render the documentation site from the notebooks, without Quarto.

`nbdev-docs` needs Quarto. This does its job with nbdev's own notebook processors, nbclient and nbconvert:

1. the page order and sections come from `nbs/sidebar.yml` (a listed notebook that is missing is an error);
2. each notebook is processed as nbdev processes it for docs (`nbdev.processors.FilterDefaults`: title from the
   first heading, `show_doc` added after exported definitions, `#| hide` / `#| export` cells removed, ...);
3. it is executed with nbclient from its own folder (as `nbdev-test` runs it), skipping the cells `nbdev-test`
   skips (`#| eval: false`, and the flags in `tst_flags`), widget state stored; a failing cell fails the build;
4. nbconvert writes `<out>/<page>.html` (page names as nbdev gives them: `00_actions.ipynb` -> `actions.html`)
   with a sidebar that follows `sidebar.yml`; `.ipynb` links and links to the published site become local links;
5. widgets, require.js and MathJax load from `<out>/_static/`, unpacked from npm tarballs fetched once with
   `npm pack` into `.docs_cache/npm/`, so pages make no request outside the site;
6. every relative href/src on every page must reach a file inside `<out>` (else the build fails); links to an
   `#anchor` that the target page lacks are listed as warnings (nbdev links `Class.method` whether or not it has one).

Unlisted notebooks (that nbdev-test would run) are rendered too, without a sidebar entry, as Quarto renders them.

    python tools/docs.py [--out _docs] [--no-exec [--execute NAME ...]] [--only NAME ...] [--jobs 2]
"""
import argparse, html, json, os, re, shutil, subprocess, sys, tarfile, time, traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path, PurePosixPath
from posixpath import normpath, relpath
from urllib.parse import unquote, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'
CACHE = ROOT / '.docs_cache'
MARKER = '.iwm-docs'  # written into the output folder: only such a folder is ever emptied
# npm tarballs the pages load from _static/ (exact versions: the build is reproducible and checked offline)
NPM = {'@jupyter-widgets/html-manager': '1.0.15',  # ipywidgets 8 state (version_major 2)
       'requirejs': '2.3.8', 'mathjax': '3.2.2'}
_FONTS = ('.woff', '.woff2', '.ttf', '.eot', '.svg')


class DocsError(Exception): "A build failure with a one-line message"


# ---------------------------------------------------------------- the site: sidebar.yml, pages, titles
def _walk(items, where):
    res = []
    for it in items or []:
        if isinstance(it, str): res.append({'page': it})
        elif isinstance(it, dict) and 'section' in it:
            res.append({'section': str(it['section']), 'contents': _walk(it.get('contents'), where)})
        elif isinstance(it, dict) and 'href' in it: res.append({'page': it['href'], 'text': it.get('text')})
        else: raise DocsError(f'{where}: cannot read sidebar entry {it!r} (expected a path, href or section)')
    return res


def read_sidebar(nbs=NBS):
    "The sidebar tree of `nbs/sidebar.yml`: a list of {'page': rel} and {'section': name, 'contents': [...]}"
    f = Path(nbs) / 'sidebar.yml'
    if not f.exists(): raise DocsError(f'{f} does not exist')
    y = yaml.safe_load(f.read_text()) or {}
    try: contents = y['website']['sidebar']['contents']
    except (KeyError, TypeError): raise DocsError(f'{f}: no website.sidebar.contents')
    return _walk(contents, f)


def sidebar_pages(tree):
    "The page paths of a sidebar tree, in order"
    for it in tree:
        if 'page' in it: yield it['page']
        else: yield from sidebar_pages(it['contents'])


def out_name(rel):
    "The html page nbdev/Quarto writes for notebook `rel` (relative to nbs/): `00_actions.ipynb` -> `actions.html`"
    from nbdev.config import nbpath2html
    return str(PurePosixPath(nbpath2html(PurePosixPath(rel))))


def frontmatter(path):
    "nbdev's frontmatter of the notebook at `path`: title and description from its first heading, YAML cells"
    from fastcore.nbio import read_nb
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    nb = read_nb(path)
    NBProcessor(nb=nb, procs=[FrontmatterProc], rm_directives=False).process()
    return dict(getattr(nb, 'frontmatter_', {}) or {})


def _page(nbs, rel, listed):
    fm = frontmatter(Path(nbs) / rel)
    return {'src': rel, 'out': out_name(rel), 'title': str(fm.get('title') or PurePosixPath(rel).stem),
            'description': str(fm.get('description') or ''), 'listed': listed}


def other_notebooks(nbs, listed):
    "The notebooks nbdev-test would test (nbdev's nbglob, `.notest` folders aside) that `listed` does not hold"
    from nbdev.doclinks import nbglob
    files = [Path(f) for f in nbglob(Path(nbs), as_path=True)]
    return sorted(r for f in files if (r := f.relative_to(nbs).as_posix()) not in listed)


def read_site(nbs=NBS):
    """Sidebar tree, pages ({'src', 'out', 'title', 'description', 'listed'}) and site settings. The pages are those of
    the sidebar, in its order, then the other notebooks (Quarto renders every notebook; nbdev-test tests every one)."""
    nbs = Path(nbs)
    tree = read_sidebar(nbs)
    pages, seen = [], set()
    for rel in sidebar_pages(tree):
        if rel in seen or re.match(r'^[a-z]+:', rel): continue  # twice, or an external link
        seen.add(rel)
        if PurePosixPath(rel).suffix != '.ipynb':
            raise DocsError(f'nbs/sidebar.yml lists {rel}: only notebooks are rendered without Quarto')
        if not (nbs / rel).exists(): raise DocsError(f'nbs/sidebar.yml lists {rel}, but nbs/{rel} does not exist')
        pages.append(_page(nbs, rel, True))
    pages += [_page(nbs, rel, False) for rel in other_notebooks(nbs, seen)]
    cfg = yaml.safe_load((nbs / 'nbdev.yml').read_text()) if (nbs / 'nbdev.yml').exists() else {}
    web = (cfg or {}).get('website', {}) or {}
    urls = [web.get('site-url', '')]
    try:
        from nbdev.config import get_config
        c = get_config(nbs)
        urls.append(f"{c.get('doc_host', '')}{c.get('doc_baseurl', '')}")
    except Exception: pass
    urls = sorted({u.rstrip('/') + '/' for u in urls if u and u.startswith('http')}, key=len, reverse=True)
    return {'tree': tree, 'pages': pages, 'title': web.get('title', 'Documentation'), 'site_urls': urls}


def nav_html(site, page, root):
    "The sidebar <nav> for `page`, its links relative to the page (`root` leads to the site's top)"
    e = html.escape
    by_src = {p['src']: p for p in site['pages']}
    def items(tree):
        res = []
        for it in tree:
            if 'page' in it:
                p = by_src.get(it['page'])
                href = root + p['out'] if p else it['page']
                text = it.get('text') or (p['title'] if p else it['page'])
                cls = ' class="active"' if p is page else ''
                res.append(f'<li><a href="{e(href)}"{cls}>{e(text)}</a></li>')
            else:
                res.append(f'<li class="section"><span>{e(it["section"])}</span><ul>{"".join(items(it["contents"]))}</ul></li>')
        return res
    return (f'<nav id="iwm-sidebar"><a class="site-title" href="{root}index.html">{e(site["title"])}</a>'
            f'<ul>{"".join(items(site["tree"]))}</ul></nav>')


# ---------------------------------------------------------------- vendored JavaScript (npm pack, cached)
def _npm_tarball(name, version):
    d = CACHE / 'npm'
    f = d / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if f.exists(): return f
    npm = shutil.which('npm')
    if not npm: raise DocsError(f'{name}@{version} is not in {d} and npm is not installed to fetch it (apt-get install npm)')
    d.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([npm, 'pack', f'{name}@{version}', '--pack-destination', str(d), '--silent'],
                       capture_output=True, text=True)
    if r.returncode or not f.exists():
        raise DocsError(f'npm pack {name}@{version} failed: ' + ' '.join((r.stderr or r.stdout).split())[-300:])
    return f


def _pick(name, rel):
    "Where member `rel` of npm package `name` goes under _static/, or None"
    base = PurePosixPath(rel).name
    if base.upper().startswith('LICENSE'): return {'requirejs': 'require.js.LICENSE'}.get(name, f'{name.split("/")[-1]}/{base}')
    if name == '@jupyter-widgets/html-manager':
        if rel.startswith('dist/') and '/' not in rel[5:] and (base == 'embed-amd.js' or base.endswith(_FONTS)):
            return f'html-manager/{base}'
    elif name == 'requirejs':
        if rel == 'require.js': return 'require.js'
    elif name == 'mathjax':
        if rel == 'es5/tex-chtml.js' or rel.startswith(('es5/output/chtml/', 'es5/input/tex/extensions/', 'es5/ui/', 'es5/a11y/')):
            return 'mathjax/' + rel[4:]


def vendor_static(out):
    "Unpack the widget manager, require.js and MathJax into `out`/_static"
    static = Path(out) / '_static'
    for name, version in NPM.items():
        with tarfile.open(_npm_tarball(name, version)) as tf:
            for m in tf.getmembers():
                if not m.isfile() or '/' not in m.name: continue
                to = _pick(name, m.name.split('/', 1)[1])
                if to is None: continue
                p = static / to
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(tf.extractfile(m).read())
    (static / 'site.css').write_text(SITE_CSS)
    if not (static / 'html-manager/embed-amd.js').exists(): raise DocsError('html-manager tarball has no dist/embed-amd.js')


SITE_CSS = """
body.iwm-page { margin: 0; padding: 0; }
#iwm-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: 260px; overflow-y: auto; box-sizing: border-box;
  padding: 1rem 1rem 2rem; border-right: 1px solid #dee2e6; background: #f8f9fa;
  font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 14px; }
#iwm-sidebar a { color: #343a40; text-decoration: none; }
#iwm-sidebar a:hover { color: #0d6efd; }
#iwm-sidebar a.active { color: #0d6efd; font-weight: 600; }
#iwm-sidebar .site-title { display: block; font-size: 1.3em; font-weight: 700; margin-bottom: .75rem; }
#iwm-sidebar ul { list-style: none; margin: 0; padding: 0; }
#iwm-sidebar ul ul { padding-left: .75rem; }
#iwm-sidebar li { margin: .2rem 0; }
#iwm-sidebar li.section > span { display: block; margin-top: .8rem; font-weight: 600; color: #6c757d; }
main.iwm-main { margin-left: 260px; padding: 1rem 2rem 4rem; max-width: 1100px; }
#title-block-header .description { font-size: 1.15em; color: #6c757d; }
details.code-fold > summary { cursor: pointer; color: #6c757d; font-size: .9em; }
@media (max-width: 800px) { #iwm-sidebar { position: static; width: auto; } main.iwm-main { margin-left: 0; } }
"""

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}
{{ super() }}
<script>/* the widget manager finds its fonts beside the module uri requirejs gives it: point those at _static/ */
(function() { var d = '{{ resources.iwm.root }}_static/html-manager', p = {'@jupyter-widgets/html-manager/dist': d};
  ['html-manager', 'base', 'controls', 'base7', 'controls7', 'output'].forEach(function(m) { p['@jupyter-widgets/' + m] = d + '/' + m; });
  require.config({paths: p}); })();</script>
{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
  processEscapes: true}, options: {enableMenu: false}};</script>
<script id="MathJax-script" async src="{{ resources.iwm.root }}_static/mathjax/tex-chtml.js"></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{#- nbconvert's would import mermaid from cdnjs; no page has a diagram -#}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<link rel="stylesheet" href="{{ resources.iwm.root }}_static/site.css">{% endblock extra_css %}
{%- block body_header -%}
<body class="jp-Notebook iwm-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.iwm.nav }}
<main class="iwm-main">
<header id="title-block-header"><h1 class="title">{{ resources.iwm.title | e }}</h1>
{%- if resources.iwm.description %}<p class="description">{{ resources.iwm.description | e }}</p>{% endif -%}
</header>
{%- endblock body_header -%}
{% block input_group -%}
{%- set fold = cell.metadata.get('iwm_fold') -%}
{%- if fold -%}
<details class="code-fold"{% if fold == 'show' %} open{% endif %}><summary>{{ cell.metadata.get('iwm_summary') or 'Code' }}</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock input_group %}
"""


# ---------------------------------------------------------------- one page: process, execute, convert
_re_opt = re.compile(r'^#\|\s?(.*)$')
_re_fm = re.compile(r'^\s*---\s*\n')
_re_showdoc = re.compile(r'^show_doc', re.M)


def quarto_options(src):
    "The Quarto `#| key: value` lines opening `src`, as a dict, and the code after them"
    lines = src.splitlines()
    i = 0
    while i < len(lines) and _re_opt.match(lines[i]): i += 1
    opts = {}
    for l in lines[:i]:
        k, _, v = _re_opt.match(l).group(1).partition(':')
        try: opts[k.strip()] = yaml.safe_load(v) if v.strip() else True
        except yaml.YAMLError: opts[k.strip()] = v.strip()
    return opts, '\n'.join(lines[i:]).strip('\n')


def _false(v): return str(v).lower() == 'false'


def fix_markdown(s):
    "Quarto/pandoc markdown that nbconvert's mistune would print verbatim: link attributes, heading attributes, fenced divs"
    def link(m):
        attrs = ' '.join(a for a in re.findall(r'[\w-]+="[^"]*"', m.group(3)))
        return f'<a href="{html.escape(m.group(2))}" {attrs}>{m.group(1)}</a>'
    s = re.sub(r'\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}', link, s)
    s = re.sub(r'^(#{1,6}\s.*?)\s*\{[#.][^}\n]*\}\s*$', r'\1', s, flags=re.M)
    s = re.sub(r'^:::+.*\n?', '', s, flags=re.M)
    return s


def _pandoc_id(text):
    s = re.sub(r'[^\w\s.-]', '', text.lower())
    s = re.sub(r'\s+', '-', s.strip())
    return re.sub(r'^[^a-z]+', '', s) or 'section'


def _fix_heading_ids(page):
    "nbconvert keeps the heading's case ('Two-commands'); Quarto's ids (and nbdev's doc links) are pandoc's: 'two-commands'"
    seen = {}
    def sub(m):
        lvl, old, inner = m.group(1), m.group(2), m.group(3)
        text = html.unescape(re.sub(r'<[^>]+>', '', re.sub(r'<a class="anchor-link".*?</a>', '', inner, flags=re.S)))
        new = _pandoc_id(text)
        n = seen.get(new, 0); seen[new] = n + 1
        if n: new = f'{new}-{n}'
        inner = inner.replace(f'href="#{old}"', f'href="#{new}"')
        return f'<h{lvl} id="{new}"{inner}</h{lvl}>'
    return re.sub(r'<h([1-6]) id="([^"]*)"(.*?)</h\1>', sub, page, flags=re.S)


def _rewrite_links(page, job):
    "Links to notebooks -> their pages; links to the published site -> relative links; all relative to this page"
    here = str(PurePosixPath(job['out']).parent)
    srcdir = str(PurePosixPath(job['src']).parent)
    src2out = job['src2out']
    def rel_to_here(target):  # target: path relative to the site's top
        return relpath(target, here if here != '.' else '.')
    def fix(u):
        for base in job['site_urls']:
            if u.startswith(base):
                path, _, frag = u[len(base):].partition('#')
                path = path or 'index.html'
                return rel_to_here(path) + (f'#{frag}' if frag else '')
        parts = urlsplit(u)
        if parts.scheme or parts.netloc or u.startswith(('/', '#')) or not parts.path: return u
        path = unquote(parts.path)
        if PurePosixPath(path).suffix in ('.ipynb', '.qmd', '.md'):
            target = normpath(str(PurePosixPath(srcdir) / path))
            out = src2out.get(target) or str(PurePosixPath(target).with_suffix('.html'))
            return rel_to_here(out) + (f'#{parts.fragment}' if parts.fragment else '')
        return u
    return re.sub(r'(\s(?:href|src))="([^"]*)"', lambda m: f'{m.group(1)}="{html.escape(fix(html.unescape(m.group(2))))}"', page)


def _first_line(src):
    for l in (src or '').splitlines():
        if l.strip() and not l.lstrip().startswith('#|'): return l.strip()[:80]
    return ''


def _execute(nbf, job, log):
    "Run the code cells of nbformat notebook `nbf` with nbclient, from the notebook's folder; DocsError on a failure"
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    class Client(NotebookClient):
        current = None
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            self.current = cell_index
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    client = Client(nbf, timeout=job['timeout'], startup_timeout=120, store_widget_state=True, allow_errors=False,
                    extra_arguments=['--IPKernelApp.log_level=ERROR'],  # not its warning about TCP on localhost
                    resources={'metadata': {'path': str(NBS / PurePosixPath(job['src']).parent)}})
    try: client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError, TimeoutError) as e:
        i = client.current
        cell = nbf.cells[i] if i is not None and i < len(nbf.cells) else {}
        i = cell.get('metadata', {}).get('iwm_src') if cell else None
        where = 'kernel' if not cell else f"cell {i} (0-based, id {cell.get('id')})" if i is not None else 'an added show_doc cell'
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(re.sub(r'\x1b\[[0-9;]*m', '', str(e)))
        what = f'{e.ename}: {e.evalue}' if isinstance(e, CellExecutionError) else f'{type(e).__name__}: {e}'
        what = ' '.join(what.split())[:200]
        raise DocsError(f"nbs/{job['src']}: {where} [{_first_line(cell.get('source', ''))}] failed: {what} "
                        f"(full traceback: {log.relative_to(ROOT) if log.is_relative_to(ROOT) else log})") from None


def build_page(job):
    "Process, execute and convert one notebook; writes `job['dest']`/`job['out']`"
    import nbformat
    from fastcore.basics import str2bool
    from fastcore.nbio import read_nb, dict2nb, nb2dict, does_cell_eval, fm_default_eval, nb_lang
    from nbdev.process import NBProcessor
    from nbdev import processors as P

    os.chdir(ROOT)  # nbdev reads its config from the project
    os.environ['IN_TEST'] = '1'  # as nbdev-test and nbdev's docs processing do
    for k, v in job.get('env', {}).items():
        if k == 'PYTHONPATH' or k not in os.environ: os.environ[k] = v
    src = NBS / job['src']

    # nbdev's docs processors, split around execution: those before `exec_show_docs` shape the notebook we run,
    # those after it (rm_export, hide_, add_links, ...) run on the executed notebook
    procs = list(P.FilterDefaults().procs())
    cut = next((i for i, p in enumerate(procs) if p in (P.exec_show_docs, P.rm_export)), len(procs))
    on_outputs = [p for p in procs if p in (P.strip_ansi, P.filter_stream_)]
    pre = [p for p in procs[:cut] if p not in on_outputs and p is not P.insert_warning]
    post = on_outputs + [p for p in procs[cut:] if p is not P.exec_show_docs]

    nb = read_nb(src)
    for c in nb.cells: c.metadata['iwm_src'] = c.idx_
    NBProcessor(nb=nb, procs=pre, rm_directives=False).process()
    fm = dict(getattr(nb, 'frontmatter_', {}) or {})

    # the cells nbdev-test would skip (frontmatter skip_exec, `eval: false`, tst_flags); --no-exec: also those
    # nbdev's docs build would not run (all but imports, exported code and show_doc)
    skip_all = str2bool(fm.get('skip_exec', False)) or nb_lang(nb) != 'python'
    dflt = fm_default_eval(fm)
    flags = set(job['skip_flags'])
    for c in nb.cells:
        if c.cell_type != 'code': continue
        dirs = getattr(c, 'directives_', None) or c.directives
        skip = skip_all or not does_cell_eval(c, dflt) or bool(flags & set(dirs))
        if job['exec'] == 'docs' and not P._do_eval(c): skip = True
        if skip: c.metadata['iwm_skip'] = True
        if c.get('has_sd'): c.metadata['iwm_has_sd'] = True

    d = nb2dict(nb)
    for c in d['cells']:
        c.pop('has_sd', None)
        c['source'] = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] == 'code':
            c.setdefault('outputs', []); c.setdefault('execution_count', None)
            if c['metadata'].get('iwm_skip'): c['metadata'].setdefault('tags', []).append('skip-execution')
        else: c.pop('outputs', None); c.pop('execution_count', None)
    runs = [c for c in d['cells'] if c['cell_type'] == 'code' and not c['metadata'].get('iwm_skip')]
    if runs and any(_re_showdoc.search(c['source']) for c in runs):
        d['cells'].insert(0, {'cell_type': 'code', 'metadata': {'iwm_setup': True}, 'outputs': [], 'execution_count': None,
                              'source': 'from nbdev.showdoc import show_doc', 'id': 'iwm-docs-setup'})
    nbf = nbformat.reads(json.dumps(d), as_version=4)  # reads: multi-line strings joined, as nbconvert expects
    if runs: _execute(nbf, job, CACHE / 'logs' / (job['src'].replace('/', '__') + '.txt'))
    nbf.cells = [c for c in nbf.cells if not c.metadata.get('iwm_setup')]
    for c in nbf.cells:
        if c.metadata.pop('iwm_skip', False):
            c.metadata['tags'] = [t for t in c.metadata.get('tags', []) if t != 'skip-execution']
            if not c.metadata['tags']: del c.metadata['tags']

    # the rest of nbdev's processors, on the executed notebook
    nb = dict2nb(json.loads(json.dumps(nbf)))
    nb.path_, nb.frontmatter_ = str(src), fm
    for c in nb.cells:
        if c.metadata.pop('iwm_has_sd', False): c['has_sd'] = True
    NBProcessor(nb=nb, procs=post, rm_directives='quarto').process()

    # Quarto's cell options, which Quarto would apply: include, echo, output, code-fold
    dflt_opts = fm.get('execute') if isinstance(fm.get('execute'), dict) else {}
    cells = []
    for c in nb2dict(nb)['cells']:
        c.pop('has_sd', None)
        c['source'] = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        c['metadata'].pop('iwm_src', None)
        if c['cell_type'] == 'raw' and _re_fm.match(c['source']): continue  # the frontmatter: the title block shows it
        if c['cell_type'] == 'markdown': c['source'] = fix_markdown(c['source'])
        if c['cell_type'] == 'code':
            opts, c['source'] = quarto_options(c['source'])
            opts = {**dflt_opts, **opts}
            if _false(opts.get('include', True)): continue
            if _false(opts.get('output', True)): c['outputs'] = []
            if _false(opts.get('echo', True)) or not c['source'].strip():
                c['metadata'].setdefault('transient', {})['remove_source'] = True
            if opts.get('code-fold') not in (None, False, 'false'):
                c['metadata']['iwm_fold'] = 'show' if opts['code-fold'] == 'show' else 'hide'
                c['metadata']['iwm_summary'] = str(opts.get('code-summary') or 'Code')
            for o in c['outputs']:
                if opts.get('output') == 'asis' and o.get('output_type') == 'stream':
                    o.clear(); o.update({'output_type': 'display_data', 'metadata': {},
                                         'data': {'text/markdown': ''.join(o.get('text', ''))}})
                md = o.get('data', {}).get('text/markdown')
                if md is not None: o['data']['text/markdown'] = fix_markdown(''.join(md) if isinstance(md, list) else md)
            if c['metadata'].get('transient', {}).get('remove_source') and not c['outputs']: continue
        cells.append(c)
    d = nb2dict(nb)
    d['cells'] = cells
    for i, c in enumerate(cells): c.setdefault('id', f'iwm-docs-{i}')
    nbf = nbformat.reads(json.dumps(d), as_version=4)
    nbf.metadata['title'] = job['title'] if job['out'] == 'index.html' else f"{job['title']} – {job['site_title']}"
    (CACHE / 'executed' / job['src']).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbf, str(CACHE / 'executed' / job['src']))

    page = export_html(nbf, job)
    dest = Path(job['dest']) / job['out']
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(page, encoding='utf-8')


def export_html(nbf, job):
    "nbconvert's lab template with the site's sidebar, title block, local JavaScript and fixed links"
    import jinja2
    from nbconvert import HTMLExporter
    depth = len(PurePosixPath(job['out']).parts) - 1
    root = '../' * depth
    ex = HTMLExporter(template_name='lab', extra_loaders=[jinja2.DictLoader({'iwm_docs.html.j2': TEMPLATE})],
                      template_file='iwm_docs.html.j2', exclude_input_prompt=True, exclude_output_prompt=True,
                      require_js_url=f'{root}_static/require.js', mathjax_url=f'{root}_static/mathjax/tex-chtml.js',
                      widget_renderer_url=f'{root}_static/html-manager/embed-amd.js')
    site = job['site']
    page_info = next(p for p in site['pages'] if p['src'] == job['src'])
    res = {'iwm': {'root': root, 'title': job['title'], 'description': job['description'],
                   'nav': nav_html(site, page_info, root)}}
    body, _ = ex.from_notebook_node(nbf, resources=res)
    return _rewrite_links(_fix_heading_ids(body), job)


def _render(job):
    "Worker: (src, seconds, error message or None)"
    t0 = time.time()
    try: build_page(job); err = None
    except DocsError as e: err = str(e)
    except Exception as e:
        tb = traceback.extract_tb(e.__traceback__)[-1]
        err = f"nbs/{job['src']}: {type(e).__name__}: {' '.join(str(e).split())[:200]} (at {Path(tb.filename).name}:{tb.lineno})"
    return job['src'], time.time() - t0, err


# ---------------------------------------------------------------- the link checker
class _Refs:
    def __init__(self, text):
        from bs4 import BeautifulSoup
        soup = BeautifulSoup(text, 'html.parser')
        self.ids = {t['id'] for t in soup.find_all(id=True)} | {t['name'] for t in soup.find_all('a', attrs={'name': True})}
        self.refs = [(t.name, a, t[a]) for t in soup.find_all(True) for a in ('href', 'src') if t.has_attr(a)]


def check_links(out, pages=None, anchors=True):
    "Relative href/src on `pages` (default: every .html under `out`) that do not resolve: [(page, url, why)]"
    out = Path(out)
    pages = [out / p for p in pages] if pages is not None else sorted(out.rglob('*.html'))
    cache, broken = {}, []
    def refs(f):
        if f not in cache: cache[f] = _Refs(f.read_text(encoding='utf-8', errors='replace'))
        return cache[f]
    for page in pages:
        if not page.exists(): broken.append((str(page.relative_to(out)), '', 'page missing')); continue
        for tag, attr, url in refs(page).refs:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith(('data:', 'mailto:', 'javascript:')): continue
            if url.startswith('/'): broken.append((str(page.relative_to(out)), url, 'absolute path')); continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
            if not target.is_relative_to(out.resolve()): broken.append((str(page.relative_to(out)), url, 'outside the site')); continue
            if target.is_dir(): target = target / 'index.html'
            if not target.exists(): broken.append((str(page.relative_to(out)), url, 'no such file')); continue
            if anchors and parts.fragment and target.suffix == '.html' and unquote(parts.fragment) not in refs(target).ids:
                broken.append((str(page.relative_to(out)), url, 'no such anchor'))
    return broken


# ---------------------------------------------------------------- the build
def _select(pages, only):
    if not only: return pages
    res = []
    for name in only:
        hit = [p for p in pages if name in (p['src'], p['out'], PurePosixPath(p['src']).stem, PurePosixPath(p['src']).name,
                                             PurePosixPath(p['out']).stem)]
        if not hit: raise DocsError(f"--only {name}: not a page of nbs/sidebar.yml ({', '.join(p['src'] for p in pages)})")
        res += [p for p in hit if p not in res]
    return res


def build(out='_docs', only=None, exec_mode='all', jobs=2, nbs=NBS, execute=None):
    "Render the site into `out`; returns the pages built. Raises DocsError naming what failed."
    from nbdev.config import get_config
    t0 = time.time()
    out = (Path.cwd() / out).resolve()
    site = read_site(nbs)
    pages = _select(site['pages'], only)
    unlisted = [p['src'] for p in site['pages'] if not p['listed']]
    if unlisted: print(f"note: not in nbs/sidebar.yml, rendered without a sidebar entry: {', '.join(unlisted)}")

    if out.exists() and not only:
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise DocsError(f'{out} exists and was not written by tools/docs.py: not emptying it')
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text('written by tools/docs.py\n')
    vendor_static(out)
    if (Path(nbs) / 'images').exists(): shutil.copytree(Path(nbs) / 'images', out / 'images', dirs_exist_ok=True)

    cfg = get_config(nbs)
    flags = cfg.get('tst_flags', '')
    flags = flags.split() if isinstance(flags, str) else list(flags)
    threads = str(max(1, (os.cpu_count() or 1) // max(1, min(jobs, len(pages)))))
    pypath = os.pathsep.join(p for p in (str(ROOT), os.environ.get('PYTHONPATH', '')) if p)  # nbdev-test's basepath
    timings_f = CACHE / 'timings.json'
    timings = json.loads(timings_f.read_text()) if timings_f.exists() else {}
    common = {'dest': str(out), 'site': site, 'site_title': site['title'], 'site_urls': site['site_urls'],
              'src2out': {p['src']: p['out'] for p in site['pages']}, 'skip_flags': flags, 'exec': exec_mode,
              'timeout': int(cfg.get('cell_timeout', 600) or 600),
              'env': {'OMP_NUM_THREADS': threads, 'MKL_NUM_THREADS': threads, 'PYTHONPATH': pypath}}
    # a notebook beside a `.notest` file is not run by nbdev-test: here only what nbdev's docs build runs
    run_all = {p['src'] for p in _select(site['pages'], execute)} if execute else set()  # --execute: these run every cell
    jobs_ = [{**common, **p, **({'exec': 'all'} if p['src'] in run_all else {}),
              **({'exec': 'docs'} if (Path(nbs) / p['src']).parent.joinpath('.notest').exists() else {})}
             for p in pages]
    # longest first, so that the workers end together: last build's times, else the biggest notebooks first
    order = sorted(jobs_, key=lambda j: (j['src'] in timings, -timings.get(j['src'], (Path(nbs) / j['src']).stat().st_size)))
    errors = []
    print(f"rendering {len(pages)} notebooks into {out} ({exec_mode} cells run, {jobs} at a time)", flush=True)
    import multiprocessing as mp
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=mp.get_context('spawn')) as pool:
        futs = [pool.submit(_render, j) for j in order]
        for f in as_completed(futs):
            src, secs, err = f.result()
            print(f"  {src:32s} {secs:6.1f} s  {'FAILED' if err else 'ok'}", flush=True)
            if err: errors.append(err)
            else: timings[src] = round(secs, 1)
    CACHE.mkdir(parents=True, exist_ok=True)
    timings_f.write_text(json.dumps(timings, indent=1, sort_keys=True))
    if errors: raise DocsError('\n'.join(errors))

    built = [p['out'] for p in pages]
    broken = check_links(out, built if only else None)
    if only:  # pages not built this time may be linked to
        broken = [b for b in broken if not (b[2] == 'no such file' and
                  normpath(str(PurePosixPath(b[0]).parent / urlsplit(b[1]).path)) in common['src2out'].values())]
    anchors = [b for b in broken if b[2] == 'no such anchor']
    broken = [b for b in broken if b[2] != 'no such anchor']
    if broken:
        raise DocsError(f'{len(broken)} broken links:\n' + '\n'.join(f'  {p}: {u} ({why})' for p, u, why in broken))
    n = len(built) if only else len(list(out.rglob('*.html')))
    print(f"links: every relative link on {n} pages resolves", flush=True)
    if anchors:  # nbdev links `Class.method` to an anchor only when the method has its own show_doc
        print(f"warning: {len(anchors)} links to an anchor no page has:\n" +
              '\n'.join(f'  {p}: {u}' for p, u, _ in anchors), flush=True)
    print(f"docs: {len(pages)} pages in {out} in {time.time() - t0:.0f} s")
    return pages


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default='_docs', help='output folder (default: _docs)')
    ap.add_argument('--no-exec', action='store_true',
                    help="run only what nbdev's docs build runs (imports, exported code, show_doc), not every cell")
    ap.add_argument('--execute', nargs='+', metavar='NAME',
                    help='with --no-exec: run every cell of these notebooks all the same (e.g. the pages whose widgets a test opens)')
    ap.add_argument('--only', nargs='+', metavar='NAME', help='render only these notebooks (name, stem or page name)')
    ap.add_argument('--jobs', type=int, default=2, help='notebooks executed at a time (default: 2)')
    a = ap.parse_args(argv)
    try: build(a.out, a.only, 'docs' if a.no_exec else 'all', a.jobs, execute=a.execute)
    except DocsError as e:
        print(f'docs: FAILED\n{e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__': sys.exit(main())
