"""casnat.models."""
