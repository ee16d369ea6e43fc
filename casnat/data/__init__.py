"""casnat.data."""
