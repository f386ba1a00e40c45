"""A refine spread over a Dask cluster: blocks of whole engine tiles, each a task
that writes its part atomically; the driver assembles the parts. Dask is imported
only here, and only when a cluster is asked for (requirements-cluster.txt)."""
