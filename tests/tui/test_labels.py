"""Run labels fitted to the room a screen has (tui/labels.py): what tells runs apart is what stays."""

from __future__ import annotations

from optai_tui.tui.labels import fit_labels

STUDY = {
    "a": "course-lab-cifar10-experiment-resnet18-w0.125",
    "b": "course-lab-cifar10-experiment-resnet18-w0.25",
    "c": "course-lab-cifar10-experiment-vgg11-w0.25",
    "d": "course-lab-cifar10-experiment-preact_resnet18-w0.125",
}


def test_labels_that_fit_are_left_whole():
    assert fit_labels(STUDY, 60) == STUDY


def test_the_start_every_name_shares_goes_before_anything_is_cut():
    assert fit_labels(STUDY, 25) == {"a": "resnet18-w0.125", "b": "resnet18-w0.25", "c": "vgg11-w0.25", "d": "preact_resnet18-w0.125"}
    # the shared end too, whole words only (w0.125 and w0.25 are not cut to a shared 'w0.')
    assert fit_labels({"a": "r18-w0.125-cifar10-lab", "b": "r18-w0.25-cifar10-lab"}, 10) == {"a": "w0.125", "b": "w0.25"}


def test_a_label_still_too_long_is_cut_where_the_labels_stay_apart():
    mixed = {**STUDY, "e": "synthetic epochs=50", "f": "synthetic epochs=6"}  # nothing shared by all six
    out = fit_labels(mixed, 19)
    assert all(len(v) <= 19 for v in out.values()) and len(set(out.values())) == 6, out
    assert out["d"].endswith("resnet18-w0.125") and out["a"].endswith("resnet18-w0.125") and out["e"] == "synthetic epochs=50"


def test_the_dataset_tag_stays_whole():
    out = fit_labels({"a": "ants-small-run-one [ants_bees, 2 cl]", "b": "flowers-big-run-two [flowers, 5 cl]"}, 24)
    assert out["a"].endswith(" [ants_bees, 2 cl]") and out["b"].endswith(" [flowers, 5 cl]") and all(len(v) <= 24 for v in out.values())
