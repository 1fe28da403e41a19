"""rec_jax: exploration and exploitation in recommender systems driven by a large sequential model."""

__version__ = "0.1.0"
