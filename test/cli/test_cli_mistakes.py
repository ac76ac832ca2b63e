"""A table of user mistakes per command: each is one line, exit status 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from segnode.cli import main

MISTAKES = [
    ('demo --size 0 0', 'is not a frame side in 32..8192'),
    ('demo --size 1 1', 'is not a frame side'),
    ('demo --size -10 20', 'is not a frame side'),
    ('demo --size 100000 100000', 'is not a frame side'),
    ('demo --rate 0', 'must be a finite number > 0'),
    ('demo --frames 0', 'must be at least 1'),
    ('export --backend eager --size 1 1 --out OUT', 'is not a frame side'),
    ('export --backend eager --size 64 64 --batch 0 --out OUT', 'must be at least 1'),
    ('bench --size 0 0', 'is not a frame side'),
    ('bench --runs 0', 'must be at least 1'),
    ('info model.pt --size -5 5', 'is not a frame side'),
    ('replay bag --speed nan', 'must be a finite number > 0'),
    ('replay bag --speed inf', 'must be a finite number > 0'),
    ('replay bag --max-frames -1', 'must be 0 or more'),
    ('eval --checkpoint m.pt --dataset camvid --data-root d --limit -1', 'must be 0 or more'),
    ('eval --checkpoint m.pt --dataset camvid --data-root d --window 0 5', 'is not a frame side'),
    ('bag-from-images images --out bag --rate -3', 'must be a finite number > 0'),
]


@pytest.mark.parametrize(('command', 'message'), MISTAKES)
def test_a_mistake_is_one_line_and_exit_2(
    command: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(command.split())
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if 'error:' in x]
    assert message in line and 'Traceback' not in err


def test_a_renamed_command_names_the_new_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['calibrate', '--config', 'x.yaml', '--out', 'y.pt']) == 2
    err = capsys.readouterr().err
    assert err == "segnode: error: 'segnode calibrate' was renamed; use 'segnode equalize'\n"


def test_bench_with_no_backend_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['bench', '--backends', ' , ']) == 2
    assert 'names no backend' in capsys.readouterr().err


def _paths(tmp_path: Path) -> dict[str, str]:
    (tmp_path / 'a_file').write_text('x')
    (tmp_path / 'a_folder').mkdir()
    return {'FILE': str(tmp_path / 'a_file'), 'DIR': str(tmp_path / 'a_folder')}


OUTPUT_MISTAKES = [
    ('bag-from-images DIR --out FILE/bag', 'is a file, not a folder'),
    ('bag-from-images DIR --out DIR', 'already exists'),
    ('replay BAG --json DIR', 'is a folder; give a file name'),
    ('replay BAG --report FILE', 'is a file, not a folder'),
    ('replay BAG --out DIR', 'already exists'),
    ('export --backend eager --size 64 64 --out FILE', 'is a file, not a folder'),
    ('bench --json DIR', 'is a folder; give a file name'),
    ('bench --markdown FILE/table.md', 'is a file, not a folder'),
    ('eval --checkpoint C --dataset camvid --data-root R --json DIR', 'is a folder'),
    ('eval --checkpoint C --dataset camvid --data-root R --confusion FILE/x.png', 'is a file'),
    ('train out_dir=FILE', 'out_dir FILE is a file, not a folder'),
    ('equalize --out DIR', 'is a folder; give a file name'),
    ('demo --out FILE', 'is a file, not a folder'),
]


@pytest.mark.parametrize(('command', 'message'), OUTPUT_MISTAKES)
def test_unusable_outputs_are_refused_before_any_work(
    tmp_path: Path, command: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _paths(tmp_path)
    words = [
        w.replace('FILE', paths['FILE']).replace('DIR', paths['DIR']) for w in command.split()
    ]
    assert main(words) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert message.replace('FILE', paths['FILE']) in err


@pytest.mark.parametrize(
    ('topic', 'message'),
    [
        ('bad topic!', 'must be absolute'),
        ('/bad topic!', "is not a valid ROS 2 name: 'bad topic!'"),
        ('/cam//image', "is not a valid ROS 2 name: ''"),
        ('/cam/1image', "'1image'"),
        ('/cam/image/', "is not a valid ROS 2 name: ''"),
    ],
)
def test_topic_names_ros_cannot_have_are_refused(
    tmp_path: Path, topic: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _paths(tmp_path)
    out = str(tmp_path / 'bag')
    assert main(['bag-from-images', paths['DIR'], '--out', out, '--topic', topic]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1 and not Path(out).exists()
