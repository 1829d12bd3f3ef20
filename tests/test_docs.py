"""The docs site that tools/docs.py renders from the notebooks' stored outputs, without Quarto: every notebook of
nbs/sidebar.yml has its page, the links resolve, nothing is executed, and headless Chromium shows the index (with the
action names its cell prints), the quickstart's plots and rollout pictures, and the viewer's widgets, with no request
outside the site.

`make test` renders the site once into _docs/ and sets IWM_DOCS=_docs; without IWM_DOCS it is rendered here, into a
temporary folder (under a minute: nothing runs). The pages that show outputs are tested only once their notebook has
stored outputs (`make nbs`); until then those tests skip and say so. Screenshots go to the test's temporary folder;
their paths are printed (pytest -s shows them)."""
import html, http.server, importlib.util, json, os, re, shutil, subprocess, sys, threading
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(900)


def _load_tool():
    spec = importlib.util.spec_from_file_location('iwm_docs_tool', ROOT / 'tools' / 'docs.py')
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


docs = _load_tool()


@pytest.fixture(scope='session')
def site(tmp_path_factory):
    "The rendered site: IWM_DOCS when set (make test), else rendered now into a temporary folder"
    built = os.environ.get('IWM_DOCS')
    if built:
        out = Path(built) if Path(built).is_absolute() else ROOT / built
        assert (out / 'index.html').exists(), f'IWM_DOCS={built}: no index.html there (run `make docs` first)'
        return out
    out = tmp_path_factory.mktemp('site') / '_docs'
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'docs.py'), '--out', str(out)], cwd=ROOT, capture_output=True, text=True)
    print(r.stdout)
    assert r.returncode == 0, f'tools/docs.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    return out


@pytest.fixture(scope='session')
def nbs(site):
    "The notebooks the site was rendered from (tools/docs.py writes their folder into the site's marker file)"
    return Path(json.loads((site / docs.MARKER).read_text())['nbs'])


@pytest.fixture(scope='session')
def site_info(nbs): return docs.read_site(nbs)


def page_of(site_info, src):
    p = next((p for p in site_info['pages'] if p['src'] == src), None)
    assert p, f'nbs/sidebar.yml does not list {src}'
    return p


def needs_outputs(nbs, src):
    "Skip unless the notebook has stored outputs: from then on, its page must show them"
    nb = json.loads((nbs / src).read_text())
    if not any(c.get('outputs') for c in nb['cells']):
        pytest.skip(f'{nbs.name}/{src} has no stored outputs yet (`make nbs` runs the notebooks and stores them)')


