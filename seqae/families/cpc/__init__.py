"""Contrastive predictive coding (van den Oord et al. 2018) on raw audio."""
