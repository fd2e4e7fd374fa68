"""Run labels that fit the room a screen has for them, keeping what tells the runs apart.

Names of the runs of one study often share a long start (``course-lab-cifar10-resnet18-w0.125``,
``course-lab-cifar10-vgg11-w0.25``): cut at a fixed length they all read ``course-lab-cifar10-…``. When
the labels do not fit, the words every label shares at its start and at its end are dropped (what is
left is what differs: the architecture, the width, the mode), and only then is a label still too long
cut: at its end, or at its start or in its middle when cutting its end would make two labels read the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKENS = re.compile(r"[^-_ ]+|[-_ ]+")  # words and the separators between them
_TAG = re.compile(r" \[[^\]]*\]$")  # the dataset tag run_labels appends when runs are on different data
_SEP = "-_ "


def _common_prefix(lists: list[list[str]]) -> int:
    n = 0
    shortest = min(len(t) for t in lists)
    while n < shortest and all(t[n] == lists[0][n] for t in lists):
        n += 1
    return n


def shared_words(labels: list[str]) -> tuple[str, str]:
    """The start and the end every label shares, whole words only, leaving each label a word of its own."""
    if len(labels) < 2:
        return "", ""
    lists = [_TOKENS.findall(label) for label in labels]
    n = _common_prefix(lists)
    while n and (n == min(len(t) for t in lists) or lists[0][n - 1][0] not in _SEP):
        n -= 1  # cut after a separator, and never a whole label away
    rests = [t[n:] for t in lists]
    m = _common_prefix([list(reversed(t)) for t in rests])
    while m and (m == min(len(t) for t in rests) or rests[0][-m][0] not in _SEP):
        m -= 1
    return "".join(lists[0][:n]), "".join(lists[0][len(lists[0]) - m :]) if m else ""


def _cut_end(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room - 1, 1)] + "…"


def _cut_start(text: str, room: int) -> str:
    return text if len(text) <= room else "…" + text[len(text) - max(room - 1, 1) :]


def _cut_middle(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    head = max((room - 1) // 2, 1)
    tail = max(room - 1 - head, 1)
    return text[:head] + "…" + text[-tail:]


def fit_labels(labels: Mapping[str, str], room: int) -> dict[str, str]:
    """Each label (by key) in at most ``room`` characters: whole when they all fit, else without the words
    they all share at the start and the end, and cut only if still too long."""
    room = max(room, 4)
    if all(len(v) <= room for v in labels.values()):
        return dict(labels)
    heads, tags = {}, {}
    for k, v in labels.items():
        m = _TAG.search(v)
        heads[k], tags[k] = (v[: m.start()], m.group(0)) if m else (v, "")
    start, end = shared_words(list(heads.values()))
    short = {k: h[len(start) : len(h) - len(end)] for k, h in heads.items()}

    def cut(how) -> dict[str, str]:  # the dataset tag stays whole while the name has room beside it
        return {k: how(v, room - len(tags[k])) + tags[k] if room - len(tags[k]) >= 6 else how(v + tags[k], room) for k, v in short.items()}

    distinct = len(set(short[k] + tags[k] for k in short))
    for how in (_cut_end, _cut_start, _cut_middle):  # the first that keeps the labels apart (names often differ at the end)
        out = cut(how)
        if len(set(out.values())) == distinct:
            break
    return out
