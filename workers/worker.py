"""The worker entry point: ``celery -A workers.worker worker -Q <queue>``.

The only place a worker app is built from the environment: ``LIVENESS_*`` settings
(:meth:`common.config.Settings.from_env`) and the installed tests
(:func:`common.registry.default_registry`) go to :func:`common.queueing.make_celery`,
and :func:`workers.tasks.register_tasks` adds every task — both through
:func:`workers.tasks.build_worker_app`, which first refuses an unusable
``LIVENESS_WEBHOOK_SECRET``. Like gunicorn's ``'gateway:create_app()'``, this module is
for the command line; code and tests build their own apps with explicit settings.
"""

from common.config import Settings
from workers.tasks import build_worker_app

app = build_worker_app(Settings.from_env())
