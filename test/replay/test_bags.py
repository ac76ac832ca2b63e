"""segnode.replay.bags on real rosbag2 bags written into tmp_path with rosbags."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
import sqlite3
import struct
from typing import Any, Literal

import numpy as np
import pytest
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
import yaml

from segnode.errors import BagReadError, BagWriteError
from segnode.pipeline.imaging import encode_compressed, stamp_ns, to_rgb_frame
from segnode.replay.bag_writer import (
    BagWriter,
    make_compressed,
    make_diagnostics,
    make_header,
    make_image,
)
from segnode.replay.bags import open_bag
from segnode.replay.camera_names import camera_names

TS = get_typestore(Stores.ROS2_JAZZY)
T0 = 1_700_000_000_000_000_000
FRONT, REAR, CHATTER = '/front/image_raw', '/rear/image_raw/compressed', '/chatter'
FRAMES = 4
# The offered QoS Humble stores (a YAML string; metadata v4/v5 and the sqlite topics table).
HUMBLE_QOS = (
    '- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n'
    '  deadline:\n    sec: 9223372036\n    nsec: 854775807\n'
    '  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n'
    '  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n'
    '  avoid_ros_namespace_conventions: false'
)
PLUGINS = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}


def _frame(i: int) -> np.ndarray:
    return np.full((6, 8, 3), 10 * i, dtype=np.uint8)


def write_bag(
    path: Path,
    storage: str = 'sqlite3',
    version: Literal[8, 9] = 9,
    images: bool = True,
    compression: CompressionMode = CompressionMode.NONE,
) -> Path:
    """Two cameras (raw front, compressed rear, 50 ms apart) and a chatter, written per topic."""
    writer = Writer(path, version=version, storage_plugin=PLUGINS[storage])
    writer.set_compression(compression, CompressionFormat.ZSTD)
    with writer:
        if images:
            front = writer.add_connection(FRONT, 'sensor_msgs/msg/Image', typestore=TS)
            for i in range(FRAMES):
                msg = make_image(_frame(i), 'rgb8', make_header(T0 + i * 10**8))
                writer.write(front, T0 + i * 10**8, TS.serialize_cdr(msg, msg.__msgtype__))
            rear = writer.add_connection(REAR, 'sensor_msgs/msg/CompressedImage', typestore=TS)
            for i in range(FRAMES):
                stamp = T0 + i * 10**8 + 5 * 10**7
                fmt, data = encode_compressed(_frame(i), 'rgb8', 'png')
                packed = make_compressed(fmt, data, make_header(stamp, 'rear'))
                writer.write(rear, stamp, TS.serialize_cdr(packed, packed.__msgtype__))
        chatter = writer.add_connection(CHATTER, 'std_msgs/msg/String', typestore=TS)
        for i in range(2):
            raw = TS.serialize_cdr(
                TS.types['std_msgs/msg/String'](data='hi'), 'std_msgs/msg/String'
            )
            writer.write(chatter, T0 + i, raw)
    return path


def _metadata(bag: Path) -> dict[str, Any]:
    info: dict[str, Any] = yaml.safe_load((bag / 'metadata.yaml').read_text())
    return info


def _set_metadata(bag: Path, meta: dict[str, Any]) -> None:
    (bag / 'metadata.yaml').write_text(yaml.safe_dump(meta, sort_keys=False))


def to_humble(bag: Path, version: int = 5) -> Path:
    """Rewrite a rosbags sqlite3 bag the way Humble writes one: metadata v5, db schema 3.

    Version 4 (Foxy/Galactic) differs only in lacking the per-file ``files`` list.
    """
    meta = _metadata(bag)['rosbag2_bagfile_information']
    for name in ('custom_data', 'ros_distro', *(['files'] if version == 4 else [])):
        meta.pop(name)
    meta['version'] = version
    for topic in meta['topics_with_message_count']:
        topic['topic_metadata'].pop('type_description_hash')
        topic['topic_metadata']['offered_qos_profiles'] = HUMBLE_QOS
    _set_metadata(bag, {'rosbag2_bagfile_information': meta})
    with sqlite3.connect(bag / meta['relative_file_paths'][0]) as db:
        db.execute('UPDATE topics SET offered_qos_profiles = ?', (HUMBLE_QOS,))
        db.execute('ALTER TABLE topics DROP COLUMN type_description_hash')
        db.execute('DROP TABLE message_definitions')
        db.execute('DROP TABLE metadata')
        db.execute("UPDATE schema SET schema_version = 3, ros_distro = 'humble'")
    db.close()
    return bag


def _check_contents(bag: Any) -> None:
    """The two cameras' messages: counts, stamps, log-time order, decoded pixels."""
    assert {t.topic: t.count for t in bag.info.topics.values()} == {
        CHATTER: 2,
        FRONT: FRAMES,
        REAR: FRAMES,
    }
    assert [t.topic for t in bag.image_topics()] == [FRONT, REAR]
    messages = list(bag.messages([REAR, FRONT]))
    assert [m.topic for m in messages] == [FRONT, REAR] * FRAMES
    times = [m.log_time_ns for m in messages]
    assert times == sorted(times) and times[0] == T0
    for m in messages:
        assert stamp_ns(m.msg.header) == m.log_time_ns
        i = (m.log_time_ns - T0) // 10**8
        frame, order = to_rgb_frame(m.msg)
        expected = _frame(i) if order == 'rgb8' else _frame(i)[:, :, ::-1]
        np.testing.assert_array_equal(frame, expected)
    assert messages[1].msgtype == 'sensor_msgs/msg/CompressedImage'


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
@pytest.mark.parametrize('version', [8, 9])
def test_reads_rosbags_bags(tmp_path: Path, storage: str, version: Literal[8, 9]) -> None:
    path = write_bag(tmp_path / 'bag', storage, version)
    with open_bag(path) as bag:
        assert (bag.info.storage, bag.info.version, bag.info.notes) == (storage, version, ())
        assert bag.info.start_ns == T0
        assert bag.info.duration_ns == (FRAMES - 1) * 10**8 + 5 * 10**7
        _check_contents(bag)


