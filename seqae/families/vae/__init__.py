"""The variational autoencoder family (Gaussian latent, Bernoulli or Gaussian decoder)."""
