"""Python client of the face liveness service.

>>> from liveness_client import LivenessClient
>>> with LivenessClient("http://127.0.0.1:8000", "lk_…") as client:   # doctest: +SKIP
...     job = client.score("face.jpg")
...     print(job.decision, job.score, job.reasons)

:class:`LivenessClient` (sync) and :class:`AsyncLivenessClient` (asyncio) submit, wait
(long-poll), score, submit batches and read their results, retrying 429/503 answers
with backoff (honouring ``Retry-After``) and making retried submissions safe with an
idempotency key; :meth:`LivenessClient.challenge` issues a colour-flash challenge that
:meth:`~LivenessClient.submit` answers with its frames; :func:`verify_webhook` checks a
webhook's signature (both schemes the service sends).
"""

from liveness_client._http import RetryPolicy
from liveness_client.aio import AsyncLivenessClient
from liveness_client.client import LivenessClient
from liveness_client.errors import JobTimeoutError, LivenessError, WebhookVerificationError
from liveness_client.models import (
    Batch,
    BatchItem,
    Challenge,
    ChallengeCheck,
    Face,
    FaceBox,
    Job,
    TestDetail,
)
from liveness_client.webhooks import verify_webhook

__all__ = ["AsyncLivenessClient", "Batch", "BatchItem", "Challenge", "ChallengeCheck", "Face",
           "FaceBox", "Job",
           "JobTimeoutError", "LivenessClient", "LivenessError", "RetryPolicy", "TestDetail",
           "WebhookVerificationError", "verify_webhook"]
__version__ = "0.1.0"
