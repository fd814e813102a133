"""Windows: when they close (``schedule``, pure), what a close works out per record
(``folding``, pure), and closing one (``close``: the steps, on the store)."""
