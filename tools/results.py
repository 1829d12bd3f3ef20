"""Write the reference run's entry of `nbs/results/reference.json` from the run's own files.

    python tools/results.py [--run runs/reference] [--data data/reference] [--commit SHA] [--machine '2 CPU cores']
    python tools/results.py --run runs/reference-minetest --data data/reference-minetest --key reference_minetest \\
        --wall 'world model 60 min, decoder 20 min, evaluation and planning 1 h 40 min; resumed across sessions' \\
        --also cem_to_budget=runs/reference-minetest-budget

Reads RUN/summary.json, RUN/metrics.json (evaluation), RUN/planning.json and RUN/model/metrics.jsonl, counts the
clips and frames of DATA/{train,held,val,test}, and replaces the entry KEY (`reference`, Crafter's, by default) (keeping the benchmark figures,
`plan_time_s` and `imagine_cost`, which come from bench/ and say their own commit). The results page and the front
page draw every number from that file.
"""
import argparse, json, re, subprocess
import numpy as np
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE = ROOT / 'nbs' / 'results' / 'reference.json'


def clips(folder: Path) -> dict:
    "Clip count, frames (action lines) and the episode seeds of a folder of recorded clips."
    import numpy as np
    names = sorted(folder.glob('*.jsonl'))
    truths = [np.load(p.with_suffix('.truth.npz')) for p in names]
    seeds = [int(z['seed']) for z in truths]
    out = dict(clips=len(names), frames=sum(sum(1 for _ in open(p)) for p in names), seeds=f"{min(seeds)}..{max(seeds)}" if seeds else '-')
    if truths and all('grabbed_us' in z.files for z in truths):  # a live game's clips: the seconds from each clip's first captured frame to its last
        out['capture_s'] = round(sum(float(z['grabbed_us'][-1] - z['grabbed_us'][0]) / 1e6 for z in truths), 1)
    return out


def r(x, n=3): return None if x is None else round(float(x), n)


def clean(v, n=4):
    "Floats rounded to `n` places, NaN as None, through lists and dicts."
    if isinstance(v, float): return None if v != v else round(v, n)
    if isinstance(v, list): return [clean(x, n) for x in v]
    if isinstance(v, dict): return {a: clean(b, n) for a, b in v.items()}
    return v


def world_model(m: dict) -> dict:
    "The evaluation's numbers at h=1, 4, 8, with what they rest on."
    at = lambda key, h: r(m['ratios'][key][h - 1])
    hs = (1, 4, 8)
    return dict(
        windows=m['windows'], clips=len(m['clips']), horizons=len(m['horizons']), moving_share=r(m['moving_share'], 3),
        kind_share=clean(m.get('kind_share'), 3),
        l1_over_copy_last={s: {h: at(f'model/copy_last_{s}', h) for h in hs} for s in ('turning', 'moving', 'world', 'all', 'still') if f'model/copy_last_{s}' in m['ratios']},
        shuffled_over_true={h: at('shuffled/model_all', h) for h in hs},
        shuffled_future_over_true={h: at('shuffled_future/model_all', h) for h in hs},
        zero_over_true=({h: at('zero/model_all', h) for h in hs} if 'zero/model_all' in m['ratios'] else  # older metrics: from the L1 errors
                        {h: r(m['l1']['zero']['all'][h - 1] / m['l1']['model']['all'][h - 1]) for h in hs} if 'zero' in m.get('l1', {}) else None),
        retrieval_mrr=clean(m['retrieval_mrr'], 3),
        probes=clean(m['probes'], 3),
        encoder_trains=m.get('encoder_trains'))


def decoding(summary: dict, m: dict) -> dict:
    rec, dec = summary['decoder']['reconstruction'], m.get('decoded', {})
    out = dict(windows=summary['decoder']['windows'], psnr={k: r(v['psnr'], 2) for k, v in rec.items()},
               ssim={k: r(v['ssim']) for k, v in rec.items()})
    for k in ('decoded_real', 'imagined', 'copy_first'):
        if k in dec: out[f'{k}_psnr'] = {h: r(dec[k]['psnr'][h - 1], 2) for h in (1, 4, 8) if h <= len(dec[k]['psnr'])}
    out['eval_windows'] = dec.get('windows')
    return out


def plain(skip: dict) -> dict:
    "A skipped goal's record with numbers that older runs wrote as `np.float64(x)` written as x (2 decimals)."
    return {**skip, 'why': re.sub(r'np\.float64\(([-+\d.e]+)\)', lambda m: f'{float(m[1]):.2f}', skip.get('why', ''))}


def ends(recs: list[dict], nodes: float = 1.0, degrees: float = 15.0) -> dict:
    "First person, per k and method: the share of records ending within `nodes` of the goal's position, and within `degrees` of its yaw (arrival needs both); the share of goals whose start is within `nodes` already; the median distance walked."
    from iwm.minetest import MinetestGame as G
    out = {}
    for x in recs:
        if 'yaw' not in x['goal']: return {}  # Crafter: a grid state, nothing to split
        d = out.setdefault(str(x['k']), {}).setdefault(x['method'], dict(near=[], facing=[], start_near=[], walked=[]))
        d['near'].append(G.near(x['final'], x['goal'], nodes)); d['facing'].append(G.facing(x['final'], x['goal'], degrees))
        d['start_near'].append(G.near(x['start'], x['goal'], nodes)); d['walked'].append(float(np.linalg.norm(np.subtract(x['final']['pos'], x['start']['pos']))))
    return {k: {m: dict(records=len(d['near']), near=r(np.mean(d['near'])), facing=r(np.mean(d['facing'])), start_near=r(np.mean(d['start_near'])),
                        walked_median=r(np.median(d['walked']))) for m, d in ms.items()} for k, ms in out.items()}


