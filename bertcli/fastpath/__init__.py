"""The torch-free fast path for small inputs (issue #18): a one-line run without ``import torch``.

* :mod:`.switch`: which runs take it (a few records, CPU, float32) and the read-ahead that
  finds out; called by :func:`bertcli.cli.run.run_inference`;
* :mod:`.model`: :func:`~.model.load_fast`, the loader's checks and a
  :class:`~bertcli.loading.LoadedModel` whose encoder is numpy;
* :mod:`.encoder`: :class:`~.encoder.NumpyEncoder` (the native encoder's network in numpy),
  safetensors mapped without copies, LoRA merged in numpy;
* :mod:`.ops`: GELU, LayerNorm, softmax, top-k in numpy.

The tasks (:mod:`bertcli.tasks`) run unchanged on it: ``lm.numpy`` makes them collate numpy
arrays and take softmax/top-k from :mod:`.ops`.
"""
