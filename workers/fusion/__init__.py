"""The fusion pool: each job's fan-in, its deadline and its webhook."""
