"""Many runs of one spec: sweep grids and the executors that run them (local processes, Ray)."""
