"""One blueprint per resource; routes only translate HTTP to :class:`JobService` calls."""
