"""Shared training infrastructure used by both trainers (sa_tsp_jax and captioner_jax).

It lives in `data_prep` because the design fixes the import direction as
data_prep <- sa_tsp_jax and data_prep <- captioner_jax, and the trainers never import each
other: this is the one package both may depend on.
"""
