"""The ledger: per entity, the baseline (state as of the last window close) and the events
folded onto it since. ``fold`` applies events; ``netchange`` compares baseline and result and
addresses the difference to recipients. Both are pure: no I/O, no clock."""
