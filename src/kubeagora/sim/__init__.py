"""The simulator: topology, workload, faults, the vectorized engine, and the run loop."""
