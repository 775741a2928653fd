"""The VQ-VAE family: discrete codes of images or log-mel frames (VQ, Gumbel-softmax or binary latents)."""
