"""The judge: the process the user started (or a ``--jobs``/``--cluster`` worker judging a task), which
never imports candidate code.  ``plan`` (options checked into a frozen plan), ``pool`` and ``sandbox``
(runner processes), ``task`` (judging one candidate: ``verify``, ``bench`` with ``noise``, ``roundtrip``),
``pipeline`` (scheduling tasks, merging results), ``workers``/``lanes`` (``--jobs``), ``cluster``
(``--cluster``, Dask), ``checkout`` (the project before and after) and ``gate`` (runs compared)."""
