"""The occupancy world model: tri-plane VAE, control-conditioned forecaster, training, metrics."""
