"""Train several world-model settings for the same wall-clock budget on the same clips and compare them on validation clips.

    python tools/compare.py --train data/reference-minetest/train --val data/reference-minetest/val --minutes 8 \\
        --row 64=img_size=64 --row 96=img_size=96 --row 128=img_size=128 --out runs/compare-sizes \\
        --json nbs/results/minetest_sizes.json

Each `--row NAME=FIELD=VALUE[,FIELD=VALUE...]` is one `tiny` run with those model-config fields set (any field of
`WorldModelConfig`); every row trains with the same seed, batch and minutes on the same clips, one after another (never
two at once, so each has the machine to itself). Each is then evaluated on the validation clips, never on the held-out or
test clips the reported numbers come from: latent L1 / copy-last at h=1 by kind of step, shuffled / true at h=4, the
game's probes (from the model's target latents of the validation frames and from the predicted latents of t+1), the
effective rank of the target latents, and the seconds one CEM plan takes at the reference budget on this machine.
Rows already trained in OUT are evaluated again, not retrained. The JSON holds every row, with what it rests on.
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
    ap.add_argument('--row', action='append', required=True, help='NAME=FIELD=VALUE[,FIELD=VALUE...]')
    ap.add_argument('--config', default='tiny'); ap.add_argument('--minutes', type=float, default=8.0)
    ap.add_argument('--batch', type=int, default=32); ap.add_argument('--windows', type=int, default=256)
    ap.add_argument('--out', default='runs/compare'); ap.add_argument('--json', default=None)
    a = ap.parse_args()
    from iwm.train import Trainer, TrainConfig
    rows, out = [], Path(a.out)
    for spec in a.row:
        name, over = parse_row(spec)
        run = out / name
        t0 = time.time()
        if not any((run / 'checkpoints').glob('*')):  # a row trained before is evaluated again, not retrained
            tc = TrainConfig(config=a.config, overrides=over, data=a.train, out=str(run), steps=10 ** 6, minutes=a.minutes, batch=a.batch,
                             held_out=0.0, eval_every=10 ** 6, ckpt_every=500, log_every=20)
            Trainer(tc).fit()
        row = dict(name=name, overrides=over, minutes=a.minutes, train_s=round(time.time() - t0, 1), **row_metrics(run, Path(a.val), a.windows),
                   plan_s=plan_seconds(run, Path(a.val)))
        rows.append(row)
        print(name, json.dumps({k: row[k] for k in ('steps', 'l1_copy_last_h1', 'shuffled_true_h4', 'target_rank', 'plan_s')}), flush=True)
    res = dict(config=a.config, minutes=a.minutes, batch=a.batch, train=a.train, val=a.val, machine=f"{torch.get_num_threads()} CPU threads, {platform.machine()}",
               rows=rows)
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1, default=float))
    (out / 'compare.json').write_text(json.dumps(res, indent=1, default=float))


if __name__ == '__main__':
    main()
