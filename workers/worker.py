"""The worker entry point: ``celery -A workers.worker worker -Q <queue>``.

The only place a worker app is built from the environment: ``LIVENESS_*`` settings
(:meth:`common.config.Settings.from_env`) and the installed tests
(:func:`common.registry.default_registry`) go to :func:`common.queueing.make_celery`,
and :func:`workers.tasks.register_tasks` adds every task. Like gunicorn's
``'gateway:create_app()'``, this module is for the command line; code and tests build
their own apps with explicit settings.
"""

from common.config import Settings
from common.queueing import make_celery
from workers.tasks import register_tasks

app = register_tasks(make_celery(Settings.from_env()))
