"""Train several world-model settings for the same wall-clock budget on the same clips and compare them on validation clips.

    python tools/compare.py --train data/reference-minetest/train --val data/reference-minetest/val --minutes 8 \\
        --row 64=img_size=64 --row 96=img_size=96 --row 128=img_size=128 --out runs/compare-sizes \\
        --json nbs/results/minetest_sizes.json
    python tools/compare.py --train data/reference/train --val data/reference/held --minutes 60 \\
        --run random=runs/reference/model --row sigreg=encoder_lr=1,target=online,sigreg_weight=0.1 \\
        --plan data/reference/test --plan-val data/reference/val --ks 4,8 --goals 200 --out runs/compare-encoders

Each `--row NAME=FIELD=VALUE[,FIELD=VALUE...]` is one `tiny` run with those model-config fields set (any field of
`WorldModelConfig`); every row trains with the same seed, batch and minutes on the same clips, one after another (never
two at once, so each has the machine to itself). Each is then evaluated on the validation clips, never on the held-out or
test clips the reported numbers come from: latent L1 / copy-last at h=1 by kind of step, shuffled / true at h=4, the
game's probes (from the model's target latents of the validation frames and from the predicted latents of t+1), the
effective rank of the target latents, and the seconds one CEM plan takes at the reference budget on this machine.
Rows already trained in OUT are evaluated again, not retrained; `--run NAME=RUN` adds a run trained elsewhere (the
reference run, say) as a row, evaluated alike. Every row also gets the effective rank of its target latents and their
mean frame-to-frame change on the evaluation clips (both comparable across encoders, unlike a latent ratio), and with
`--plan TEST --plan-val VAL` CEM and greedy arrival on goals of the TEST clips at each of `--ks`, the stop threshold
chosen on goals of the VAL clips (`iwm.planning.plan_run`, each row's records in OUT/NAME/plan; `--goals 4=50,8=30` asks a
different number of goals at each k); random actions, which need no model, are run once, with the first row. The JSON holds every row, with what it rests on.
"""
import argparse, json, platform, time
from pathlib import Path
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def parse_row(s: str) -> tuple[str, dict]:
    "NAME=FIELD=VALUE,FIELD=VALUE -> (NAME, {FIELD: VALUE}) with VALUE read as JSON where it parses (numbers, true/false), else a string."
    name, _, rest = s.partition('=')
    out = {}
    for kv in filter(None, rest.split(',')):
        k, _, v = kv.partition('=')
        try: out[k] = json.loads(v)
        except json.JSONDecodeError: out[k] = v
    return name, out


def plan_seconds(run, val: Path, plans: int = 3) -> float:
    "Mean seconds of one CEM plan (reference budget, the game's actions) from a validation frame toward the frame 4 later."
    from iwm.train import load_run
    from iwm.planning import CEMPlanner, PlanConfig
    from iwm.games import game_class
    from iwm.actions import actions_from_jsonl
    from iwm.video import read_frames
    world = load_run(run, torch.device('cpu'))
    clip = sorted(Path(val).glob('*.mp4'))[0]
    game = game_class(clip)
    planner = CEMPlanner(world, PlanConfig(actions=tuple(game.actions)), game=game)
    ctx, size = world.cfg.context, world.cfg.img_size
    fr = torch.from_numpy(read_frames(clip, size, start=100, stop=105)).permute(0, 3, 1, 2)
    hist = torch.from_numpy(actions_from_jsonl(clip.with_suffix('.jsonl'))[100 - ctx + 1:100]).float()
    with torch.no_grad():
        z, zg = world.encode(fr[:1]), world.forward_target(fr[None, -1:])[:, 0]
        planner.plan(z, hist, zg, generator=torch.Generator().manual_seed(0))  # warm-up
        t0 = time.perf_counter()
        for i in range(plans): planner.plan(z, hist, zg, generator=torch.Generator().manual_seed(i + 1))
    return (time.perf_counter() - t0) / plans


@torch.no_grad()
def latent_stats(run, clips, frames: int = 32, draws: int = 16, seed: int = 0) -> dict:
    "Effective rank of the target latents of `frames` random frames' tokens (as training logs `target_rank`), mean over `draws`; the mean |z_t+1 - z_t| of consecutive frames; over every frame of `clips`."
    from iwm.train import load_run
    from iwm.data import ClipWindows
    from iwm.evaluate import clip_latents
    from iwm.models.world_model import effective_rank
    world = load_run(run, torch.device('cpu'))  # in eval mode
    ds = ClipWindows(clips, size=world.cfg.img_size, horizon=1)
    zs = [clip_latents(world, ds, i) for i in range(len(ds.clips))]
    change = float(torch.cat([(z[1:] - z[:-1]).abs().mean((1, 2)) for z in zs]).mean())
    allz, g = torch.cat(zs), torch.Generator().manual_seed(seed)
    ranks = [float(effective_rank(allz[torch.randperm(len(allz), generator=g)[:frames]].flatten(0, 1))) for _ in range(draws)]
    return dict(latent_rank=float(np.mean(ranks)), latent_change=change, latent_frames=len(allz), rank_tokens=frames * allz.shape[1])


