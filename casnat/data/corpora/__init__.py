"""Corpus preparers: each turns a corpus directory into CutSet manifests, one per split."""
