"""Trajectories, sparse motion field, reference-based sparse flow, CMP dense flow, flow visualisation."""
