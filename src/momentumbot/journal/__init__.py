"""The SQLite journal of a trading run: written before anything is sent, replayed on restart.

Owns: the journal's tables (`journal`), replaying it into an engine (`replay`), comparing it
with IB (`reconcile`), and across IB days by positions (`reconcile_days`)."""
