"World model on real Crafter clips: overfitting one batch, each conditioning reading the actions, and a short real training."
import math
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate
from iwm.crafter import record, record_clip, CRAFTER_ACTIONS, MOVES
from iwm.data import ClipWindows
from iwm.models.config import get_config
from iwm.models.world_model import WorldModel, ema_schedule

KEYS = ('frame', 'actions', 'targets')


def collate(windows):
    b = default_collate(list(windows))
    return {k: b[k] for k in KEYS}


def branch_batch(folder, seeds=(1, 2), t=25):
    "Per seed, four clips with the same actions up to line t-1 and a different move at line t: windows at t, one frame t per seed."
    for seed in seeds:
        rng = np.random.default_rng(seed)
        prefix = [CRAFTER_ACTIONS.index(a) for a in rng.choice([*MOVES, 'noop'], t)]
        for move in MOVES:
            script = iter([*prefix[1:], CRAFTER_ACTIONS.index(move), 0])
            record_clip(folder, f'branch-{seed}-{move}', seed, steps=t + 2, size=(320, 180), policy=lambda env, s=script: next(s))
    ds = ClipWindows(folder, size=64, horizon=1)
    b = collate(ds[k] for k in range(len(ds)) if ds.index[k][1] == t)
    b['frame'] = b['frame'][torch.arange(len(b['frame'])) // 4 * 4]  # the game's frame t is shared; decoded copies differ by compression noise
    return b


def action_effect(model, batch):
    "Next-step error with actions swapped among branches of one frame / error with the true actions."
    with torch.no_grad():
        y = model.forward_target(batch['targets'][:, :1])[:, 0]
        swap = torch.arange(len(batch['frame'])).view(-1, 4).roll(1, 1).flatten()
        true = model.rollout(batch['frame'], batch['actions'], 1)[:, 0]
        other = model.rollout(batch['frame'], batch['actions'][swap], 1)[:, 0]
    return float((other - y).abs().mean() / (true - y).abs().mean())


def fit(model, batch, steps, lr, stop=None):
    "AdamW on one batch with the config's EMA schedule; returns the losses and the last stats."
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    momentum = ema_schedule(model.cfg.ema_start, model.cfg.ema_end, steps)
    losses = []
    for _ in range(steps):
        loss, stats = model.loss(batch)
        opt.zero_grad(); loss.backward(); opt.step(); model.ema_step(next(momentum))
        losses.append(float(loss.detach()))
        if stop and stop(losses): break
    return losses, {k: float(v) for k, v in stats.items()}


def test_tiny_overfits_one_real_batch(crafter_clips):
    ds = ClipWindows(crafter_clips, size=64, horizon=2)
    g = torch.Generator().manual_seed(0)
    batch = collate(ds[int(i)] for i in torch.randperm(len(ds), generator=g)[:4])
    torch.manual_seed(0)
    model = WorldModel('tiny')
    losses, stats = fit(model, batch, 300, lr=2e-3, stop=lambda l: l[-1] <= 0.1 * l[0])
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} in {len(losses)} steps; {stats}")
    assert losses[-1] <= 0.1 * losses[0], (losses[0], losses[-1])
    assert stats['target_std'] > 0.1 and stats['pred_std'] > 0.1, stats  # away from collapse
    assert stats['target_rank'] > 2, stats


@pytest.fixture(scope='module')
def branches(tmp_path_factory):
    return branch_batch(tmp_path_factory.mktemp('branches'))


@pytest.mark.parametrize('conditioning,steps', [('cross_attn', 300), ('adaln', 250)])
def test_each_conditioning_reads_actions(branches, conditioning, steps):
    "With only one conditioning path on, a model fitted to branching windows predicts worse with another branch's actions."
    batch = branches
    cfg = get_config('tiny', cross_attn=conditioning == 'cross_attn', adaln=conditioning == 'adaln')
    torch.manual_seed(0)
    model = WorldModel(cfg)
    assert action_effect(model, batch) == pytest.approx(1.0)  # untrained: copy-last
    fit(model, batch, steps, lr=1e-3)
    effect = action_effect(model, batch)
    print(f"{conditioning} only, {steps} steps: swapped/true error {effect:.3f}")
    assert effect > 1.1, effect


