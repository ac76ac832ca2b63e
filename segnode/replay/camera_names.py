"""Camera names for a bag's image topics: short, unique, and stable across runs.

``/front/image_raw`` is camera ``front``; topics that would share a name take more of their
path (``/left/front/image`` and ``/right/front/image`` are ``left_front`` and ``right_front``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
import re

__all__ = ['camera_names']

# Trailing topic segments that name an image stream or its transport, not a camera.
_TRANSPORTS = {'compressed', 'compresseddepth', 'theora', 'zstd', 'ffmpeg'}
# The longest camera name (longer topics are cut; equal cut names are numbered).
MAX_NAME = 64
_STREAM = re.compile(r'^(image|img)(_.*)?$|^(rgb|color|colour|mono|raw|rect)$')


def _sanitize(text: str) -> str:
    name = re.sub(r'[^0-9A-Za-z_]+', '_', text).strip('_') or 'camera'
    name = name if name[0].isalpha() else f'cam_{name}'
    return name[:MAX_NAME]  # a topic name may be megabytes long; the name goes into topics


def _candidates(topic: str) -> list[str]:
    """Names for ``topic`` from shortest to longest; the last is the whole topic."""
    parts = [p for p in topic.split('/') if p]
    whole = _sanitize('_'.join(parts))
    if parts and parts[-1].lower() in _TRANSPORTS:
        parts = parts[:-1]
    while len(parts) > 1 and _STREAM.match(parts[-1].lower()):
        parts = parts[:-1]
    names = [_sanitize('_'.join(parts[-k:])) for k in range(1, len(parts) + 1)]
    return list(dict.fromkeys([*names, whole]))


def camera_names(topics: Sequence[str]) -> dict[str, str]:
    """Unique camera names for a bag's topics: colliding ones take more of their path.

    ``['/left/front/image', '/right/front/image']`` -> 'left_front', 'right_front'; two streams
    of one camera ('/cam/image_raw', '/cam/image_rect') fall back to the whole topic
    ('cam_image_raw', 'cam_image_rect').
    """
    options = {t: _candidates(t) for t in dict.fromkeys(topics)}
    level = dict.fromkeys(options, 0)
    while True:
        names = {t: options[t][level[t]] for t in options}
        seen: dict[str, list[str]] = defaultdict(list)
        for topic, name in names.items():
            seen[name].append(topic)
        clashing = [t for group in seen.values() if len(group) > 1 for t in group]
        deeper = [t for t in clashing if level[t] + 1 < len(options[t])]
        if not deeper:
            break
        for topic in deeper:
            level[topic] += 1
    used: set[str] = set()
    for topic, name in names.items():  # identical sanitised topics: number them
        unique, n = name, 2
        while unique in used:
            unique, n = f'{name}_{n}', n + 1
        names[topic] = unique
        used.add(unique)
    return names
