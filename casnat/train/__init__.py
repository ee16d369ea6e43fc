"""casnat.train."""
