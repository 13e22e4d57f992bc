"""The 3D-depth liveness test pool (its model arrives with a later issue)."""
