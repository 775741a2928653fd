"""One module per family; each model is an ``nn.Module`` built from :mod:`seqae.nn` parts."""

from seqae.models.autoencoder import Autoencoder, AutoencoderConfig
from seqae.models.base import ModelOutput, Phase, Stage
from seqae.models.vae import VAE, VAEConfig


def get_family(name, where="recipe"):
    """The registry entry of a family (see :mod:`seqae.families`)."""
    from seqae.families import get_family as lookup

    return lookup(name, where)


__all__ = ["Autoencoder", "AutoencoderConfig", "VAE", "VAEConfig", "ModelOutput", "Phase", "Stage", "get_family"]