@pytest.mark.parametrize('version', [4, 5])
def test_reads_humble_style_sqlite_bag(tmp_path: Path, version: int) -> None:
    path = to_humble(write_bag(tmp_path / 'bag', 'sqlite3'), version)
    with Reader(path) as reader:  # rosbags itself accepts the fixture
        assert sum(1 for _ in reader.messages()) == 2 * FRAMES + 2
    with open_bag(path) as bag:
        assert (bag.info.storage, bag.info.version, bag.info.notes) == ('sqlite3', version, ())
        _check_contents(bag)


@pytest.mark.parametrize('mode', [CompressionMode.FILE, CompressionMode.MESSAGE])
def test_reads_zstd_compressed_bags(tmp_path: Path, mode: CompressionMode) -> None:
    path = write_bag(tmp_path / 'bag', 'sqlite3', compression=mode)
    with open_bag(path) as bag:  # read through metadata.yaml only: no storage cross-check
        assert bag.info.notes == ()
        _check_contents(bag)


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_opens_single_storage_file_and_metadata_path(tmp_path: Path, storage: str) -> None:
    path = write_bag(tmp_path / 'bag', storage)
    (storage_file,) = [p for p in path.iterdir() if p.name != 'metadata.yaml']
    with open_bag(storage_file) as bag:
        assert (bag.info.storage, bag.info.version, bag.info.notes) == (storage, 0, ())
        _check_contents(bag)
    with open_bag(path / 'metadata.yaml') as bag:
        assert bag.info.version == 9
        _check_contents(bag)


def test_folder_without_metadata_reads_storage_with_note(tmp_path: Path) -> None:
    path = write_bag(tmp_path / 'bag', 'mcap')
    (path / 'metadata.yaml').unlink()
    with open_bag(path) as bag:
        assert bag.info.version == 0
        assert bag.info.notes == (f'{path} has no metadata.yaml: read 1 storage file(s) directly',)
        _check_contents(bag)


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_metadata_qos_mismatch_falls_back_to_storage(tmp_path: Path, storage: str) -> None:
    path = write_bag(tmp_path / 'bag', storage)
    meta = _metadata(path)
    for topic in meta['rosbag2_bagfile_information']['topics_with_message_count']:
        if topic['topic_metadata']['name'] == FRONT:  # the storage has no QoS for it
            topic['topic_metadata']['offered_qos_profiles'] = yaml.safe_load(HUMBLE_QOS)
    _set_metadata(path, meta)
    with Reader(path) as reader:  # the trap: rosbags yields nothing for FRONT
        assert reader.topics[FRONT].msgcount == FRAMES
        assert Counter(c.topic for c, _, _ in reader.messages()) == {REAR: FRAMES, CHATTER: 2}
    with open_bag(path) as bag:
        assert bag.info.notes == (
            f'metadata.yaml disagrees with the storage for {FRONT} (metadata {FRAMES}, '
            f'storage {FRAMES}, matched 0): read the storage files directly',
        )
        _check_contents(bag)


