"""The GPU benchmark kit (see bench/gpu/README.md): random-weight models, modes, memory model, report."""
