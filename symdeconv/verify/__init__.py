"""Layer 4: generated kernels checked against the symbolic forms they came from."""
