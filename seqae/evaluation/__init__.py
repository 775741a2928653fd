"""Evaluation: each family's figures beside their baselines."""
