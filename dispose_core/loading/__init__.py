"""Checkpoint readers, strict key validation and the model-file layout."""
