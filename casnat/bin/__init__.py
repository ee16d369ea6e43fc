"""casnat.bin."""
