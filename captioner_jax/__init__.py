"""captioner_jax package."""
