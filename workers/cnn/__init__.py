"""The CNN liveness test pool (its model arrives with a later issue)."""
