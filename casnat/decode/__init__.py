"""casnat.decode."""
