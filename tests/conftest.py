"Shared fixtures: real Crafter clips recorded once per test session."
import pytest
import iwm.crafter


@pytest.fixture(scope='session')
def crafter_clips(tmp_path_factory):
    "A folder with 2 real Crafter clips (60 steps each, seed 11) in VPT format: mp4 + jsonl + truth sidecar."
    folder = tmp_path_factory.mktemp('crafter_clips')
    iwm.crafter.record(folder, episodes=2, steps=60, seed=11, progress=False)
    return folder
