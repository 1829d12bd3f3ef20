"VPT action lines, built from a real recorder line, read by `actions_from_jsonl`; malformed files fail with file:line."
import copy, json
from pathlib import Path
import numpy as np
import pytest
from iwm.actions import (ACTION_NAMES, COL, CAMERA_SCALER, ActionFileError, actions_from_jsonl, null_actions,
                         camera_to_bins, camera_from_bins)

FIXTURE = Path(__file__).parent / 'fixtures' / 'vpt' / 'readme-example-line.jsonl'


@pytest.fixture(scope='module')
def base():
    lines = FIXTURE.read_text().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def line(base, **changes):
    "A deep copy of the real line; `mouse__dx=1` style keys set nested fields, None-valued top-level keys stay None."
    d = copy.deepcopy(base)
    for k, v in changes.items():
        *parents, leaf = k.split('__')
        target = d
        for p in parents: target = target[p]
        target[leaf] = v
    return d


def write(tmp_path, lines, name='a.jsonl'):
    p = tmp_path / name
    p.write_text(''.join((l if isinstance(l, str) else json.dumps(l)) + '\n' for l in lines))
    return p


def test_real_line(base, tmp_path):
    a = actions_from_jsonl(write(tmp_path, [base]))
    assert a.shape == (1, len(ACTION_NAMES)) and a.dtype == np.float32
    held = {ACTION_NAMES[i] for i in np.flatnonzero(a[0])}
    assert held == {'left', 'back'}  # keys a and s; no buttons, no camera, GUI closed
    assert not null_actions(a)[0]


def test_null_mouse_and_keyboard(base, tmp_path):
    "Recorder 6.13 writes `\"mouse\": null` and `\"keyboard\": null` on some lines."
    d = line(base, mouse=None, keyboard=None)
    text = json.dumps(d)
    assert '"mouse": null' in text and '"keyboard": null' in text
    a = actions_from_jsonl(write(tmp_path, [d, d]))
    assert a.shape == (2, len(ACTION_NAMES))
    assert (a == 0).all()
    assert null_actions(a).all()


def test_null_mouse_with_gui_open(base, tmp_path):
    d = line(base, mouse=None, keyboard=None, isGuiOpen=True)
    a = actions_from_jsonl(write(tmp_path, [d]))
    assert a[0, COL['gui_open']] == 1 and a[0, COL['cursor_x']] == 0 and a[0, COL['cursor_y']] == 0


def test_older_recorder_without_hotbar_and_gui(base, tmp_path):
    d = copy.deepcopy(base)
    del d['hotbar'], d['isGuiOpen']
    a = actions_from_jsonl(write(tmp_path, [d, d, d]))
    assert a.shape == (3, len(ACTION_NAMES))
    assert (a[:, COL['left']] == 1).all() and (a[:, COL['back']] == 1).all()
    assert (a[:, COL['hotbar.1']:COL['hotbar.9'] + 1] == 0).all()
    assert (a[:, COL['gui_open']] == 0).all()


def test_hotbar_change_is_a_press(base, tmp_path):
    lines = [line(base, hotbar=h) for h in (4, 4, 2)]
    a = actions_from_jsonl(write(tmp_path, lines))
    hot = a[:, COL['hotbar.1']:COL['hotbar.9'] + 1]
    assert (hot[:2] == 0).all()
    assert hot[2].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0]  # slot 2 -> key 3
    assert a[2, COL['hotbar.3']] == 1


def test_camera_one_pixel(base, tmp_path):
    a = actions_from_jsonl(write(tmp_path, [line(base, mouse__dx=1), line(base, mouse__dx=-1, mouse__dy=1)]))
    assert a[0, COL['camera_yaw']] == np.float32(0.15) == np.float32(CAMERA_SCALER)
    assert a[0, COL['camera_pitch']] == 0
    assert a[1, COL['camera_yaw']] == np.float32(-0.15) and a[1, COL['camera_pitch']] == np.float32(0.15)
    assert not null_actions(a).any()


def test_camera_only_row_is_not_null(base, tmp_path):
    d = line(base, keyboard=None, mouse__dx=1)
    assert not null_actions(actions_from_jsonl(write(tmp_path, [d])))[0]


