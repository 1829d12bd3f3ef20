"""Compare planner settings of one trained run on the same validation goals, in the live game.

    python tools/plan_variants.py --run runs/reference-minetest/model --val data/reference-minetest/val --ks 4 --goals 50 \\
        --row now= --row budget=to_budget=true --row budget_last=to_budget=true,cost=last --row greedy=method=greedy \\
        --out runs/plan-variants-minetest

Each `--row NAME=FIELD=VALUE[,FIELD=VALUE...]` sets fields of `PlanConfig` (the game's own actions unless `actions` is
set); `method=greedy` runs greedy instead of CEM; `game.SETTING=VALUE` sets the live game's (Minetest's `game.hold=0.15`:
seconds each action is held). Every row pursues the same goals of the validation clips (`goals`, the
same seed), each without stopping early, and is scored twice: never stopping (the whole budget of k + 2 actions), and
stopping at the threshold that arrives most often on these same goals (`pick_stop`, so that figure is the best a
threshold can do here, not a held-out result). Per-goal arrivals are kept, so rows can be compared goal by goal. Settings chosen here are reported on test goals elsewhere. Each row's
records go to OUT/NAME/val-k{k}.jsonl, so a stopped comparison goes on where it was; the table goes to OUT/variants.json.
"""
import argparse, json, sys
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import parse_row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', required=True, help='a trained run folder')
    ap.add_argument('--val', required=True, help='validation clips with ground truth (seeds never trained on)')
    ap.add_argument('--ks', default='4', help='steps ahead of the goals, comma-separated')
    ap.add_argument('--goals', type=int, default=50, help='validation goals per k')
    ap.add_argument('--row', action='append', required=True, help='NAME=FIELD=VALUE,...: PlanConfig fields, or method=greedy')
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args(argv)
    from iwm.data import find_clips
    from iwm.games import game_class, game_settings
    from iwm.planning import CEMPlanner, PlanConfig, goals, pick_stop, run_goals, stop_arrivals, wilson
    from iwm.train import load_run
    torch.set_num_threads(min(2, torch.get_num_threads()))
    world, clips = load_run(a.run, torch.device('cpu')), find_clips(a.val)
    if not clips: raise SystemExit(f"plan_variants: no clips in {a.val}")
    game = game_class(clips[0])
    rows, out = [], Path(a.out)
    for name, kw in map(parse_row, a.row):  # (name, method, PlanConfig fields, the game's settings)
        cfg = {f: v for f, v in kw.items() if f != 'method' and not f.startswith('game.')}
        cfg['actions'] = tuple(cfg['actions'].split('+')) if isinstance(cfg.get('actions'), str) else tuple(cfg.get('actions', game.actions))
        try: game_kw = game_settings(game, {f[5:]: v for f, v in kw.items() if f.startswith('game.')})
        except ValueError as e: raise SystemExit(f"plan_variants: {e}")
        rows.append((name, kw.get('method', 'cem'), cfg, game_kw))
    res = dict(run=a.run, val=a.val, goals=a.goals, seed=a.seed, rows={})
    for k in (int(k) for k in a.ks.split(',')):
        gs = goals(clips, k, a.goals, context=world.cfg.context, seed=a.seed)
        for name, method, cfg, game_kw in rows:
            skipped = []
            recs = run_goals(gs, (method,), world, CEMPlanner(world, PlanConfig(**cfg), game=game), None, 1, a.seed, True, f'{name} k={k}',
                             out / name / f'val-k{k}.jsonl', skipped, game_kw)
            st, n = pick_stop(recs), len(recs)
            never, best = [bool(x['arrived']) for x in recs], stop_arrivals(recs, st['threshold'])
            r = dict(config={**cfg, 'actions': list(cfg['actions']), 'method': method}, game=game_kw, goals=n, skipped=len(skipped),
                     never=st['never'], never_ci=wilson(sum(never), n), threshold=st['threshold'], best=st['arrived'], best_ci=wilson(sum(best), n),
                     plan_s=sum(x['plan_s'] for x in recs) / max(n, 1), episodes=[f"{Path(x['clip']).stem}@{x['t']}" for x in recs],
                     arrived_never=never, arrived_best=best)
            res['rows'][f'{name} k={k}'] = r
            out.mkdir(parents=True, exist_ok=True); (out / 'variants.json').write_text(json.dumps(res, indent=1))
            print(f"{name} k={k}: {r['never']:.0%} ({r['never_ci'][0]:.0%}-{r['never_ci'][1]:.0%}) of {n} never stopping; "
                  f"{r['best']:.0%} ({r['best_ci'][0]:.0%}-{r['best_ci'][1]:.0%}) at its best threshold {r['threshold']:.4g}; "
                  f"{r['skipped']} skipped; {r['plan_s']:.2f} s per action", flush=True)


if __name__ == '__main__': main()
