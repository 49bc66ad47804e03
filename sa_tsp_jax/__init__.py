"""sa_tsp_jax package."""
