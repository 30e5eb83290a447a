"""The accuracy and ranking suite behind ``benchmarks/run.py``.

``models`` (every configuration and constant: ``MODELS``, ``TUTORIAL_PARAMS``,
``RANKING_PARAMS``, ``BOTH_PARAMS``...), ``protocols`` (data, splits, one fit
measured), ``peers`` (Surprise and Cornac behind ``fit``/``predict``) and
``report`` (results.json, results.md, the charts, the machine).
"""