def planning(p: dict) -> dict:
    "Per k and method: arrival and passing through with intervals, by distance; the stop threshold; cost checks; in first person, what arrival missed (`ends`)."
    keep = ('goals', 'arrived', 'arrived_ci', 'passed', 'passed_ci', 'rollouts', 'steps', 'plan_s_per_action', 'by_distance')
    return dict(split=p['split'], rollouts=p['rollouts'], config=p['config'], val_clips=len(p['clips']['val']),
                test_clips=len(p['clips']['test']), stop=clean(p['stop']), left_out=p.get('left_out'), skipped=[plain(s) for s in p.get('skipped', [])],
                k={k: {meth: clean({q: d[q] for q in keep if q in d}) for meth, d in ms.items()} for k, ms in p['k'].items()},
                cost_rank=clean(p['cost_rank']), cost_check=clean(p['cost_check'])) | ({'ends': e} if (e := ends(p.get('records', []))) else {})


def with_also(pl: dict, also: list[str]) -> dict:
    "`pl` (from `planning`) with the CEM rows of other planning runs (`NAME=FOLDER`) as methods NAME, their settings under `also`."
    for spec in also:
        name, _, folder = spec.partition('=')
        q = planning(json.loads((Path(folder) / 'planning.json').read_text()))
        for k, ms in q['k'].items(): pl['k'].setdefault(k, {})[name] = ms['cem']
        for k, ms in q.get('ends', {}).items(): pl.setdefault('ends', {}).setdefault(k, {})[name] = ms['cem']
        pl.setdefault('also', {})[name] = dict(folder=folder, config=q['config'], stop=q['stop'], skipped=q['skipped'], cost_rank=q['cost_rank'])
    return pl


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', default='runs/reference'); ap.add_argument('--data', default='data/reference')
    ap.add_argument('--commit', default=None); ap.add_argument('--machine', default='2 CPU cores')
    ap.add_argument('--wall', default=None, help="the run's wall-clock time in words, where it was resumed (summary.json times only the last start)")
    ap.add_argument('--also', action='append', default=[], metavar='NAME=FOLDER',
                    help="CEM of another planning run of the same model on the same goals (FOLDER/planning.json), added as method NAME with its settings")
    ap.add_argument('--key', default='reference', help="the entry to write: reference (Crafter) or reference_minetest")
    a = ap.parse_args()
    run, data = Path(a.run), Path(a.data)
    s, m, p = (json.loads((run / f).read_text()) for f in ('summary.json', 'metrics.json', 'planning.json'))
    rows = [json.loads(l) for l in (run / 'model' / 'metrics.jsonl').read_text().splitlines() if l.strip()]
    commit = a.commit or subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    res = json.loads(FILE.read_text())
    old = res.get(a.key, {})
    notes = dict(crafter='Crafter episodes of at most 500 steps; an episode ends when the player dies.',
                 minetest='Minetest worlds of one map seed each, played by the exploring player; every clip runs its full length.')
    game = s.get('game', 'crafter')
    h, mi = divmod(round(s['seconds'] / 60), 60)
    res[a.key] = dict(
        what='make reproduce: the reference run' + ('' if game == 'crafter' else f' (GAME={game})'), game=game, img_size=s.get('img_size', 64), commit=commit, machine=a.machine, wall=a.wall or f'{h} h {mi} min',
        data={k: clips(data / k) for k in ('train', 'held', 'val', 'test') if (data / k).exists()} | dict(
            note=notes[game] + ' train: seeds 0..; '
                 'held: seeds 10000.. (evaluation windows, decoded frames); val: seeds 20000.. (validation goals only); '
                 'test: seeds 30000.. (test goals only)'),
        model=dict(config=s['config'], encoder='fixed at its random initialisation (encoder_lr=0)', minutes=s['minutes']['world'],
                   steps=s['train_steps'], best_step=s.get('best_step', s['train_steps']), batch=32, last_loss=r(next((x['loss'] for x in reversed(rows) if 'loss' in x), None), 4)),
        decoder=dict(minutes=s['minutes']['decoder'], steps=s['decoder_steps'], patch=8),
        world_model=world_model(m), decoding=decoding(s, m), planning=with_also(planning(p), a.also),
        plan_time_s={'commit': old.get('commit', '-')} | old.get('plan_time_s', {}), imagine_cost=old.get('imagine_cost'))
    if 'recording_s' in s: res[a.key]['recording_s'] = s['recording_s']
    FILE.write_text(json.dumps(res, indent=1) + '\n')
    print(json.dumps(res[a.key], indent=1)[:6000])


if __name__ == '__main__':
    main()