def test_stale_metadata_count_falls_back_to_storage(tmp_path: Path) -> None:
    path = write_bag(tmp_path / 'bag', 'sqlite3')
    meta = _metadata(path)
    meta['rosbag2_bagfile_information']['topics_with_message_count'][0]['message_count'] = 9
    _set_metadata(path, meta)
    with open_bag(path) as bag:
        assert 'metadata 9, storage 4, matched 4' in bag.info.notes[0]
        _check_contents(bag)


def test_no_image_topic(tmp_path: Path) -> None:
    path = write_bag(tmp_path / 'bag', images=False)
    with (
        open_bag(path) as bag,
        pytest.raises(BagReadError, match='has no sensor_msgs/Image or Co'),
    ):
        bag.image_topics()
    with open_bag(path) as bag, pytest.raises(BagReadError, match=r'topics: /chatter \(std_msgs'):
        bag.image_topics()


def test_requested_topics(tmp_path: Path) -> None:
    with open_bag(write_bag(tmp_path / 'bag')) as bag:
        assert [t.topic for t in bag.image_topics([REAR, FRONT, REAR])] == [REAR, FRONT]
        missing = f"no image topic '/side/image'; image topics: {FRONT}, {REAR}"
        with pytest.raises(BagReadError, match=missing):
            bag.image_topics(['/side/image'])
        with pytest.raises(BagReadError, match="no image topic '/chatter'"):
            bag.image_topics([CHATTER])
        with pytest.raises(BagReadError, match="has no topic '/nope'"):
            bag.messages(['/nope'])


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(BagReadError, match='bag .*/absent does not exist'):
        open_bag(tmp_path / 'absent')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagReadError, match='not a bag: no metadata.yaml and no .db3 or .mcap'):
        open_bag(tmp_path / 'empty')
    (tmp_path / 'notes.txt').write_text('x')
    with pytest.raises(BagReadError, match=r'notes.txt is not a bag folder'):
        open_bag(tmp_path / 'notes.txt')


def test_missing_storage_and_corrupt_metadata(tmp_path: Path) -> None:
    path = write_bag(tmp_path / 'bag', 'mcap')
    (path / 'bag.mcap').rename(tmp_path / 'elsewhere.mcap')
    with pytest.raises(
        BagReadError, match=r"storage files in metadata.yaml missing: \['bag.mcap'"
    ):
        open_bag(path)
    (path / 'metadata.yaml').write_text('rosbag2_bagfile_information: [unclosed')
    with pytest.raises(BagReadError, match='cannot read .*metadata.yaml'):
        open_bag(path)


@pytest.mark.parametrize(('storage', 'keep'), [('sqlite3', 0.9), ('sqlite3', 0.3), ('mcap', 0.9)])
def test_truncated_storage(tmp_path: Path, storage: str, keep: float) -> None:
    path = write_bag(tmp_path / 'bag', storage)
    (storage_file,) = [p for p in path.iterdir() if p.name != 'metadata.yaml']
    data = storage_file.read_bytes()
    storage_file.write_bytes(data[: int(len(data) * keep)])
    for target in (path, storage_file):
        with pytest.raises(BagReadError, match=f'cannot (open bag|read messages from) {target}'):
            with open_bag(target) as bag:
                list(bag.messages([FRONT, REAR]))


def test_garbage_storage_file(tmp_path: Path) -> None:
    (tmp_path / 'x.db3').write_bytes(b'not a database' * 100)
    with pytest.raises(BagReadError, match=r'cannot open bag .*x.db3: .*truncated or corrupt'):
        open_bag(tmp_path / 'x.db3')
    # A zeroed header, and record lengths rosbags tries to allocate (MemoryError, OverflowError).
    for name, size in (('zero', 0), ('huge', 2**62), ('overflow', 2**64 - 1)):
        head = b'\x89MCAP0\r\n\x01' + struct.pack('<Q', size)
        (tmp_path / f'{name}.mcap').write_bytes(head + b'ros2' * 20)
        with pytest.raises(BagReadError, match=f'cannot open bag .*{name}.mcap: .*corrupt'):
            open_bag(tmp_path / f'{name}.mcap')