def batches(ds, size, generator):
    while True:
        for idx in torch.randperm(len(ds), generator=generator).split(size):
            if len(idx) == size: yield collate(ds[int(i)] for i in idx)


@pytest.mark.slow
def test_short_training_uses_actions_on_held_out_clips(tmp_path):
    "A few minutes of training on real clips: held-out error with shuffled actions exceeds error with the true ones."
    record(tmp_path/'train', episodes=6, steps=300, seed=1, progress=False)
    record(tmp_path/'held_out', episodes=2, steps=200, seed=2, progress=False)
    cfg, steps, lr = get_config('tiny'), 800, 1e-3
    train = ClipWindows(tmp_path/'train', size=64, horizon=cfg.rollout_steps, cache=16)
    held = ClipWindows(tmp_path/'held_out', size=64, horizon=4, cache=16)
    torch.manual_seed(0)
    model = WorldModel(cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.05)
    momentum, data = ema_schedule(cfg.ema_start, cfg.ema_end, steps), batches(train, 16, torch.Generator().manual_seed(0))
    for i in range(steps):
        for group in opt.param_groups: group['lr'] = lr * min(1, (i + 1) / 50) * 0.5 * (1 + math.cos(math.pi * i / steps))
        loss, stats = model.loss(next(data))
        opt.zero_grad(); loss.backward(); opt.step(); model.ema_step(next(momentum))
    model.eval()
    ev = collate(held[k] for k in range(len(held)))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        y = model.forward_target(ev['targets'])  # (M, 4, N, D)
        copy = (model.forward_target(ev['frame'][:, None]) - y).abs().mean((0, 2, 3))
        true = (model.rollout(ev['frame'], ev['actions'], 4) - y).abs().mean((0, 2, 3))
        shuffled = torch.stack([(model.rollout(ev['frame'], ev['actions'][torch.randperm(len(held), generator=g)], 4) - y)
                                .abs().mean((0, 2, 3)) for _ in range(5)]).mean(0)
    ratio = shuffled / true
    print(f"{len(held)} held-out windows after {steps} steps: shuffled/true {ratio.tolist()}, true/copy-last {(true / copy).tolist()}")
    assert (ratio > 1).all(), ratio


def test_every_rollout_goes_through_imagine(monkeypatch):
    "The loss's rollout, `rollout`, evaluation and the planner's every-sample imagination all step through `WorldModel.imagine`."
    from iwm.evaluate import latent_errors
    from iwm.planning import CEMPlanner, PlanConfig
    torch.manual_seed(0)
    model = WorldModel('tiny').eval()
    calls, imagine = [], WorldModel.imagine
    def counted(self, z, actions, horizon=None, step=None):
        out = imagine(self, z, actions, horizon, step); calls.append(out.shape[1]); return out
    monkeypatch.setattr(WorldModel, 'imagine', counted)
    frames = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    actions = torch.rand(2, 26, 28)
    model.loss(dict(frame=frames[:, 0], targets=frames[:, 1:], actions=actions))  # K=2: one rollout step after the first
    assert calls == [1]
    with torch.no_grad():
        model.rollout(frames[:, 0], actions, 2)
        latent_errors(model, dict(frame=frames[:, 0], targets=frames[:, 1:], actions=actions), actions.flip(0))
        CEMPlanner(model, PlanConfig()).imagine_each(model.encode(frames[:1, 0]), torch.rand(24, 28), torch.zeros(3, 4, dtype=torch.long))
    assert calls == [1, 2, 2, 2, 2, 4]  # rollout; evaluation's true, shuffled and zero actions; the planner's 4 steps
