"""The GAN layer (layer 6): objectives and penalties, models, auxiliary heads, metrics."""
