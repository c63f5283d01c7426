"""Models: datasets and purged folds, ensemble members (OFI expert, networks, RL policy), calibration,
baselines, out-of-sample metrics, the ensemble, online learning, ONNX serving and the registry.

Import the submodules directly (``from orderflow.models.dataset import make_dataset``); this package
imports nothing heavy on its own.
"""
