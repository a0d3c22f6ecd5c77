"""Calls to Vertex AI through google-cloud-aiplatform (the ``vertex`` extra).

Everything here imports ``google.cloud.aiplatform_v1`` inside the function, so importing this
module costs nothing.  Bodies travel as REST JSON dicts (see :mod:`hpsearch.vertex.job`);
they are parsed into the GAPIC types here, which rejects unknown fields before sending.

``api_endpoint`` points the client elsewhere than ``{region}-aiplatform.googleapis.com``:
a private endpoint, or ``http://127.0.0.1:PORT`` for a local fake of the API (tests).  A
plain-http endpoint always gets anonymous credentials, so no token crosses plaintext.
Google API errors become :mod:`hpsearch.errors` classes with a message saying what to do.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hpsearch.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    HpsearchError,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
)

logger = logging.getLogger(__name__)

INSTALL_HINT = "install the vertex extra: pip install 'hpsearch[vertex]'"
_JOB_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/"
    r"(?P<collection>hyperparameterTuningJobs|customJobs)/(?P<id>[^/]+)$"
)


def create_tuning_job(
    body: Mapping[str, Any],
    *,
    project: str,
    region: str,
    api_endpoint: str | None = None,
    credentials: Any = None,
) -> dict[str, Any]:
    """Create a HyperparameterTuningJob from its REST body; returns the created job."""
    message = to_message(body, "HyperparameterTuningJob")
    client = job_client(region, api_endpoint=api_endpoint, credentials=credentials)
    with _api_errors("creating the hyperparameter tuning job"):
        job = client.create_hyperparameter_tuning_job(
            parent=f"projects/{project}/locations/{region}", hyperparameter_tuning_job=message
        )
    logger.info("vertex tuning job created name=%s", job.name)
    return to_dict(job)


def create_custom_job(
    body: Mapping[str, Any],
    *,
    project: str,
    region: str,
    api_endpoint: str | None = None,
    credentials: Any = None,
) -> dict[str, Any]:
    """Create a CustomJob from its REST body; returns the created job."""
    message = to_message(body, "CustomJob")
    client = job_client(region, api_endpoint=api_endpoint, credentials=credentials)
    with _api_errors("creating the custom job"):
        job = client.create_custom_job(
            parent=f"projects/{project}/locations/{region}", custom_job=message
        )
    logger.info("vertex custom job created name=%s", job.name)
    return to_dict(job)


def get_tuning_job(
    name: str,
    *,
    api_endpoint: str | None = None,
    credentials: Any = None,
) -> dict[str, Any]:
    """Fetch a HyperparameterTuningJob (with its trials) by full resource name."""
    region = parse_job_name(name)["region"]
    client = job_client(region, api_endpoint=api_endpoint, credentials=credentials)
    with _api_errors(f"reading {name}"):
        job = client.get_hyperparameter_tuning_job(name=name)
    return to_dict(job)


def job_name(job: str, *, project: str | None, region: str | None) -> str:
    """The full resource name of a tuning job given a full name or a bare numeric id."""
    if "/" in job:
        parse_job_name(job)
        return job
    if not project or not region:
        raise InvalidArgumentError(
            f"job {job!r} is a bare id: give --project and --region, or the full name "
            "projects/P/locations/R/hyperparameterTuningJobs/ID"
        )
    return f"projects/{project}/locations/{region}/hyperparameterTuningJobs/{job}"


def parse_job_name(name: str) -> dict[str, str]:
    """Split ``projects/P/locations/R/<collection>/ID`` into its parts."""
    match = _JOB_NAME.match(name)
    if match is None:
        raise InvalidArgumentError(
            f"{name!r} is not a Vertex AI job name; expected "
            "projects/PROJECT/locations/REGION/hyperparameterTuningJobs/ID"
        )
    return match.groupdict()


def job_client(region: str, *, api_endpoint: str | None = None, credentials: Any = None) -> Any:
    """A ``JobServiceClient`` for ``region`` (REST transport for a custom http endpoint)."""
    aiplatform_v1 = _aiplatform_v1()
    from google.api_core.client_options import ClientOptions

    endpoint = api_endpoint or f"{region}-aiplatform.googleapis.com"
    transport = None
    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
        transport = "rest"
    elif endpoint.startswith("https://"):
        transport = "rest"
    if credentials is None:
        credentials = _default_credentials()
    return aiplatform_v1.JobServiceClient(
        credentials=credentials,
        transport=transport,
        client_options=ClientOptions(api_endpoint=endpoint),
    )


def to_message(body: Mapping[str, Any], kind: str) -> Any:
    """Parse a REST JSON body into ``aiplatform_v1.<kind>``; unknown fields are an error."""
    aiplatform_v1 = _aiplatform_v1()
    from google.protobuf import json_format

    message_type = getattr(aiplatform_v1, kind)
    message = message_type()
    try:
        json_format.ParseDict(dict(body), message_type.pb(message))
    except json_format.ParseError as exc:
        raise InvalidArgumentError(f"the {kind} body is not valid for Vertex AI: {exc}") from None
    return message


def to_dict(message: Any) -> dict[str, Any]:
    """A GAPIC message as its REST JSON dict (camelCase, enum names, int64 as strings)."""
    from google.protobuf import json_format

    result: dict[str, Any] = json_format.MessageToDict(type(message).pb(message))
    return result


# -- helpers ---------------------------------------------------------------------------------
def _aiplatform_v1() -> Any:
    try:
        from google.cloud import aiplatform_v1
    except ImportError:
        raise FailedPreconditionError(
            f"talking to Vertex AI needs google-cloud-aiplatform: {INSTALL_HINT}"
        ) from None
    return aiplatform_v1


def _default_credentials() -> Any:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
    except DefaultCredentialsError:
        raise UnauthenticatedError(
            "no Google Cloud credentials found: run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS (or use --dry-run to only print the request)"
        ) from None
    return credentials


@contextmanager
def _api_errors(doing: str) -> Iterator[None]:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        yield
    except gexc.NotFound as exc:
        raise NotFoundError(f"{doing}: not found: {exc.message}") from None
    except gexc.AlreadyExists as exc:
        raise AlreadyExistsError(f"{doing}: {exc.message}") from None
    except (gexc.Unauthenticated, gexc.PermissionDenied) as exc:
        raise UnauthenticatedError(
            f"{doing}: {exc.message}; check the account has roles/aiplatform.user on the "
            "project (gcloud auth application-default login)"
        ) from None
    except gexc.InvalidArgument as exc:
        raise InvalidArgumentError(
            f"{doing}: Vertex AI refused the request: {exc.message}"
        ) from None
    except gexc.GoogleAPICallError as exc:
        raise HpsearchError(f"{doing}: Vertex AI answered {exc.code}: {exc.message}") from None
    except gexc.RetryError as exc:
        raise HpsearchError(f"{doing}: Vertex AI did not answer in time: {exc}") from None
    except auth_exc.GoogleAuthError as exc:
        raise UnauthenticatedError(f"{doing}: {exc}") from None
    except OSError as exc:  # requests' ConnectionError and timeouts are OSErrors
        raise HpsearchError(
            f"{doing}: cannot reach Vertex AI ({type(exc).__name__}); check the network, "
            "--region and --api-endpoint"
        ) from None
