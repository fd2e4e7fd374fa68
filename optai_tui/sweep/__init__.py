"""Hyperparameter search on Optuna: a sweep spec (``spec.py``) and the study that runs it (``runner.py``).

Each trial is an ordinary run folder started through ``runs/launch.py``, so the dashboard, the runs screen,
the comparison and the export work on trials unchanged. This package sits above ``runs/``: nothing below
imports it.
"""
