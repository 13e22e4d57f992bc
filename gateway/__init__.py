"""The HTTP gateway: a Flask app translating the REST API to :mod:`common.jobs` calls."""

from gateway.app import create_app

__all__ = ["create_app"]
