"""Windows: when they close (``schedule``, pure) and closing one (``close``)."""