@pytest.mark.parametrize('error', [KeyError, TypeError, RuntimeError, ValueError])
def test_only_the_bag_libraries_errors_read_as_a_corrupt_bag(
    tmp_path: Path, error: type[Exception]
) -> None:
    from segnode.replay.bag_errors import reading

    def segnode_bug() -> None:
        raise error('a bug in segnode')

    with pytest.raises(error, match='a bug in segnode'):  # not 'truncated or corrupt'
        with reading(tmp_path, 'read'):
            segnode_bug()
    library: dict[str, Any] = {'__name__': 'rosbags.rosbag2.storage_mcap', 'error': error}
    exec('def parse():\n    raise error("bad record")', library)  # noqa: S102
    with pytest.raises(BagReadError, match='cannot read .*bad record.*truncated or corrupt'):
        with reading(tmp_path, 'read'):
            library['parse']()


@pytest.mark.parametrize(
    ('topic', 'name'),
    [
        ('/front/image_raw', 'front'),
        ('/cam_left/image_rect_color/compressed', 'cam_left'),
        ('/camera/image', 'camera'),
        ('/image_raw', 'image_raw'),
        ('/robot/zed2/left/rgb/image_rect_color', 'left'),
        ('/0/image', 'cam_0'),
    ],
)
def test_camera_name(topic: str, name: str) -> None:
    assert camera_names([topic]) == {topic: name}


def test_camera_names_disambiguate() -> None:
    topics = ['/left/front/image_raw', '/right/front/image_raw', '/rear/image', '/a-b', '/a_b']
    assert camera_names(topics) == {
        '/left/front/image_raw': 'left_front',
        '/right/front/image_raw': 'right_front',
        '/rear/image': 'rear',
        '/a-b': 'a_b',
        '/a_b': 'a_b_2',
    }
    assert camera_names(['/cam/image_raw', '/cam/image_rect']) == {
        '/cam/image_raw': 'cam_image_raw',
        '/cam/image_rect': 'cam_image_rect',
    }
    long = ['/' + 'c' * 1_000_000 + end for end in ('/image', 'd/image')]  # 1 MB topics
    assert camera_names(long) == {long[0]: 'c' * 64, long[1]: 'c' * 64 + '_2'}


def test_message_builders_serialise() -> None:
    header = make_header(T0 + 123, 'cam')
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (1_700_000_000, 123, 'cam')
    mono = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image = make_image(mono, 'mono8', header)
    back: Any = TS.deserialize_cdr(TS.serialize_cdr(image, image.__msgtype__), image.__msgtype__)
    assert (back.height, back.width, back.encoding, back.step) == (3, 4, 'mono8', 4)
    np.testing.assert_array_equal(back.data, mono.reshape(-1))
    compressed = make_compressed('png', np.array([1, 2, 3], dtype=np.uint8), header)
    assert compressed.data.dtype == np.uint8 and compressed.format == 'png'
    diag = make_diagnostics(header, 'segnode/front', {'infer_ms': 1.5, 'dropped_total': 3}, 'gpu')
    raw = TS.serialize_cdr(diag, diag.__msgtype__)
    decoded: Any = TS.deserialize_cdr(raw, diag.__msgtype__)
    (status,) = decoded.status
    assert (status.level, status.name, status.hardware_id) == (0, 'segnode/front', 'gpu')
    assert [(kv.key, kv.value) for kv in status.values] == [
        ('infer_ms', '1.5'),
        ('dropped_total', '3'),
    ]


def _writes(writer: BagWriter, n: int = 2) -> None:
    for i in range(n):
        header = make_header(T0 + i, 'cam')
        writer.write(FRONT, T0 + i, make_image(_frame(i), 'rgb8', header))


@pytest.mark.parametrize(('storage', 'version'), [('mcap', 8), ('sqlite3', 9)])
def test_writer_roundtrip(tmp_path: Path, storage: str, version: Literal[8, 9]) -> None:
    path = tmp_path / 'sub' / 'out'
    with BagWriter(path, storage, version=version) as writer:
        writer.add_topic(FRONT, 'sensor_msgs/msg/Image')
        writer.add_topic(FRONT, 'sensor_msgs/msg/Image')  # idempotent
        _writes(writer, 3)
    assert sorted(p.name for p in path.parent.iterdir()) == ['out']
    assert (path / f'out.{"mcap" if storage == "mcap" else "db3"}').is_file()
    with open_bag(path) as bag:
        assert (bag.info.storage, bag.info.version) == (storage, version)
        assert [m.log_time_ns for m in bag.messages([FRONT])] == [T0, T0 + 1, T0 + 2]


