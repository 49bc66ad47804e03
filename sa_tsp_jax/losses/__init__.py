"""SA-TSP pretraining losses."""