@pytest.fixture(scope='session')
def server(site):
    "The site over http on 127.0.0.1, as GitHub Pages serves it, and two pages of the test's own (SHOT, PROBE)"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
        def send_error(self, code, *a, **kw):
            if self.path != '/favicon.ico': MISSES.append(f'{code} {self.path}')
            return super().send_error(code, *a, **kw)
        def do_GET(self):
            own = {'/__shot__?': SHOT, '/__probe__?': PROBE}
            body = next((v for k, v in own.items() if self.path.startswith(k)), None)
            if body is None: return super().do_GET()
            self.send_response(200)
            self.send_header('Content-Type', 'text/html; charset=utf-8')
            self.send_header('Content-Length', str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), partial(Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()


MISSES = []  # requests the site could not answer (a font or script the pages expect where it is not)
SHOT = """<!doctype html><html><body style="margin:0">
<iframe id="f" style="border:0; width:100vw; height:100vh"></iframe>
<script>
const q = new URLSearchParams(location.search), f = document.getElementById('f');
function go(n) {
  const el = f.contentDocument && f.contentDocument.querySelector(q.get('sel'));
  if (!el) { if (n > 0) setTimeout(() => go(n - 1), 250); return; }
  for (const t of [0, 1000, 3000]) setTimeout(() => el.scrollIntoView({block: 'center'}), t);  // after images load
}
f.addEventListener('load', () => setTimeout(() => go(40), 500));
f.src = q.get('page');
</script></body></html>"""
# The page in a frame; once loaded (and the widget manager had time), what the browser made of it goes into <pre>:
# every <img> with its natural size (0 x 0: the browser could not decode it) and the text of every output area
PROBE = """<!doctype html><html><body><pre id="probe"></pre>
<iframe id="f" style="border:0; width:1280px; height:1000px"></iframe>
<script>
const q = new URLSearchParams(location.search), f = document.getElementById('f');
f.addEventListener('load', () => setTimeout(() => {
  const d = f.contentDocument;
  const imgs = [...d.querySelectorAll('img')].map(i => ({src: i.getAttribute('src').slice(0, 40), w: i.naturalWidth, h: i.naturalHeight}));
  const outputs = [...d.querySelectorAll('.jp-OutputArea-output')].map(o => o.textContent);
  document.getElementById('probe').textContent = JSON.stringify({imgs, outputs, html: d.body.innerHTML.length});
}, 5000));
f.src = q.get('page');
</script></body></html>"""


def chromium():
    for c in (os.environ.get('CHROMIUM'), '/usr/bin/chromium', shutil.which('chromium'),
              shutil.which('chromium-browser'), shutil.which('google-chrome')):
        if c and Path(c).exists(): return c
    pytest.fail('no Chromium: `make chromium` installs it (Debian: apt-get install chromium), or set CHROMIUM')


def browse(url, tmp, *args):
    """Run headless Chromium on `url` with `args`: (stdout, the URLs the page requested). Every host but 127.0.0.1
    resolves to nothing, so what renders cannot have come from the network."""
    tmp.mkdir(parents=True, exist_ok=True)
    netlog = tmp / 'net.json'
    cmd = [chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars',
           f'--user-data-dir={tmp / "profile"}', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
           f'--log-net-log={netlog}', '--virtual-time-budget=30000', *args, url]
    MISSES.clear()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f'chromium failed ({r.returncode}): {r.stderr[-2000:]}'
    assert not MISSES, f'{url} asked the site for what it does not have: {MISSES}'
    return r.stdout, page_requests(netlog, url)


def probe(server, page, tmp):
    "What Chromium shows on `page`: {'imgs': [{'src', 'w', 'h'}], 'outputs': [text of each output area]}"
    dom, _ = browse(f'{server}/__probe__?' + urlencode({'page': '/' + page}), tmp, '--dump-dom')
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert m and m[1], f'{page}: the probe page found nothing (did the page load?)'
    return json.loads(html.unescape(m[1]))


def page_requests(netlog, url):
    "The URLs of the requests that the page at `url` made (not Chromium's own background ones)"
    origin = re.match(r'^[a-z]+://[^/]+', url).group(0)
    j = json.loads(netlog.read_text())
    start = j['constants']['logEventTypes']['URL_REQUEST_START_JOB']
    return [e['params']['url'] for e in j['events'] if e['type'] == start and e.get('params', {}).get('initiator') == origin]


def assert_only_local(requests, server):
    assert requests, 'the net log shows no request by the page: it did not load its scripts'
    external = [u for u in requests if not u.startswith(server + '/') and not u.startswith(('data:', 'blob:'))]
    assert not external, f'the page requested outside the site: {external}'


def assert_not_blank(png):
    from PIL import Image
    assert png.exists(), f'no screenshot at {png}'
    colors = Image.open(png).convert('RGB').getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 20, f'{png} is (nearly) one colour'
    print(f'\nscreenshot: {png}')


def test_every_sidebar_notebook_has_its_page(site, site_info):
    assert site_info['pages'], 'nbs/sidebar.yml lists no notebook'
    missing = [p['src'] for p in site_info['pages'] if not (site / p['out']).exists()]
    assert not missing, f'no page for {missing}'
    for p in site_info['pages']:
        text = (site / p['out']).read_text()
        assert f'<h1 class="title">{html.escape(p["title"], quote=False)}</h1>' in text, f'{p["out"]}: no title block'
        assert 'id="iwm-sidebar"' in text, f'{p["out"]}: no sidebar'
    assert page_of(site_info, '00_actions.ipynb')['out'] == 'actions.html'  # page names as nbdev gives them
    assert page_of(site_info, 'tutorials/quickstart.ipynb')['out'] == 'tutorials/quickstart.html'


def test_index_links_resolve(site):
    broken = docs.check_links(site, ['index.html'])
    assert not broken, 'broken links on index.html:\n' + '\n'.join(map(str, broken))
    assert len(docs._Refs((site / 'index.html').read_text()).refs) > 20


def test_all_links_resolve(site):
    "Every page's relative links reach a file (anchors are warnings in the build: nbdev links `Class.method` to an\
    anchor that exists only when the method has its own show_doc)"
    broken = docs.check_links(site, anchors=False)
    assert not broken, f'{len(broken)} broken links:\n' + '\n'.join(map(str, broken[:50]))


def test_link_checker_finds_broken_links(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'images/ok.png').write_bytes(b'png')
    (tmp_path / 'other.html').write_text('<h2 id="there">x</h2>')
    (tmp_path / 'index.html').write_text(
        '<h1 id="top">t</h1><a href="other.html#there">ok</a><a href="#top">ok</a><img src="images/ok.png">'
        '<a href="https://example.org/x.html">external: not checked</a>'
        '<a href="gone.html">1</a><img src="images/gone.png"><a href="other.html#nowhere">2</a><a href="#nowhere">3</a>'
        '<script src="../outside.js"></script>')
    broken = docs.check_links(tmp_path, ['index.html'])
    assert [(u, why) for _, u, why in broken] == [
        ('gone.html', 'no such file'), ('images/gone.png', 'no such file'), ('other.html#nowhere', 'no such anchor'),
        ('#nowhere', 'no such anchor'), ('../outside.js', 'outside the site')]


def test_a_missing_notebook_fails_clearly(tmp_path):
    (tmp_path / 'sidebar.yml').write_text('website:\n  sidebar:\n    contents:\n      - section: Viewer\n'
                                          '        contents:\n          - 50_viewer.ipynb\n')
    with pytest.raises(docs.DocsError, match=r'sidebar.yml lists 50_viewer.ipynb, but nbs/50_viewer.ipynb does not exist'):
        docs.read_site(tmp_path)


def test_stored_outputs_are_shown_and_nothing_runs(tmp_path):
    "A cell that would fail if run shows its stored output; Quarto's cell options (echo, output, include) apply"
    (tmp_path / 'pyproject.toml').write_text('[project]\nname = "tiny"\n[tool.nbdev]\nlib_path = "tiny"\nnbs_path = "nbs"\n')
    nbs = tmp_path / 'nbs'
    nbs.mkdir()
    (nbs / 'sidebar.yml').write_text('website:\n  sidebar:\n    contents:\n      - index.ipynb\n')
    code = lambda src, *outs: {'cell_type': 'code', 'execution_count': None, 'metadata': {}, 'source': src,
                               'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': o} for o in outs]}
    cells = [{'cell_type': 'markdown', 'metadata': {}, 'source': '# Tiny\n\n> One page.'},
             code("raise SystemExit('this cell ran')", 'stored output 42\n'),
             code("#| echo: false\nprint('hidden code')", 'shown without its code\n'),
             code("#| output: false\nprint('x')", 'not shown\n'), code("#| include: false\n'left out'")]
    (nbs / 'index.ipynb').write_text(json.dumps({'cells': cells, 'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}},
                                                 'nbformat': 4, 'nbformat_minor': 5}))
    docs.build(tmp_path / '_docs', nbs, jobs=1)
    page = (tmp_path / '_docs/index.html').read_text()
    assert '<h1 class="title">Tiny</h1>' in page and 'stored output 42' in page and 'this cell ran' in page
    assert 'shown without its code' in page and 'hidden code' not in page
    assert 'not shown' not in page and 'left out' not in page