def test_writer_refuses_existing_path_and_bad_use(tmp_path: Path) -> None:
    (tmp_path / 'out').mkdir()
    with pytest.raises(BagWriteError, match='out already exists; bags are never overwritten'):
        BagWriter(tmp_path / 'out')
    with pytest.raises(BagWriteError, match="unknown bag storage 'zip'"):
        BagWriter(tmp_path / 'new', 'zip')
    with pytest.raises(BagWriteError, match='is not open'):
        BagWriter(tmp_path / 'new').add_topic(FRONT, 'sensor_msgs/msg/Image')
    with BagWriter(tmp_path / 'new') as writer:
        writer.add_topic(FRONT, 'sensor_msgs/msg/Image')
        with pytest.raises(BagWriteError, match='is sensor_msgs/msg/Image, cannot also write'):
            writer.add_topic(FRONT, 'sensor_msgs/msg/CompressedImage')
        with pytest.raises(BagWriteError, match='not in the type store'):
            writer.add_topic('/x', 'vision_msgs/msg/LabelInfo')
    with pytest.raises(BagWriteError, match='is finished'):
        _writes(writer)


@pytest.mark.parametrize('error', [RuntimeError, KeyboardInterrupt])
def test_writer_discards_on_exception(tmp_path: Path, error: type[BaseException]) -> None:
    with pytest.raises(error), BagWriter(tmp_path / 'out', 'sqlite3') as writer:
        _writes(writer)
        assert len(list(tmp_path.iterdir())) == 1  # the hidden temporary folder
        raise error
    assert list(tmp_path.iterdir()) == []


def test_writer_finish_keeps_partial_bag(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), BagWriter(tmp_path / 'out') as writer:
        _writes(writer, 2)
        assert writer.finish() == tmp_path / 'out'
        assert writer.finish() == tmp_path / 'out'  # idempotent
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ['out']
    with open_bag(tmp_path / 'out') as bag:
        assert bag.info.topics[FRONT].count == 2 and bag.info.notes == ()


def test_identical_storage_copies_without_metadata_are_refused(tmp_path: Path) -> None:
    path = write_bag(tmp_path / 'bag')
    (path / 'metadata.yaml').unlink()
    (storage_file,) = list(path.iterdir())
    (path / f'copy_{storage_file.name}').write_bytes(storage_file.read_bytes())
    with pytest.raises(BagReadError, match='are identical copies'):
        open_bag(path)


def test_a_topic_name_that_is_a_list_in_metadata_is_one_line(tmp_path: Path) -> None:
    path = write_bag(tmp_path / 'bag')
    meta = _metadata(path)
    meta['rosbag2_bagfile_information']['topics_with_message_count'][0]['topic_metadata'][
        'name'
    ] = ['/front', '/image']
    _set_metadata(path, meta)
    with pytest.raises(BagReadError) as info:
        with open_bag(path) as bag:
            list(bag.image_topics())
    assert '\n' not in str(info.value)


@pytest.mark.parametrize('keep', [0.5, 0.9, 0.99])
def test_a_cut_off_mcap_says_so_and_how_to_recover_it(tmp_path: Path, keep: float) -> None:
    path = write_bag(tmp_path / 'bag', 'mcap')
    (storage_file,) = path.glob('*.mcap')
    data = storage_file.read_bytes()
    storage_file.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(BagReadError, match='cut off.*mcap recover') as caught:
        open_bag(storage_file)
    assert '\n' not in str(caught.value) and 'corrupt?' not in str(caught.value)


def test_empty_metadata_and_unsupported_storage_are_named(tmp_path: Path) -> None:
    path = write_bag(tmp_path / 'bag', 'mcap')
    (path / 'metadata.yaml').write_text('')
    with pytest.raises(BagReadError, match='is not rosbag2 metadata .*an empty file') as caught:
        open_bag(path)
    assert 'NoneType' not in str(caught.value)
    path = write_bag(tmp_path / 'bag2', 'mcap')
    meta = path / 'metadata.yaml'
    meta.write_text(meta.read_text().replace('storage_identifier: mcap', 'storage_identifier: x'))
    with pytest.raises(BagReadError, match="Storage plugin 'x' not supported") as caught:
        open_bag(path)
    assert 'corrupt' not in str(caught.value)
