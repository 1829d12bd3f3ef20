"Anti-collapse terms on real Crafter windows: the encoder learns end to end with them, and a model with an online target saves and loads."
import math
import pytest
import torch
from torch.utils.data import default_collate
from iwm.checkpoint import CheckpointError, save_checkpoint, load_checkpoint
from iwm.data import ClipWindows
from iwm.models.config import get_config
from iwm.models.world_model import WorldModel, ema_schedule
from iwm.train import parse_fields

KEYS = ('frame', 'actions', 'targets')


@pytest.fixture(scope='module')
def batch(crafter_clips):
    "4 real windows with K = 2."
    ds = ClipWindows(crafter_clips, size=64, horizon=2)
    g = torch.Generator().manual_seed(0)
    b = default_collate([ds[int(i)] for i in torch.randperm(len(ds), generator=g)[:4]])
    return {k: b[k] for k in KEYS}


def train(model, batch, steps=5, lr=1e-3):
    "AdamW steps on one batch, the EMA following the schedule; the losses and the stats of each step."
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    momentum = ema_schedule(model.cfg.ema_start, model.cfg.ema_end, steps)
    losses, stats = [], []
    for _ in range(steps):
        loss, st = model.loss(batch)
        opt.zero_grad(); loss.backward(); opt.step(); model.ema_step(next(momentum))
        losses.append(float(loss.detach())); stats.append({k: float(v) for k, v in st.items()})
    return losses, stats


def moved(before, model) -> float:
    "Largest change of any encoder weight since `before`."
    return max(float((b - p.detach()).abs().max()) for b, p in zip(before, model.encoder.parameters()))


def test_online_target_with_sigreg_trains_the_encoder(batch):
    torch.manual_seed(0)
    model = WorldModel(get_config('tiny', encoder_lr=1.0, target='online', sigreg_weight=0.1, sigreg_directions=64))
    assert model.target is model.encoder and not any(k.startswith('target.') for k in model.state_dict())
    before = [p.detach().clone() for p in model.encoder.parameters()]
    losses, stats = train(model, batch)
    assert all(math.isfinite(l) for l in losses), losses
    assert moved(before, model) > 1e-4
    for s in stats: assert {'sigreg', 'latent_change'} <= s.keys() and not {'vc_var', 'vc_cov', 'tstd', 'inv_dyn'} & s.keys()
    assert all(math.isfinite(s['sigreg']) and s['sigreg'] > 0 for s in stats)


def test_vicreg_temporal_inverse_dynamics_recipe(batch):
    torch.manual_seed(0)
    model = WorldModel(get_config('tiny', encoder_lr=1.0, var_weight=1.0, cov_weight=1.0, temporal_std_weight=0.5,
                                  inverse_dynamics_weight=1.0))
    before = [p.detach().clone() for p in model.encoder.parameters()]
    target = [p.detach().clone() for p in model.target.parameters()]
    head = [p.detach().clone() for p in model.inverse.parameters()]
    losses, stats = train(model, batch)
    assert all(math.isfinite(l) for l in losses), losses
    assert moved(before, model) > 1e-4
    assert any(not torch.equal(a, b) for a, b in zip(target, model.target.parameters()))  # the EMA target follows
    assert any(not torch.equal(a, b) for a, b in zip(head, model.inverse.parameters()))  # the head learns
    for k in ('vc_var', 'vc_cov', 'tstd', 'inv_dyn'): assert all(math.isfinite(s[k]) for s in stats), k
    assert 'sigreg' not in stats[0]
    assert stats[-1]['inv_dyn'] < stats[0]['inv_dyn'], [s['inv_dyn'] for s in stats]


def test_defaults_leave_the_loss_alone(batch):
    "All weights 0 and an EMA target: the loss, its stats and the state dict are what they were."
    torch.manual_seed(0)
    model = WorldModel('tiny')
    loss, stats = model.loss(batch)
    assert list(stats) == ['one_step', 'rollout', 'copy_last', 'target_std', 'pred_std', 'target_rank']
    assert not any(k.startswith('inverse.') for k in model.state_dict()) and any(k.startswith('target.') for k in model.state_dict())
    torch.testing.assert_close(loss.detach(), stats['one_step'] + stats['rollout'])


def test_online_target_checkpoint_roundtrip(batch, tmp_path):
    torch.manual_seed(0)
    cfg = get_config('tiny', encoder_lr=1.0, target='online', sigreg_weight=0.1, inverse_dynamics_weight=1.0)
    model = WorldModel(cfg)
    train(model, batch, steps=1)
    path = save_checkpoint(tmp_path, 1, model)
    torch.manual_seed(1)
    again = WorldModel(cfg)
    load_checkpoint(path, again, restore_rng=False)
    assert again.state_dict().keys() == model.state_dict().keys()
    for k, v in model.state_dict().items(): assert torch.equal(v, again.state_dict()[k]), k
    with torch.no_grad():
        torch.testing.assert_close(again.forward_target(batch['targets']), model.forward_target(batch['targets']))
    with pytest.raises(CheckpointError, match='missing'):  # an EMA model has the target's tensors too
        load_checkpoint(path, WorldModel(get_config('tiny', encoder_lr=1.0)), restore_rng=False)


def test_set_reads_target_and_weights():
    assert parse_fields('sigreg_weight=0.1,target=online,sigreg_directions=64') == dict(sigreg_weight=0.1, target='online', sigreg_directions=64)
    cfg = get_config('tiny', **parse_fields('target=online,var_weight=1,temporal_std_weight=0.5'))
    assert (cfg.target, cfg.var_weight, cfg.temporal_std_weight) == ('online', 1.0, 0.5)
