"""The scheduler process: one leader among any number of processes runs the jobs."""
