"""The autoencoder family: vanilla, stacked with tied weights and greedy pre-training, denoising, sparse."""
