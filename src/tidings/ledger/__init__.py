"""The ledger's logic: per record, the baseline (its state as of the last window close) and
the events folded onto it since. ``fold`` applies events; ``netchange`` compares baseline and
result and says which recipient is told what. Both are pure: no I/O, no clock (the ledger's
rows live in the store: ``store.ledger``)."""
