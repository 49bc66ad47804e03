"""Configs of the SA-TSP encoder stages (sa_tsp_train, sa_tsp_extract)."""
