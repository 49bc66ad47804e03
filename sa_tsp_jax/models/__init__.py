"""R(2+1)D backbone and SA-TSP heads."""
