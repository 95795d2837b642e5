"""Closing the loop: reviewed production data → fine-tuning / eval exports (export.py) and cheap classifiers
trained on human labels (classifier.py), registered as the `trained` check (flywheel.checks.trained)."""