def test_pages_load_nothing_from_outside(site, site_info):
    "Scripts, styles and images are the site's own: no CDN (nbconvert's defaults would load unpkg and cdnjs)"
    for p in site_info['pages']:
        text = (site / p['out']).read_text()
        refs = docs._Refs(text).refs
        ext = [u for tag, attr, u in refs if tag in ('script', 'link', 'img', 'iframe', 'video', 'audio', 'source', 'embed')
               and re.match(r'^([a-z]+:)?//', u)]
        assert not ext, f'{p["out"]} loads {ext}'
        for cdn in ('unpkg.com', 'cdnjs.cloudflare.com', 'cdn.jsdelivr.net'):
            assert cdn not in re.sub(r'<script type="application/vnd.jupyter.widget-state\+json">.*?</script>', '', text, flags=re.S), \
                f'{p["out"]} mentions {cdn}'
    for f in ('_static/require.js', '_static/html-manager/embed-amd.js', '_static/mathjax/tex-chtml.js'):
        assert (site / f).stat().st_size > 10_000, f


def test_index_in_chromium(site_info, server, tmp_path):
    index = site_info['pages'][0]
    assert index['out'] == 'index.html'
    dom, requests = browse(f'{server}/index.html', tmp_path / 'dom', '--dump-dom')
    assert f'<h1 class="title">{html.escape(index["title"], quote=False)}</h1>' in dom
    if index['description']: assert html.escape(index['description'], quote=False) in dom
    for p in site_info['pages']:  # the sidebar links every page
        assert f'href="{p["out"]}"' in dom, f'the sidebar has no link to {p["out"]}'
    assert dom.count('<h2') >= 2, 'the index shows no sections'
    assert_only_local(requests, server)
    png = tmp_path / 'index.png'
    browse(f'{server}/index.html', tmp_path / 'shot', f'--screenshot={png}', '--window-size=1280,1600')
    assert_not_blank(png)


