"""Import Keras (and TensorFlow) quietly, once, only in the commands that train or load models."""

from __future__ import annotations

import os
import sys


def import_keras():
    """Return the `keras` module with TensorFlow's start-up log lines silenced.

    TensorFlow's C++ side prints oneDNN and CUDA notices to stderr before its logging is set up,
    whatever TF_CPP_MIN_LOG_LEVEL says, so stderr is pointed at /dev/null for the import alone.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras
            import tensorflow  # noqa: F401  (the noisy part)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return keras