def _check_error(exc, path, n):
    msg = str(exc.value)
    assert msg.startswith(f"{path}:{n}:"), msg
    assert '\n' not in msg, msg


def _bad_json_line3(base):
    return [json.dumps(base), json.dumps(base), json.dumps(base)[:-5], json.dumps(base)], 3

def _list_not_object(base):
    return [json.dumps(base), json.dumps([base])], 2

def _dx_string(base):
    return [json.dumps(base), json.dumps(base), json.dumps(base), json.dumps(line(base, mouse__dx='fast'))], 4

def _blank_middle(base):
    return [json.dumps(base), '', json.dumps(base)], 2

def _blank_spaces_middle(base):
    return [json.dumps(base), json.dumps(base), '   \t', json.dumps(base)], 3

def _nan_camera(base):
    text = json.dumps(line(base, mouse__dy=float('nan')))
    assert 'NaN' in text
    return [json.dumps(base), text], 2

def _inf_camera(base):
    return [json.dumps(line(base, mouse__dx=float('inf')))], 1

def _hotbar_9(base):
    return [json.dumps(base), json.dumps(line(base, hotbar=9))], 2

def _hotbar_negative(base):
    return [json.dumps(line(base, hotbar=-1))], 1

def _keyboard_string(base):
    return [json.dumps(base), json.dumps(line(base, keyboard='w'))], 2


@pytest.mark.parametrize('case', [_bad_json_line3, _list_not_object, _dx_string, _blank_middle, _blank_spaces_middle,
                                  _nan_camera, _inf_camera, _hotbar_9, _hotbar_negative, _keyboard_string],
                         ids=lambda f: f.__name__.strip('_'))
def test_malformed_lines(base, tmp_path, case):
    lines, n = case(base)
    p = write(tmp_path, lines)
    with pytest.raises(ActionFileError) as e: actions_from_jsonl(p)
    _check_error(e, p, n)


def test_not_utf8(base, tmp_path):
    p = tmp_path / 'latin1.jsonl'
    bad = json.dumps(line(base, keyboard__chars='é')).replace('\\u00e9', 'é').encode('latin-1')
    assert b'\xe9' in bad
    p.write_bytes(json.dumps(base).encode() + b'\n' + bad + b'\n' + json.dumps(base).encode() + b'\n')
    with pytest.raises(ActionFileError) as e: actions_from_jsonl(p)
    _check_error(e, p, 2)


def test_error_path_given_as_str(base, tmp_path):
    p = write(tmp_path, [json.dumps(base), json.dumps(base)[:-1]])
    with pytest.raises(ActionFileError) as e: actions_from_jsonl(str(p))
    _check_error(e, p, 2)


def test_error_is_value_error(base, tmp_path):
    p = write(tmp_path, ['{'])
    with pytest.raises(ValueError): actions_from_jsonl(p)


def test_empty_file(tmp_path):
    p = tmp_path / 'empty.jsonl'; p.write_bytes(b'')
    with pytest.raises(ActionFileError) as e: actions_from_jsonl(p)
    assert str(e.value).startswith(f"{p}:")


def test_no_final_newline(base, tmp_path):
    p = tmp_path / 'nonl.jsonl'
    p.write_text(json.dumps(base) + '\n' + json.dumps(base))
    assert actions_from_jsonl(p).shape == (2, len(ACTION_NAMES))


def test_camera_bins_round_trip():
    bins = np.arange(11)
    centres = camera_from_bins(bins)
    assert centres.shape == (11,)
    assert centres[5] == 0 and centres[0] == -10 and centres[10] == 10
    np.testing.assert_allclose(centres, -centres[::-1], atol=1e-6)  # symmetric
    assert (np.diff(centres) > 0).all()
    np.testing.assert_array_equal(camera_to_bins(centres), bins)
    np.testing.assert_array_equal(camera_to_bins(np.float32(0.15)), 5 + 0)  # a pixel stays in the zero bin
    np.testing.assert_array_equal(camera_to_bins([-1000, 1000]), [0, 10])  # clipped