def test_index_shows_the_action_names(nbs, server, tmp_path):
    "The index's cell that prints the action vector's column names shows them (in whatever output layout)"
    needs_outputs(nbs, 'index.ipynb')
    outs = probe(server, 'index.html', tmp_path)['outputs']
    assert any('camera_yaw' in o and 'forward' in o for o in outs), f'no output shows the action names: {outs}'


def test_quickstart_pictures_in_chromium(nbs, site_info, server, tmp_path):
    "The quickstart's stored plots (training curves, latent error) and rollout pictures render with a real size"
    qs = page_of(site_info, 'tutorials/quickstart.ipynb')
    needs_outputs(nbs, qs['src'])
    imgs = probe(server, qs['out'], tmp_path)['imgs']
    pngs = [i for i in imgs if i['src'].startswith('data:image/png')]
    broken = [i for i in pngs if not (i['w'] > 0 and i['h'] > 0)]
    assert not broken, f'{qs["out"]}: pictures the browser cannot show: {broken}'
    assert len(pngs) >= 4, f'{qs["out"]} shows {len(pngs)} stored pictures; the quickstart makes 4: two training curves, the latent error, the rollouts'
    png = tmp_path / 'quickstart.png'
    shot = f'{server}/__shot__?' + urlencode({'page': '/' + qs['out'], 'sel': 'img[src^="data:image/png"]'})
    browse(shot, tmp_path / 'shot', f'--screenshot={png}', '--window-size=1280,1000')
    assert_not_blank(png)


def test_viewer_widgets_in_chromium(site, nbs, site_info, server, tmp_path):
    viewer = page_of(site_info, '50_viewer.ipynb')
    needs_outputs(nbs, viewer['src'])
    static = (site / viewer['out']).read_text()
    assert '<script type="application/vnd.jupyter.widget-view+json">' in static, f'{viewer["out"]}: no widget output'
    assert '"ImageModel"' in static, f'{viewer["out"]}: no Image widget in the stored widget state'

    dom, requests = browse(f'{server}/{viewer["out"]}', tmp_path / 'dom', '--dump-dom')
    assert 'Error displaying widget' not in dom, 'the widget manager could not render a view'
    assert re.search(r'class="[^"]*jupyter-widgets[^"]*widget-image', dom), 'no rendered Image widget: the widget manager did not run'
    assert re.search(r'<img[^>]*src="blob:', dom), 'the Image widget rendered no <img>'
    assert re.search(r'class="[^"]*widget-(h|v)box', dom) and re.search(r'class="[^"]*widget-(int|float)?slider|widget-hslider', dom), \
        'no widget boxes or sliders in the DOM'
    assert_only_local(requests, server)
    png = tmp_path / 'viewer.png'  # the page scrolled to its first Image widget, once the widget manager has drawn it
    shot = f'{server}/__shot__?' + urlencode({'page': '/' + viewer['out'], 'sel': '.widget-image'})
    browse(shot, tmp_path / 'shot', f'--screenshot={png}', '--window-size=1280,1000')
    assert_not_blank(png)
