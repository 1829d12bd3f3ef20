"""Benchmark: seconds per action of CEM in the live first-person game, paused while the planner thinks vs left running.

In one run, with one trained run's world model and planner settings, on test goals `k` steps ahead drawn as `iwm-plan`
draws them: each goal is pursued by CEM twice in one live Minetest game, once with the game paused (`SIGSTOP`) between
actions, as planning runs it (`MinetestGame(pauses=True)`), and once with the game left running while the planner thinks
(the baseline: Mesa's software GL goes on drawing frames on the same cores). Which of the two goes first alternates from
goal to goal. Prints seconds per action (the planner's choice of each action, as `iwm-plan` times it) of both, their
ratio, and arrival beside. Goal (issue 21): at most 1 s per action on 2 CPU cores.

    python bench/plan_live.py --run runs/reference-minetest/model --data data/reference-minetest/test [--goals 40] [--k 4] [--json OUT]
"""
import argparse, json, time
from pathlib import Path
import numpy as np
import torch
from iwm.data import find_clips
from iwm.minetest import MinetestGame
from iwm.planning import CEMPlanner, PlanConfig, goals, pursue, wilson
from iwm.train import load_run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', required=True, help='a trained first-person run folder')
    ap.add_argument('--planning', default=None, help="a planning.json whose planner settings and stop threshold to use "
                    "(default: RUN/eval/planning.json or, for a reproduce run's model, the one beside it)")
    ap.add_argument('--data', required=True, help='first-person clips with ground truth to draw the goals from (test clips)')
    ap.add_argument('--goals', type=int, default=40)
    ap.add_argument('--k', type=int, default=4)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', default=None, help='also write the table here (the results page reads nbs/results/plan_live.json)')
    a = ap.parse_args()
    world = load_run(a.run, 'cpu')
    plan = next((p for p in ([a.planning] if a.planning else [Path(a.run) / 'eval/planning.json', Path(a.run).parent / 'planning.json'])
                 if Path(p).exists()), None)
    res = json.loads(Path(plan).read_text()) if plan else {}
    c = PlanConfig(**{**res.get('config', {}), 'actions': tuple(res.get('config', {}).get('actions', MinetestGame.names))})
    stop = res.get('stop', {}).get(str(a.k), {}).get('threshold')
    gs = goals(find_clips(a.data), a.k, a.goals, context=world.cfg.context, seed=a.seed)
    if not gs: raise SystemExit(f"plan_live: no goals {a.k} steps ahead in {a.data}")
    planner = CEMPlanner(world, c, game=MinetestGame)
    print(f"device: CPU, {torch.get_num_threads()} threads; world model {world.cfg.name} of {a.run}; CEM {c.samples} samples x horizon "
          f"{c.horizon} x {c.iters} iterations over {len(c.actions)} actions; {len(gs)} goals k={a.k} of {a.data}; "
          f"stop below {stop if stop is None else round(stop, 4)} ({plan or 'no planning.json: default settings'})")
    out = {True: [], False: []}
    t0 = time.time()
    with MinetestGame() as game:
        for i, g in enumerate(gs):
            for pauses in ((True, False) if i % 2 == 0 else (False, True)):
                game.pauses = pauses
                try: rec = pursue(g, 'cem', world, planner, seed=a.seed + i, stop=stop, start=(game, game.start(g.clip, g.t)))[0]
                except RuntimeError as e: print(f"goal {i} ({Path(g.clip).name} frame {g.t}) left out: {e}"); game.close(); break
                out[pauses].append(rec)
    res = dict(run=a.run, data=a.data, k=a.k, goals=len(gs), stop=stop, machine=f"CPU, {torch.get_num_threads()} threads", rows={})
    print(f"{'game while planning':<22}{'episodes':>9}{'actions':>9}{'s/action':>10}{'arrived [95% CI]':>20}")
    for pauses, name in ((False, 'running (baseline)'), (True, 'paused')):
        r = out[pauses]
        s = sum(x['plan_s'] * x['steps'] for x in r) / max(1, sum(x['steps'] for x in r))  # per action, over every episode's actions
        lo, hi = wilson(sum(x['arrived'] for x in r), len(r))
        print(f"{name:<22}{len(r):>9}{sum(x['steps'] for x in r):>9}{s:>10.3f}{np.mean([x['arrived'] for x in r]):>11.0%} [{lo:.0%}-{hi:.0%}]")
        res['rows'][name] = dict(episodes=len(r), actions=sum(x['steps'] for x in r), s_per_action=round(s, 4),
                                 arrived=round(float(np.mean([x['arrived'] for x in r])), 4), arrived_ci=[round(lo, 4), round(hi, 4)])
    res['ratio'], res['seconds'] = round(res['rows']['running (baseline)']['s_per_action'] / res['rows']['paused']['s_per_action'], 3), round(time.time() - t0)
    print(f"ratio running / paused: {res['ratio']:.2f}x; {res['seconds']} s in all")
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1) + '\n')


if __name__ == '__main__':
    main()
