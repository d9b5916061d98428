"""The paper's study, built on the library (which never imports this package): the operating points
and demo settings (``settings``), the paper's models (``models``), offline and on-disk data sets
(``data``), quantization-aware training with checkpoints (``train``), output files (``io``), the
demo, sweep and rounding experiments (``experiments``), figures (``plots``) and the ``hamq`` command
(``cli``)."""
