"""The demo: a synthetic NHS training region and one messy working day, run end to end.

``python -m tidings.demo`` (``make demo``) runs ``tidings.demo.run``; ``tidings.demo.generate``
makes the data and says what a correct engine finds.
"""
