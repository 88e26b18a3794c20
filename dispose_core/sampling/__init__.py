"""EDM Euler sampling with tiled progressive latent fusion, per-frame CFG, chunked decode."""
