"""imaging.py's ROS-free codec against cv_bridge, the reference, for every encoding it takes.

package.xml names cv_bridge so that this check can run where it is installed (a ROS 2 machine);
segnode's code never imports it. Skipped elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from segnode.pipeline import imaging

try:
    from cv_bridge import CvBridge
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

    from segnode.ros import convert
except ImportError as err:  # a skip, never a collection error (conftest.py says why)
    MISSING = f'{err.name} is not installed (cv_bridge comes with a ROS 2 install, no wheel)'
    BRIDGE = None
else:
    MISSING = ''
    BRIDGE = CvBridge()

pytestmark = [pytest.mark.ros, pytest.mark.skipif(bool(MISSING), reason=MISSING)]
SHAPE = (6, 10)  # an odd width: rows are not multiples of 4 bytes for every encoding


def _array(encoding: str) -> np.ndarray:
    channels, dtype = imaging.ENCODINGS[encoding]
    shape = SHAPE if channels == 1 else (*SHAPE, channels)
    high = 65536 if dtype == np.uint16 else 256
    return np.random.default_rng(0).integers(0, high, shape).astype(dtype)


@pytest.mark.parametrize('encoding', list(imaging.ENCODINGS))
def test_segnode_messages_decode_in_cv_bridge_as_they_were_written(encoding: str) -> None:
    array = _array(encoding)
    msg = convert.image_msg(array, encoding, Header())
    np.testing.assert_array_equal(BRIDGE.imgmsg_to_cv2(msg, 'passthrough'), array)


@pytest.mark.parametrize('encoding', list(imaging.ENCODINGS))
def test_cv_bridge_messages_decode_in_segnode_as_they_were_written(encoding: str) -> None:
    array = _array(encoding)
    msg = BRIDGE.cv2_to_imgmsg(array, encoding)
    np.testing.assert_array_equal(imaging.image_to_array(msg), array)


@pytest.mark.parametrize('encoding', ['mono8', 'rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_the_engine_frame_matches_cv_bridge_colour_conversion(encoding: str) -> None:
    msg = BRIDGE.cv2_to_imgmsg(_array(encoding), encoding)
    frame, order = imaging.to_rgb_frame(msg)
    np.testing.assert_array_equal(frame, BRIDGE.imgmsg_to_cv2(msg, order))


@pytest.mark.parametrize('encoding', ['mono8', 'bgr8'])
def test_png_compressed_images_agree_both_ways(encoding: str) -> None:
    array = _array(encoding)
    fmt, data = imaging.encode_compressed(array, encoding, 'png')
    ours = CompressedImage(format=fmt, data=data.tobytes())
    np.testing.assert_array_equal(BRIDGE.compressed_imgmsg_to_cv2(ours), array)
    theirs = BRIDGE.cv2_to_compressed_imgmsg(array, dst_format='png')
    decoded, order = imaging.compressed_to_array(theirs)
    np.testing.assert_array_equal(decoded, array)
    assert order == encoding