def plan_metrics(run, test: Path, val: Path, ks, goals: dict, val_goals: int, methods, rollouts: int, out: Path) -> dict:
    "Arrival of `methods` over the game's reference action set at each k on `goals[k]` goals of `test`, the stop chosen on `val_goals` goals of `val`."
    from iwm.planning import plan_run, PlanConfig
    from iwm.games import game_class
    from iwm.demo import REFERENCE
    from iwm.data import find_clips
    game = game_class(find_clips(test)[0])
    acts = REFERENCE.get(game.name, {}).get('actions') or tuple(game.actions)
    res = plan_run(run, data=test, ks=tuple(ks), episodes=goals, c=PlanConfig(actions=tuple(acts)), methods=methods, out=out, val_data=val,
                   val_episodes=val_goals, rollouts=rollouts, progress=False)
    keep = ('goals', 'arrived', 'arrived_ci', 'passed', 'passed_ci', 'rollouts', 'plan_s_per_action')
    return dict(actions=list(acts), stop={k: v.get('threshold') for k, v in res['stop'].items()}, skipped=len(res['skipped']),
                k={k: {m: {q: d[q] for q in keep if q in d} for m, d in ms.items()} for k, ms in res['k'].items()})


def row_metrics(run: Path, val: Path, windows: int) -> dict:
    from iwm.evaluate import eval_metrics
    from iwm.train import read_metrics
    m = eval_metrics(run, data=val, horizon=8, windows=windows)
    r, p = m['ratios'], m.get('probes', {})
    log = read_metrics(run)
    ranks = [x['target_rank'] for x in log if 'target_rank' in x]
    return dict(steps=max((x.get('step', 0) for x in log), default=0), windows=m['windows'], clips=len(m['clips']), kind_share=m.get('kind_share'),
                l1_copy_last_h1={k.split('copy_last_')[1]: v[0] for k, v in r.items() if k.startswith('model/copy_last_')},
                shuffled_true_h4=r['shuffled/model_all'][3], probes={k: p.get(k) for k in ('trained', 'random', 'predicted', 'current', 'persistence')},
                probe_info=p.get('info'), target_rank=float(np.mean(ranks[-10:])) if ranks else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--train', required=True); ap.add_argument('--val', required=True)
    ap.add_argument('--row', action='append', default=[], help='NAME=FIELD=VALUE[,FIELD=VALUE...]')
    ap.add_argument('--config', default='tiny'); ap.add_argument('--minutes', type=float, default=8.0)
    ap.add_argument('--batch', type=int, default=32); ap.add_argument('--windows', type=int, default=256)
    ap.add_argument('--out', default='runs/compare'); ap.add_argument('--json', default=None)
    ap.add_argument('--run', action='append', default=[], help='NAME=RUN: a run trained elsewhere, evaluated as a row (before the --row rows)')
    ap.add_argument('--plan', default=None, help='clips whose goals the rows plan toward (test seeds)')
    ap.add_argument('--plan-val', default=None, help='clips whose goals choose the stop threshold (validation seeds)')
    ap.add_argument('--ks', default='4,8'); ap.add_argument('--goals', default='200', help="test goals at every k, or per k: '4=200,8=100'")
    ap.add_argument('--val-goals', type=int, default=50)
    ap.add_argument('--rollouts', type=int, default=20, help="random actions' rollouts per goal")
    ap.add_argument('--held-out', type=float, default=0.0, help="share of the training clips the trainer keeps apart for its held-out loss "
                    "(match the run a --run row came from: the reference runs keep the trainer's default)")
    ap.add_argument('--no-random', action='store_true', help='run no random actions (a row of another compare run has them)')
    ap.add_argument('--eval-every', type=int, default=10 ** 6, help='steps between held-out losses (the reference runs: 200)')
    a = ap.parse_args()
    if not a.row and not a.run: ap.error('nothing to compare: give --row or --run')
    if a.plan and not a.plan_val: ap.error('--plan needs --plan-val: the stop threshold is chosen on validation goals, never on the test goals')
    from iwm.train import Trainer, TrainConfig
    from iwm.planning import goal_counts
    rows, out = [], Path(a.out)
    from iwm.data import find_clips
    specs = [(n, None, Path(r)) for n, _, r in (s.partition('=') for s in a.run)] + [(n, o, out / n) for n, o in map(parse_row, a.row)]
    for i, (name, over, run) in enumerate(specs):
        t0 = time.time()
        if over is not None and not any((run / 'checkpoints').glob('*')):  # a row trained before is evaluated again, not retrained
            tc = TrainConfig(config=a.config, overrides=over, data=a.train, out=str(run), steps=10 ** 6, minutes=a.minutes, batch=a.batch,
                             held_out=a.held_out, eval_every=a.eval_every, ckpt_every=500, log_every=20)
            Trainer(tc).fit()
        row = dict(name=name, run=str(run), overrides=over, minutes=a.minutes if over is not None else None, train_s=round(time.time() - t0, 1),
                   **row_metrics(run, Path(a.val), a.windows), **latent_stats(run, find_clips(a.val)), plan_s=plan_seconds(run, Path(a.val)))
        if a.plan:
            ks = tuple(int(k) for k in a.ks.split(','))
            methods = ('cem', 'greedy') + (('random',) if i == 0 and not a.no_random else ())
            row['planning'] = plan_metrics(run, Path(a.plan), Path(a.plan_val), ks, goal_counts(a.goals, ks), a.val_goals,
                                           methods, a.rollouts, out / name / 'plan')
        rows.append(row)
        print(name, json.dumps({k: row.get(k) for k in ('steps', 'l1_copy_last_h1', 'shuffled_true_h4', 'latent_rank', 'latent_change', 'plan_s')}), flush=True)
    res = dict(config=a.config, minutes=a.minutes, batch=a.batch, train=a.train, val=a.val, plan=a.plan, plan_val=a.plan_val, held_out=a.held_out, machine=f"{torch.get_num_threads()} CPU threads, {platform.machine()}",
               rows=rows)
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1, default=float))
    (out / 'compare.json').write_text(json.dumps(res, indent=1, default=float))


if __name__ == '__main__':
    main()
